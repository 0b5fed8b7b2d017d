//! Per-adapter concurrency: how many calls each adapter instance may have
//! in flight at once, across every engine that shares one `Throttle` (the
//! service's workers share one). A target that can take a handful of
//! writes at a time (a small tracker, a rate-limited API) is protected
//! however many runs are being driven. Instances without a limit are not
//! throttled.

use crate::config::AdapterInstance;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Default)]
pub struct Throttle {
    limits: BTreeMap<String, Arc<Semaphore>>,
}

impl Throttle {
    /// A throttle with each instance's configured `concurrency`.
    pub fn new<'a>(instances: impl IntoIterator<Item = &'a AdapterInstance>) -> Throttle {
        Throttle {
            limits: instances
                .into_iter()
                .filter_map(|i| Some((i.name.clone(), Arc::new(Semaphore::new(i.concurrency?)))))
                .collect(),
        }
    }

    /// Wait for room to call `adapter`; the call may proceed while the
    /// returned permit is held. `None`: that adapter is not throttled.
    pub async fn acquire(&self, adapter: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = self.limits.get(adapter)?.clone();
        // The semaphore is never closed.
        semaphore.acquire_owned().await.ok()
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
        drop(first);
        assert!(ready(third.as_mut()).unwrap().is_some());
        // Unlimited and unknown adapters never wait.
        for _ in 0..10 {
            assert!(ready(pin!(throttle.acquire("free"))).unwrap().is_none());
        }
        drop(second);
    }
}
