//! Per-adapter concurrency: how many calls each adapter instance may have
//! in flight at once, across every engine that shares one `Throttle` (the
//! service's workers share one). A target that can take a handful of
//! writes at a time (a small tracker, a rate-limited API) is protected
//! however many runs are being driven. Instances without a limit are not
//! throttled.

use crate::config::AdapterInstance;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Default)]
pub struct Throttle {
    limits: BTreeMap<String, Arc<Limit>>,
}

#[derive(Debug)]
struct Limit {
    /// The configured `concurrency`.
    size: usize,
    room: Arc<Semaphore>,
    /// Calls waiting for room now.
    waiting: AtomicUsize,
    changed: Notify,
}

/// Counts one waiting call for as long as it waits (also when the wait
/// is abandoned).
struct Waiting<'a>(&'a Limit);

impl<'a> Waiting<'a> {
    fn new(limit: &'a Limit) -> Waiting<'a> {
        limit.waiting.fetch_add(1, Ordering::SeqCst);
        limit.changed.notify_waiters();
        Waiting(limit)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

impl Throttle {
    /// A throttle with each instance's configured `concurrency`.
    pub fn new<'a>(instances: impl IntoIterator<Item = &'a AdapterInstance>) -> Throttle {
        Throttle {
            limits: instances
                .into_iter()
                .filter_map(|i| {
                    let size = i.concurrency?;
                    let limit = Limit {
                        size,
                        room: Arc::new(Semaphore::new(size)),
                        waiting: AtomicUsize::new(0),
                        changed: Notify::new(),
                    };
                    Some((i.name.clone(), Arc::new(limit)))
                })
                .collect(),
        }
    }

    /// Wait for room to call `adapter`; the call may proceed while the
    /// returned permit is held. `None`: that adapter is not throttled.
    pub async fn acquire(&self, adapter: &str) -> Option<OwnedSemaphorePermit> {
        let limit = self.limits.get(adapter)?;
        if let Ok(permit) = limit.room.clone().try_acquire_owned() {
            return Some(permit);
        }
        let _waiting = Waiting::new(limit);
        // The semaphore is never closed.
        limit.room.clone().acquire_owned().await.ok()
    }

    /// Each limited adapter: its limit and the calls waiting for room now.
    pub fn limits(&self) -> impl Iterator<Item = (&str, usize, usize)> {
        self.limits
            .iter()
            .map(|(name, l)| (name.as_str(), l.size, l.waiting.load(Ordering::SeqCst)))
    }

    /// How many calls to `adapter` are waiting for room now.
    pub fn waiting(&self, adapter: &str) -> usize {
        self.limits
            .get(adapter)
            .map_or(0, |l| l.waiting.load(Ordering::SeqCst))
    }

    /// Resolves once at least `n` calls to `adapter` wait for room (for
    /// tests and tools that must know a caller is held back, not guess).
    pub async fn until_waiting(&self, adapter: &str, n: usize) {
        let Some(limit) = self.limits.get(adapter) else {
            return std::future::pending().await;
        };
        loop {
            let changed = limit.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the count is read, so no change is missed.
            changed.as_mut().enable();
            if limit.waiting.load(Ordering::SeqCst) >= n {
                return;
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn instance(name: &str, concurrency: Option<usize>) -> AdapterInstance {
        let mut i = AdapterInstance::new(name, std::path::Path::new("p"));
        i.concurrency = concurrency;
        i
    }

    fn ready<F: Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        match f.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }

    #[test]
    fn a_limited_adapter_admits_that_many_calls_and_the_next_waits_for_a_release() {
        let throttle = Throttle::new(&[instance("tracker", Some(2)), instance("free", None)]);
        let first = ready(pin!(throttle.acquire("tracker"))).unwrap();
        let second = ready(pin!(throttle.acquire("tracker"))).unwrap();
        assert!(first.is_some() && second.is_some());
        let mut third = pin!(throttle.acquire("tracker"));
        assert!(ready(third.as_mut()).is_none(), "a third call must wait");
        assert_eq!(throttle.waiting("tracker"), 1);
        assert!(ready(pin!(throttle.until_waiting("tracker", 1))).is_some());
        assert!(ready(pin!(throttle.until_waiting("tracker", 2))).is_none());
        {
            // A wait given up on is no longer counted.
            let mut fourth = pin!(throttle.acquire("tracker"));
            assert!(ready(fourth.as_mut()).is_none());
            assert_eq!(throttle.waiting("tracker"), 2);
        }
        assert_eq!(throttle.waiting("tracker"), 1);
        drop(first);
        assert!(ready(third.as_mut()).unwrap().is_some());
        assert_eq!(throttle.waiting("tracker"), 0);
        // Unlimited and unknown adapters never wait.
        for _ in 0..10 {
            assert!(ready(pin!(throttle.acquire("free"))).unwrap().is_none());
        }
        drop(second);
    }
}
