//! The `audit` table: appended in the caller's transaction, read in order.

use super::Write;
use super::{Store, StoreError, now_rfc3339};
use crate::audit::anchor::Anchor;
use crate::audit::{Break, Entry, GENESIS, Row, Verified, Verifier, hash};
use rusqlite::{Connection, OptionalExtension, params};

/// Append one row inside `tx`, chained to the current head. The caller
/// commits it together with the state change it records.
pub fn append(tx: &Write<'_>, entry: &Entry) -> Result<Row, StoreError> {
    let head = match tx.take_audit_head() {
        Some((seq, hash)) => Some(Anchor { seq, hash }),
        None => stored_head(tx)?,
    };
    let (seq, prev_hash) = match head {
        Some(Anchor { seq, hash }) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    // serde_json's map is ordered by key: the text is canonical. A payload
    // is identifiers and states; one that carries a long value from outside
    // keeps its bounded form.
    let mut payload = entry.payload.to_string();
    if payload.len() > crate::kept::KEPT_STRING_BYTES {
        let mut value = entry.payload.clone();
        crate::kept::bound_json(&mut value);
        payload = value.to_string();
    }
    let at = now_rfc3339();
    let row = Row {
        hash: hash(
            seq,
            &at,
            entry.run_id.as_deref(),
            entry.event_id.as_deref(),
            &entry.kind,
            &payload,
            entry.policy_sha256.as_deref(),
            entry.adapter_sha256.as_deref(),
            &prev_hash,
        ),
        seq,
        at,
        run_id: entry.run_id.clone(),
        event_id: entry.event_id.clone(),
        kind: entry.kind.clone(),
        payload,
        policy_sha256: entry.policy_sha256.clone(),
        adapter_sha256: entry.adapter_sha256.clone(),
        prev_hash,
    };
    tx.prepare_cached(
        "INSERT INTO audit (seq, at, run_id, event_id, kind, payload, policy_sha256,
                            adapter_sha256, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        row.seq,
        row.at,
        row.run_id,
        row.event_id,
        row.kind,
        row.payload,
        row.policy_sha256,
        row.adapter_sha256,
        row.prev_hash,
        row.hash
    ])?;
    tx.set_audit_head(row.seq, row.hash.clone());
    Ok(row)
}

/// How many rows the commands verify between two reports of progress.
pub const PROGRESS_EVERY: usize = 100_000;

const SELECT_ROWS: &str = "SELECT seq, at, run_id, event_id, kind, payload, policy_sha256,
                                   adapter_sha256, prev_hash, hash FROM audit";

fn row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        seq: r.get(0)?,
        at: r.get(1)?,
        run_id: r.get(2)?,
        event_id: r.get(3)?,
        kind: r.get(4)?,
        payload: r.get(5)?,
        policy_sha256: r.get(6)?,
        adapter_sha256: r.get(7)?,
        prev_hash: r.get(8)?,
        hash: r.get(9)?,
    })
}

impl Store {
    /// Append one row in a transaction of its own (for records that stand
    /// alone; state changes append inside their own transaction).
    pub fn audit(&mut self, entry: &Entry) -> Result<Row, StoreError> {
        let tx = self.write()?;
        let row = append(&tx, entry)?;
        tx.commit()?;
        Ok(row)
    }

    /// Every row (or one run's), in sequence order.
    pub fn audit_rows(&self, run_id: Option<&str>) -> Result<Vec<Row>, StoreError> {
        let mut rows = Vec::new();
        self.each_audit_row(run_id, |row| {
            rows.push(row);
            Ok::<_, StoreError>(())
        })?;
        Ok(rows)
    }

