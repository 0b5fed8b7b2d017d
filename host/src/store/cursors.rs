//! Reconciliation cursors: how far polling has read each source, so that a
//! restart continues where the last poll stopped.

use super::{Store, StoreError, now_rfc3339};
use rusqlite::{OptionalExtension, params};

impl Store {
    /// The saved cursor for a source adapter instance under a policy.
    pub fn poll_cursor(
        &self,
        adapter: &str,
        policy_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT cursor FROM poll_cursors WHERE adapter = ?1 AND policy_id = ?2",
            )?
            .query_row(params![adapter, policy_id], |r| r.get(0))
            .optional()?)
    }

    pub fn save_poll_cursor(
        &mut self,
        adapter: &str,
        policy_id: &str,
        cursor: &str,
    ) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO poll_cursors (adapter, policy_id, cursor, updated_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (adapter, policy_id)
             DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            )?
            .execute(params![adapter, policy_id, cursor, now_rfc3339()])?;
        Ok(())
    }
}
