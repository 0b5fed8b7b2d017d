//! A record's turn across processes on one store: a `handoff run` beside
//! `handoff serve`, or scripts starting runs side by side. Within a process
//! the throttle's own locks give each record one holder at a time; this
//! makes that holder wait, too, while another process holds the record.
//!
//! The turns are byte-range locks on one file beside the store,
//! `<store>.turns`: a record's key (and its layer: a step's turn and the
//! calls inside it are held apart) picks one byte of it by its hash. The
//! file holds nothing and never grows, and taking or giving back a turn is
//! one `fcntl`, whatever the number of records. The locks are the open
//! file's (Linux's open file description locks, elsewhere the process's),
//! so the kernel lets them go when the process ends, killed or not. This
//! process keeps the file open for as long as it lives and counts its own
//! holders of a byte (two keys whose hashes meet share it), giving the
//! byte back when the last lets go. A byte another process holds is tried
//! again after a short pause: a blocking lock would hold a thread the
//! run's task could not give up.
//!
//! A file lock reaches the processes of one machine, which is what a
//! SQLite store has. Replicas on a shared PostgreSQL store would take this
//! turn from the store itself (an advisory lock on the key's hash), here,
//! behind the same `hold`.

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};
use nix::libc;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The first pause before a byte another process holds is tried again,
/// and the longest.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const LONGEST_PAUSE: Duration = Duration::from_millis(25);

/// The turns of the processes on one store, as this process takes them.
#[derive(Debug)]
pub struct Across {
    path: PathBuf,
    /// The lock file, opened at the first turn and kept open.
    file: OnceLock<File>,
    /// The bytes this process holds, and how many of its holders each has.
    held: Mutex<HashMap<i64, usize>>,
}

/// A record's turn across processes, held until dropped.
#[derive(Debug)]
pub struct Held {
    across: Arc<Across>,
    byte: i64,
}

/// Why a turn could not be taken.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path}: {source}; handoff takes its processes' turns on records in this file beside its \
     store, and must be able to make it and lock it"
)]
pub struct TurnError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The file of the turns of the processes on the store at `store`.
pub fn file_beside(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(".turns");
    store.with_file_name(name)
}

/// The byte of `key` in `layer`: any of 2^62, so that two records share
/// one only by a collision of their hashes.
fn byte_of(layer: &str, key: &str) -> i64 {
    let hash = Sha256::new()
        .chain_update(layer.as_bytes())
        .chain_update([0])
        .chain_update(key.as_bytes())
        .finalize();
    let first: [u8; 8] = hash[..8].try_into().expect("a sha256 has 32 bytes");
    i64::try_from(u64::from_be_bytes(first) >> 2).expect("62 bits fit")
}

impl Across {
    /// The turns of the processes that share the store at `store`.
    pub fn beside(store: &Path) -> Across {
        Across {
            path: file_beside(store),
            file: OnceLock::new(),
            held: Mutex::default(),
        }
    }

    /// The lock file, opened the first time (called with `held` locked).
    fn file(&self) -> Result<&File, TurnError> {
        if let Some(file) = self.file.get() {
            return Ok(file);
        }
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(|source| TurnError {
                path: self.path.clone(),
                source,
            })?;
        Ok(self.file.get_or_init(|| opened))
    }

