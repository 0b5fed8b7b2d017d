//! A record's turn across processes on one store: a `handoff run` beside
//! `handoff serve`, or scripts starting runs side by side. Within a process
//! the throttle's own locks give each record one holder at a time; this
//! makes that holder wait, too, while another process holds the record.
//!
//! The turns are file locks (`flock`, released by the kernel when the file
//! closes, so also when a process is killed) on a fixed set of files
//! beside the store, `<store>.turns/<layer>-<bucket>`: a record's key picks
//! one of [`BUCKETS`] by its hash. A fixed set, made as first needed, so
//! the directory never grows with the records touched; two records in one
//! bucket only wait for each other, which is safe and, at 4,096 buckets,
//! rare. A lock another holder keeps is tried again after a short pause
//! (a blocked `flock` would hold a thread the run's task cannot give up).

use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How many lock files each layer has.
pub const BUCKETS: u16 = 4096;

/// The first pause before a held lock is tried again, and the longest.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const LONGEST_PAUSE: Duration = Duration::from_millis(25);

/// Where the turns of the processes on one store are kept.
#[derive(Debug)]
pub struct Across {
    dir: PathBuf,
}

/// A record's turn across processes, held until dropped.
#[derive(Debug)]
pub struct Held {
    _file: File,
}

/// Why a turn could not be taken.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path}: {source}; handoff keeps the turns its processes take on records there, beside its \
     store, and must be able to make and lock files in that directory"
)]
pub struct TurnError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl Across {
    /// The turns of the processes that share the store at `store`.
    pub fn beside(store: &Path) -> Across {
        Across {
            dir: directory(store),
        }
    }

    /// The lock file of `key` in `layer` (`step` or `call`: a step's turn
    /// and the calls inside it hold different files).
    fn file_of(&self, layer: &str, key: &str) -> PathBuf {
        let hash = Sha256::digest(key.as_bytes());
        let bucket = u16::from_be_bytes([hash[0], hash[1]]) % BUCKETS;
        self.dir.join(format!("{layer}-{bucket:03x}"))
    }

    /// `key`'s turn in `layer`, once no other process holds its file.
    pub async fn hold(&self, layer: &str, key: &str) -> Result<Held, TurnError> {
        let path = self.file_of(layer, key);
        let failed = |source| TurnError {
            path: path.clone(),
            source,
        };
        let file = match open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir).map_err(failed)?;
                open(&path).map_err(failed)?
            }
            Err(e) => return Err(failed(e)),
        };
        let mut pause = FIRST_PAUSE;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Held { _file: file }),
                Err(TryLockError::WouldBlock) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
                Err(TryLockError::Error(e)) => return Err(failed(e)),
            }
        }
    }
}

/// The directory of the turns of the processes on the store at `store`.
pub fn directory(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(".turns");
    store.with_file_name(name)
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn ready<F: Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        match f.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn a_record_held_by_one_holder_waits_for_it_and_other_layers_do_not() {
        let dir = tempfile::tempdir().unwrap();
        // Two processes, as two open files of one lock each.
        let first = Across::beside(&dir.path().join("handoff.db"));
        let second = Across::beside(&dir.path().join("handoff.db"));
        let held = first
            .hold("step", "checklist/checklist/CL-7")
            .await
            .unwrap();
        assert!(dir.path().join("handoff.db.turns").is_dir());
        let mut waiting = pin!(second.hold("step", "checklist/checklist/CL-7"));
        assert!(ready(waiting.as_mut()).is_none(), "the same record waits");
        // A call inside the step takes the other layer's file.
        let call = ready(pin!(second.hold("call", "checklist/checklist/CL-7")));
        assert!(call.is_some_and(|c| c.is_ok()));
        drop(held);
        // Its next try, after its pause, finds the file free.
        let taken = waiting.await;
        assert!(taken.is_ok(), "{taken:?}");
    }

    #[test]
    fn a_key_keeps_its_file_and_the_files_are_a_fixed_set() {
        let across = Across::beside(Path::new("/var/lib/handoff/handoff.db"));
        let one = across.file_of("step", "tracker/release/R-1");
        assert_eq!(one, across.file_of("step", "tracker/release/R-1"));
        assert!(one.starts_with("/var/lib/handoff/handoff.db.turns"));
        let names: std::collections::BTreeSet<_> = (0..20_000)
            .map(|i| across.file_of("call", &format!("r/k/{i}")))
            .collect();
        assert!(names.len() <= usize::from(BUCKETS), "{}", names.len());
    }

    #[test]
    fn a_directory_that_cannot_be_made_is_said_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("store.db.turns");
        std::fs::write(&blocker, b"a file where the directory would be").unwrap();
        let across = Across::beside(&dir.path().join("store.db"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = runtime.block_on(across.hold("step", "r/k/1")).unwrap_err();
        assert!(e.to_string().contains("store.db.turns"), "{e}");
    }
}
