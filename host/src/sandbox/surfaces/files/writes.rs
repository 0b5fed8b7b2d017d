//! What one call may write into an instance's directories: at most
//! [`MOST_BYTES_PER_CALL`] bytes (written, or a file grown by), and at most
//! [`MOST_ENTRIES_PER_CALL`] files, directories and links made. A
//! read-write grant says where an adapter may write, not how much: without
//! a bound one call could fill the disk the store lives on, or its inodes,
//! in the seconds its time limit gives it. An adapter writes records and
//! journal lines, kilobytes a call.
//!
//! wasmtime-wasi has no such bound, so the functions of
//! `wasi:filesystem/types` that write or make are linked again over its own
//! (which still do the work), each taking its share of the budget first;
//! a stream a file is written through is wrapped so that each write takes
//! its share. Past the budget the call traps with [`WriteBound`]: the
//! instance is finished, and the host records the denial.

use super::Files;
use crate::sandbox::budget::Budget;
use crate::sandbox::surface::{HasGate, SurfaceId};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    Descriptor, DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::{DynOutputStream, FsResult};

/// The most bytes one call may write into its directories (or grow files
/// by).
pub const MOST_BYTES_PER_CALL: u64 = 64 * 1024 * 1024;

/// The most files, directories and links one call may make (an open that
/// may create counts, whether or not the file was there).
pub const MOST_ENTRIES_PER_CALL: u32 = 1024;

/// The files surface, as a denial of a write past the budget names it.
pub const WRITES: SurfaceId = SurfaceId {
    name: "files",
    fix: "an adapter writes records and journal lines into its directories, not bulk data: \
          keep large objects elsewhere (the s3 capability) and a call's writes small",
};

/// The interface whose functions are bounded, as wasmtime-wasi links it
/// (the version its WIT has: an upgrade that moves it fails the tests of
/// this bound, `capabilities::limits`).
const TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Why a call was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteBound {
    #[error("wrote more than {} MiB into its directories in one call", MOST_BYTES_PER_CALL >> 20)]
    Bytes,
    #[error("made more than {MOST_ENTRIES_PER_CALL} files, directories or links in one call")]
    Entries,
}

/// One instance's budget for the call it is in (the files surface's gate).
pub struct Writes {
    /// Bytes left; shared with the streams the instance writes through.
    bytes: Budget,
    entries: Budget,
}

impl Default for Writes {
    fn default() -> Self {
        Writes {
            bytes: Budget::new(MOST_BYTES_PER_CALL),
            entries: Budget::new(MOST_ENTRIES_PER_CALL.into()),
        }
    }
}

impl Writes {
    /// A new call: the whole budget again.
    pub fn begin_call(&mut self) {
        self.bytes.refill();
        self.entries.refill();
    }

    fn take_bytes(&self, n: usize) -> Result<(), WriteBound> {
        self.bytes.take(n).then_some(()).ok_or(WriteBound::Bytes)
    }

    fn take_entry(&self) -> Result<(), WriteBound> {
        self.entries
            .take(1)
            .then_some(())
            .ok_or(WriteBound::Entries)
    }
}

/// wasmtime-wasi's answer as the component function returns it: its error
/// code, or the trap it carries.
fn answer<V>(result: FsResult<V>) -> wasmtime::Result<(Result<V, ErrorCode>,)> {
    match result {
        Ok(v) => Ok((Ok(v),)),
        Err(e) => Ok((Err(e.downcast()?),)),
    }
}

/// `stream`, made by wasmtime-wasi, swapped for one that counts.
fn counted<T: HasGate<Files> + WasiView>(
    state: &mut T,
    stream: FsResult<Resource<DynOutputStream>>,
) -> wasmtime::Result<(Result<Resource<DynOutputStream>, ErrorCode>,)> {
    let stream = match stream {
        Ok(s) => s,
        Err(e) => return answer(Err(e)),
    };
    let bytes = state.gate().bytes.clone();
    bytes.count_writes(state.filesystem().table, &stream, || {
        WriteBound::Bytes.into()
    })?;
    Ok((Ok(stream),))
}

/// Link the bounded functions over wasmtime-wasi's own (which must be
/// linked already).
pub fn add_to_linker<T: HasGate<Files> + WasiView + Send + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(TYPES)?;
    types.func_wrap_async(
        "[method]descriptor.write",
        |mut store, (fd, buffer, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                state.gate().take_bytes(buffer.len())?;
                answer(state.filesystem().write(fd, buffer, offset).await)
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.write-via-stream",
        |mut store, (fd, offset): (Resource<Descriptor>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                let stream = state.filesystem().write_via_stream(fd, offset);
                counted(state, stream)
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.append-via-stream",
        |mut store, (fd,): (Resource<Descriptor>,)| {
            Box::new(async move {
                let state = store.data_mut();
                let stream = state.filesystem().append_via_stream(fd);
                counted(state, stream)
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.set-size",
        |mut store, (fd, size): (Resource<Descriptor>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                // Growing a file takes no disk until it is written, but it
                // is counted as written: whatever copies the file later
                // writes it all.
                let now = match state
                    .filesystem()
                    .stat(Resource::new_borrow(fd.rep()))
                    .await
                {
                    Ok(stat) => stat.size,
                    Err(e) => return answer(Err(e)),
                };
                let growth = usize::try_from(size.saturating_sub(now)).unwrap_or(usize::MAX);
                state.gate().take_bytes(growth)?;
                answer(state.filesystem().set_size(fd, size).await)
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store,
         (fd, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            Box::new(async move {
                let state = store.data_mut();
                if open_flags.contains(OpenFlags::CREATE) {
                    state.gate().take_entry()?;
                }
                answer(
                    state
                        .filesystem()
                        .open_at(fd, path_flags, path, open_flags, flags)
                        .await,
                )
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.create-directory-at",
        |mut store, (fd, path): (Resource<Descriptor>, String)| {
            Box::new(async move {
                let state = store.data_mut();
                state.gate().take_entry()?;
                answer(state.filesystem().create_directory_at(fd, path).await)
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.symlink-at",
        |mut store, (fd, old, new): (Resource<Descriptor>, String, String)| {
            Box::new(async move {
                let state = store.data_mut();
                state.gate().take_entry()?;
                answer(state.filesystem().symlink_at(fd, old, new).await)
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.link-at",
        |mut store,
         (fd, old_flags, old, new_fd, new): (
            Resource<Descriptor>,
            PathFlags,
            String,
            Resource<Descriptor>,
            String,
        )| {
            Box::new(async move {
                let state = store.data_mut();
                state.gate().take_entry()?;
                answer(
                    state
                        .filesystem()
                        .link_at(fd, old_flags, old, new_fd, new)
                        .await,
                )
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