    /// `key`'s turn in `layer` (`step` or `call`), once no other process
    /// holds its byte.
    pub async fn hold(self: &Arc<Self>, layer: &str, key: &str) -> Result<Held, TurnError> {
        let mut pause = FIRST_PAUSE;
        loop {
            if let Some(held) = self.take(layer, key)? {
                return Ok(held);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    /// `key`'s turn in `layer` now, or none while another process holds
    /// its byte.
    pub fn take(self: &Arc<Self>, layer: &str, key: &str) -> Result<Option<Held>, TurnError> {
        let byte = byte_of(layer, key);
        Ok(self.try_hold(byte)?.then(|| Held {
            across: self.clone(),
            byte,
        }))
    }

    /// Whether this process now holds `byte` once more (false: another
    /// process holds it).
    fn try_hold(&self, byte: i64) -> Result<bool, TurnError> {
        // Under the count's lock, so that the file is opened once: a
        // second descriptor closed again would, where the locks are the
        // process's, give back every byte this process holds.
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let file = self.file()?;
        if let Some(holders) = held.get_mut(&byte) {
            *holders += 1;
            return Ok(true);
        }
        match lock(file, byte, libc::F_WRLCK) {
            Ok(()) => {
                held.insert(byte, 1);
                Ok(true)
            }
            // Another process holds it.
            Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
            Err(e) => Err(TurnError {
                path: self.path.clone(),
                source: e.into(),
            }),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.across.held.lock().unwrap_or_else(|p| p.into_inner());
        let Some(holders) = held.get_mut(&self.byte) else {
            return;
        };
        *holders -= 1;
        if *holders > 0 {
            return;
        }
        held.remove(&self.byte);
        if let Some(file) = self.across.file.get()
            && let Err(e) = lock(file, self.byte, libc::F_UNLCK)
        {
            // Let go when the process ends, then.
            tracing::error!(path = %self.across.path.display(), error = %e,
                "a record's turn could not be given back to the other processes");
        }
    }
}

/// Lock (`F_WRLCK`) or unlock (`F_UNLCK`) one byte of `file`, not waiting.
fn lock(file: &File, byte: i64, kind: libc::c_int) -> Result<(), Errno> {
    let range = libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: byte,
        l_len: 1,
        l_pid: 0,
    };
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let set = FcntlArg::F_OFD_SETLK(&range);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let set = FcntlArg::F_SETLK(&range);
    fcntl(file, set).map(drop)
}

#[cfg(test)]
mod tests {
    use super::super::tests::ready;
    use super::*;
    use std::pin::pin;

    #[tokio::test]
    async fn a_record_another_process_holds_waits_for_it_and_its_own_holders_share_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("handoff.db");
        // Two processes, as two open files of one lock file.
        let first = Arc::new(Across::beside(&store));
        let second = Arc::new(Across::beside(&store));
        let held = first
            .hold("step", "checklist/checklist/CL-7")
            .await
            .unwrap();
        assert!(dir.path().join("handoff.db.turns").is_file());
        let mut waiting = pin!(second.hold("step", "checklist/checklist/CL-7"));
        assert!(ready(waiting.as_mut()).is_none(), "the same record waits");
        // Another record, and the calls inside the step, do not.
        for (layer, key) in [
            ("step", "checklist/checklist/CL-8"),
            ("call", "checklist/checklist/CL-7"),
        ] {
            let other = ready(pin!(second.hold(layer, key)));
            assert!(other.is_some_and(|o| o.is_ok()), "{layer} {key}");
        }
        // Within the first, a second holder of the byte (a key whose hash
        // met this one's) keeps it held when the first lets go.
        let again = first
            .hold("step", "checklist/checklist/CL-7")
            .await
            .unwrap();
        drop(held);
        assert!(ready(waiting.as_mut()).is_none(), "still held");
        drop(again);
        // Its next try, after its pause, finds the byte free.
        let taken = waiting.await;
        assert!(taken.is_ok(), "{taken:?}");
        assert!(ready(pin!(first.hold("step", "checklist/checklist/CL-7"))).is_none());
    }

    #[test]
    fn a_key_keeps_its_byte_and_a_layer_its_own() {
        assert_eq!(byte_of("step", "r/k/1"), byte_of("step", "r/k/1"));
        assert_ne!(byte_of("step", "r/k/1"), byte_of("call", "r/k/1"));
        assert_ne!(byte_of("step", "r/k/1"), byte_of("step", "r/k/2"));
        assert!((0..10_000).all(|i| byte_of("call", &format!("r/k/{i}")) >= 0));
        let turns = file_beside(Path::new("/var/lib/handoff/handoff.db"));
        assert_eq!(turns, Path::new("/var/lib/handoff/handoff.db.turns"));
    }

    #[test]
    fn a_file_that_cannot_be_made_is_said_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let across = Arc::new(Across::beside(&dir.path().join("gone/store.db")));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = runtime.block_on(across.hold("step", "r/k/1")).unwrap_err();
        assert!(e.to_string().contains("gone/store.db.turns"), "{e}");
    }
}
