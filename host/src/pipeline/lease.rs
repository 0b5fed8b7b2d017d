//! A run's lease as its driver holds it. Every transition renews it (the
//! recorder's transaction); a write to a target renews it again first when
//! the run may have waited since its last transition long enough for the
//! lease to run out: before a retry of the write (after a pause and a
//! failed attempt), or when half the lease has passed (waiting for an
//! adapter's turn behind many runs). Another driver can take a run only
//! once its lease ran out (or its holder is known to be gone), so a write
//! made right after a renewal is made by the run's one driver; one whose
//! renewal finds the run taken over is not made (`StoreError::LeaseLost`).

use crate::store::{Store, StoreError, runs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Who holds a run's lease, for how long a renewal extends it, and when
/// it was last renewed (shared by the run's recorder and its calls).
#[derive(Debug, Clone)]
pub struct Lease {
    owner: String,
    ttl: Duration,
    renewed: Arc<Mutex<Instant>>,
}

impl Lease {
    /// A lease just taken (or renewed) by `owner`.
    pub fn new(owner: String, ttl: Duration) -> Lease {
        Lease {
            owner,
            ttl,
            renewed: Arc::new(Mutex::new(Instant::now())),
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Renewed now (by a transition that committed).
    pub fn renewed(&self) {
        *self.renewed.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Whether half the lease has passed since it was last renewed.
    fn half_gone(&self) -> bool {
        let renewed = *self.renewed.lock().unwrap_or_else(|e| e.into_inner());
        renewed.elapsed() >= self.ttl / 2
    }

    /// Before a write to a target (`retry`: not its first attempt): renew
    /// the lease of `run_id` in `store` when the run may have waited long
    /// enough since its last renewal for it to run out.
    pub fn keep_for_write(
        &self,
        store: &mut Store,
        run_id: &str,
        retry: bool,
    ) -> Result<(), StoreError> {
        if !retry && !self.half_gone() {
            return Ok(());
        }
        let tx = store.write()?;
        runs::renew(&tx, run_id, &self.owner, self.ttl)?;
        tx.commit()?;
        self.renewed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs::tests::store_with_run;
    use crate::store::runs::{Claim, claim};

    const FAR: &str = "2999-01-01T00:00:00.000Z";

    /// A run leased to `holder` until [`FAR`]; its store and id.
    fn leased_to(holder: &str) -> (Store, String) {
        let (mut store, run) = store_with_run();
        let ttl = Duration::from_secs(60);
        assert_eq!(claim(&mut store, &run, holder, ttl).unwrap(), Claim::Taken);
        store
            .conn()
            .unwrap()
            .execute(
                "UPDATE runs SET lease_until = ?1 WHERE run_id = ?2",
                [FAR, &run],
            )
            .unwrap();
        (store, run)
    }

    fn lease_until(store: &Store, run: &str) -> String {
        store
            .conn()
            .unwrap()
            .query_row(
                "SELECT lease_until FROM runs WHERE run_id = ?1",
                [run],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn a_first_attempt_soon_after_a_transition_writes_nothing() {
        let (mut store, run) = leased_to("me:1");
        let lease = Lease::new("me:1".into(), Duration::from_secs(300));
        lease.keep_for_write(&mut store, &run, false).unwrap();
        assert_eq!(lease_until(&store, &run), FAR);
    }

    #[test]
    fn a_retry_or_a_write_after_half_the_lease_renews_it_first() {
        for (ttl, retry) in [(Duration::from_secs(300), true), (Duration::ZERO, false)] {
            let (mut store, run) = leased_to("me:1");
            let lease = Lease::new("me:1".into(), ttl);
            lease.keep_for_write(&mut store, &run, retry).unwrap();
            assert_ne!(lease_until(&store, &run), FAR, "{ttl:?} {retry}");
        }
    }

    #[test]
    fn a_write_of_a_run_another_driver_took_is_refused() {
        let (mut store, run) = leased_to("elsewhere:1");
        let lease = Lease::new("me:1".into(), Duration::from_secs(300));
        let err = lease.keep_for_write(&mut store, &run, true).unwrap_err();
        assert!(
            matches!(&err, StoreError::LeaseLost { holder, .. } if holder == "elsewhere:1"),
            "{err}"
        );
        assert_eq!(lease_until(&store, &run), FAR);
    }
}
