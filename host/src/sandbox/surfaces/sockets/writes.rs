//! What one call may send through its sockets: at most
//! [`MOST_BYTES_PER_CALL`], its connections together. A granted address
//! says where an adapter may connect, not how much it may send there.
//!
//! wasmtime-wasi's `finish-connect` is linked again over its own (which
//! still makes the connection): the output stream it hands the guest is
//! wrapped so that each write takes its share. Past the budget the call
//! traps with [`SentTooMuch`].

use super::Sockets;
use crate::sandbox::surface::{HasGate, SurfaceId};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::p2::bindings::sockets::network::ErrorCode;
use wasmtime_wasi::p2::bindings::sockets::tcp::HostTcpSocket;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, TcpSocket};
use wasmtime_wasi::sockets::WasiSocketsView;

/// The most bytes one call may send through its sockets.
pub const MOST_BYTES_PER_CALL: u64 = 64 * 1024 * 1024;

/// The sockets surface, as a denial of a write past the budget names it.
pub const SENT: SurfaceId = SurfaceId {
    name: "sockets",
    fix: "an adapter sends requests and records through a socket, not bulk data: keep a \
          call's writes small",
};

/// The interface whose function is linked again, as wasmtime-wasi links it
/// (the version its WIT has: an upgrade that moves it fails
/// `capabilities::sockets`).
const TCP: &str = "wasi:sockets/tcp@0.2.12";

/// Why a call was stopped.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("sent more than {} MiB through its sockets in one call", MOST_BYTES_PER_CALL >> 20)]
pub struct SentTooMuch;

/// Link `finish-connect` over wasmtime-wasi's own (which must be linked
/// already).
pub fn add_to_linker<T: HasGate<Sockets> + WasiView + Send + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    type Streams = (Resource<DynInputStream>, Resource<DynOutputStream>);
    linker.allow_shadowing(true);
    linker.instance(TCP)?.func_wrap_async(
        "[method]tcp-socket.finish-connect",
        |mut store, (socket,): (Resource<TcpSocket>,)| {
            Box::new(async move {
                let state = store.data_mut();
                let budget = state.gate().clone();
                let mut view = state.sockets();
                let (input, output): Streams = match view.finish_connect(socket) {
                    Ok(streams) => streams,
                    Err(e) => return Ok((Err::<Streams, ErrorCode>(e.downcast()?),)),
                };
                budget.count_writes(view.table, &output, || SentTooMuch.into())?;
                Ok((Ok((input, output)),))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
