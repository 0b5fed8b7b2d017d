//! A call's budget, of bytes or of writes counted one by one, and an output
//! stream whose writes take their share of it: how a surface bounds what
//! one call writes (bytes into files, a socket, request bodies, a bucket;
//! files made, mails, publishes, requests that write), also when the
//! writing is done by code it does not own (wasmtime-wasi's streams) or
//! spread over many requests.

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::ClosedOutputStream;
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamError};

/// What one call may still write (bytes, or writes one by one); shared by
/// whatever writes (the instance's streams, its requests' bodies), filled
/// again at each call.
#[derive(Clone)]
pub struct Budget {
    left: Arc<AtomicU64>,
    most: u64,
}

impl Budget {
    pub fn new(most: u64) -> Self {
        Budget {
            left: Arc::new(AtomicU64::new(most)),
            most,
        }
    }

    /// A new call: the whole budget again (a stream opened in an earlier
    /// call counts against this one's).
    pub fn refill(&self) {
        self.left.store(self.most, Ordering::Relaxed);
    }

    /// Take `n` (bytes, or 1 for a write); false, taking nothing, when fewer
    /// are left.
    pub fn take(&self, n: usize) -> bool {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n)
            })
            .is_ok()
    }

    /// The output stream `stream` names in `table` (as wasmtime-wasi made
    /// it), swapped in place for one whose every write takes its share
    /// first; a write past the budget traps the call with `past()` (which
    /// the surface recognises). In place: the stream keeps its handle and
    /// its parent (a socket's streams are its children).
    pub fn count_writes(
        &self,
        table: &mut ResourceTable,
        stream: &Resource<DynOutputStream>,
        past: fn() -> wasmtime::Error,
    ) -> wasmtime::Result<()> {
        let slot = table.get_mut(stream)?;
        let inner = std::mem::replace(slot, Box::new(ClosedOutputStream));
        *slot = Box::new(Counted {
            inner,
            budget: self.clone(),
            past,
        });
        Ok(())
    }
}

/// An output stream whose every write takes its share of a budget.
struct Counted {
    inner: DynOutputStream,
    budget: Budget,
    past: fn() -> wasmtime::Error,
}

impl Counted {
    fn take(&self, n: usize) -> Result<(), StreamError> {
        if self.budget.take(n) {
            Ok(())
        } else {
            Err(StreamError::Trap((self.past)()))
        }
    }
}

#[async_trait::async_trait]
impl Pollable for Counted {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[async_trait::async_trait]
impl OutputStream for Counted {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.take(bytes.len())?;
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        self.inner.check_write()
    }

    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.take(bytes.len())?;
        self.inner.blocking_write_and_flush(bytes).await
    }

    fn write_zeroes(&mut self, n: usize) -> Result<(), StreamError> {
        self.take(n)?;
        self.inner.write_zeroes(n)
    }

    async fn write_ready(&mut self) -> Result<usize, StreamError> {
        self.inner.write_ready().await
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_taken_whole_or_not_at_all_and_refilled() {
        let budget = Budget::new(10);
        let shared = budget.clone();
        assert!(budget.take(6));
        assert!(!shared.take(5), "4 left");
        assert!(shared.take(4));
        assert!(!budget.take(1));
        budget.refill();
        assert!(shared.take(10));
    }
}