    /// Every row (or one run's), in sequence order, handed to `f` as it is
    /// read: a trail of any length in the same memory.
    pub fn each_audit_row<E: From<StoreError>>(
        &self,
        run_id: Option<&str>,
        mut f: impl FnMut(Row) -> Result<(), E>,
    ) -> Result<(), E> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(&format!(
                "{SELECT_ROWS} WHERE (?1 IS NULL OR run_id = ?1) ORDER BY seq"
            ))
            .map_err(StoreError::from)?;
        let mut rows = stmt.query([run_id]).map_err(StoreError::from)?;
        while let Some(r) = rows.next().map_err(StoreError::from)? {
            f(row_of(r).map_err(StoreError::from)?)?;
        }
        Ok(())
    }

    /// The whole chain recomputed as it is read, row by row (any length in
    /// the same memory), and checked against `anchors`: the outer error is
    /// the store's, the inner one where the chain breaks.
    pub fn verify_audit(&self, anchors: &[Anchor]) -> Result<Result<Verified, Break>, StoreError> {
        self.verify_audit_showing(anchors, usize::MAX, |_| {})
    }

    /// [`Store::verify_audit`], telling `progress` how many rows have
    /// verified every `every` rows (a long chain takes a while).
    pub fn verify_audit_showing(
        &self,
        anchors: &[Anchor],
        every: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Result<Verified, Break>, StoreError> {
        /// How a break stops the reading.
        enum Stop {
            Store(StoreError),
            Broken(Break),
        }
        impl From<StoreError> for Stop {
            fn from(e: StoreError) -> Stop {
                Stop::Store(e)
            }
        }
        let mut verifier = Verifier::with_anchors(anchors);
        let each = |row: Row| {
            verifier.push(&row).map_err(Stop::Broken)?;
            if verifier.rows().is_multiple_of(every.max(1)) {
                progress(verifier.rows());
            }
            Ok(())
        };
        match self.each_audit_row(None, each) {
            Ok(()) => Ok(verifier.finish()),
            Err(Stop::Broken(broken)) => Ok(Err(broken)),
            Err(Stop::Store(e)) => Err(e),
        }
    }

    /// The newest `n` rows, newest first.
    pub fn newest_audit_rows(&self, n: usize) -> Result<Vec<Row>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!("{SELECT_ROWS} ORDER BY seq DESC LIMIT ?1"))?;
        let rows = stmt.query_map([i64::try_from(n).unwrap_or(i64::MAX)], row_of)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest row as an anchor, as stored (not verified: reading the
    /// whole chain is `audit verify`'s job), or `None` when there is none.
    pub fn audit_head(&self) -> Result<Option<Anchor>, StoreError> {
        stored_head(&*self.conn()?)
    }
}

/// The newest stored row's sequence number and hash.
fn stored_head(conn: &Connection) -> Result<Option<Anchor>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| {
            Ok(Anchor {
                seq: r.get(0)?,
                hash: r.get(1)?,
            })
        })
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str) -> Entry {
        Entry {
            run_id: Some("run-1".into()),
            event_id: Some("evt-1".into()),
            kind: kind.into(),
            payload: serde_json::json!({ "step": kind }),
            policy_sha256: None,
            adapter_sha256: None,
        }
    }

    #[test]
    fn rows_of_one_transaction_and_of_the_next_chain_on_from_each_other() {
        let mut store = Store::in_memory().unwrap();
        store.audit(&entry("first")).unwrap();
        let tx = store.write().unwrap();
        let a = append(&tx, &entry("a")).unwrap();
        let b = append(&tx, &entry("b")).unwrap();
        tx.commit().unwrap();
        // A transaction rolled back leaves no head behind for the next.
        let tx = store.write().unwrap();
        append(&tx, &entry("undone")).unwrap();
        drop(tx);
        let c = store.audit(&entry("c")).unwrap();
        assert_eq!((a.seq, b.seq, c.seq), (2, 3, 4));
        assert_eq!(b.prev_hash, a.hash);
        assert_eq!(c.prev_hash, b.hash);
        let rows = store.audit_rows(None).unwrap();
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["first", "a", "b", "c"]);
        assert_eq!(crate::audit::verify(rows).unwrap().rows, 4);
    }

    #[test]
    fn the_stored_chain_verifies_as_it_is_read_against_anchors_and_tampering() {
        let mut store = Store::in_memory().unwrap();
        for kind in ["a", "b", "c", "d"] {
            store.audit(&entry(kind)).unwrap();
        }
        let rows = store.audit_rows(None).unwrap();
        let anchor = |seq: i64, hash: &str| Anchor {
            seq,
            hash: hash.into(),
        };
        let mut told = Vec::new();
        let ok = store
            .verify_audit_showing(&[anchor(2, &rows[1].hash)], 2, |n| told.push(n))
            .unwrap()
            .unwrap();
        assert_eq!(told, [2, 4]);
        assert_eq!((ok.rows, ok.head.as_str()), (4, rows[3].hash.as_str()));
        let newest = store.newest_audit_rows(2).unwrap();
        assert_eq!(
            newest.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [4, 3],
            "newest first"
        );
        let rewritten = store
            .verify_audit(&[anchor(3, &rows[0].hash)])
            .unwrap()
            .unwrap_err();
        assert_eq!(rewritten.seq, 3);
        assert!(rewritten.reason.contains("rewritten"), "{rewritten}");
        let cut = store
            .verify_audit(&[anchor(9, &rows[0].hash)])
            .unwrap()
            .unwrap_err();
        assert!(cut.reason.contains("cut off"), "{cut}");
        store
            .conn()
            .unwrap()
            .execute("UPDATE audit SET payload = '{}' WHERE seq = 2", [])
            .unwrap();
        // Progress is told as rows verify, up to where the chain breaks.
        let mut told = Vec::new();
        let broken = store
            .verify_audit_showing(&[], 1, |n| told.push(n))
            .unwrap()
            .unwrap_err();
        assert_eq!(broken.seq, 2, "{broken}");
        assert_eq!(told, [1]);
    }
}
