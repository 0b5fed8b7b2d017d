//! The audit trail: evidence, not logs.
//!
//! Rows are appended, never changed. Each row's hash covers its sequence
//! number, time, run, event, kind, payload, policy and adapter digests, and
//! the previous row's hash, so changing, reordering or removing any row
//! breaks the chain from that row on. [`verify`] recomputes it offline and
//! names the first bad row. Cutting off the newest rows, or rewriting every
//! hash after a change, leaves a chain that verifies: [`anchor`]s (a row's
//! sequence number and hash, kept outside the store) catch both.
//!
//! Payloads carry identifiers, states and links only (the privacy rule):
//! callers build them from those, never from narrative text.

pub mod anchor;

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a caller appends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    pub run_id: Option<String>,
    pub event_id: Option<String>,
    /// What happened: `event-received`, `step-applied`, `capability-decision`...
    pub kind: String,
    pub payload: serde_json::Value,
    pub policy_sha256: Option<String>,
    pub adapter_sha256: Option<String>,
}

/// A stored row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub seq: i64,
    pub at: String,
    pub run_id: Option<String>,
    pub event_id: Option<String>,
    pub kind: String,
    /// The payload as stored (canonical JSON text).
    pub payload: String,
    pub policy_sha256: Option<String>,
    pub adapter_sha256: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of a row's content and its predecessor's hash. The fields are
/// encoded as one JSON array, so no two different rows encode alike.
#[allow(clippy::too_many_arguments)]
pub fn hash(
    seq: i64,
    at: &str,
    run_id: Option<&str>,
    event_id: Option<&str>,
    kind: &str,
    payload: &str,
    policy_sha256: Option<&str>,
    adapter_sha256: Option<&str>,
    prev_hash: &str,
) -> String {
    let encoded = serde_json::to_string(&(
        seq,
        at,
        run_id,
        event_id,
        kind,
        payload,
        policy_sha256,
        adapter_sha256,
        prev_hash,
    ))
    .expect("a tuple of strings encodes");
    hex::encode(Sha256::digest(encoded.as_bytes()))
}

impl Row {
    /// The hash its content and `prev_hash` call for (what `hash` must be).
    pub fn recomputed_hash(&self) -> String {
        hash(
            self.seq,
            &self.at,
            self.run_id.as_deref(),
            self.event_id.as_deref(),
            &self.kind,
            &self.payload,
            self.policy_sha256.as_deref(),
            self.adapter_sha256.as_deref(),
            &self.prev_hash,
        )
    }
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The first row that does not verify.
    pub seq: i64,
    pub reason: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "audit chain broken at row {}: {}", self.seq, self.reason)
    }
}

/// A verified chain: how many rows, and the head hash to compare with a
/// copy kept elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub rows: usize,
    pub head: String,
}

/// Recompute the chain over rows in sequence order.
pub fn verify<R: std::borrow::Borrow<Row>>(
    rows: impl IntoIterator<Item = R>,
) -> Result<Verified, Break> {
    anchor::verify_anchored(rows, &[])
}

/// The chain recomputed one row at a time, holding only the last hash (and
/// the anchors still to meet): a chain of any length verifies in the same
/// memory.
#[derive(Debug)]
pub struct Verifier {
    prev: String,
    count: usize,
    /// Anchors not met yet, the lowest last.
    anchors: Vec<anchor::Anchor>,
    /// The first anchored row whose hash differs, reported once the chain
    /// itself has verified (a break in the chain is said first).
    mismatch: Option<Break>,
}

impl Verifier {
    /// A verifier that also checks each anchored row's hash as it passes.
    pub fn with_anchors(anchors: &[anchor::Anchor]) -> Verifier {
        let mut anchors = anchors.to_vec();
        anchors.sort_by_key(|a| std::cmp::Reverse(a.seq));
        Verifier {
            prev: GENESIS.to_string(),
            count: 0,
            anchors,
            mismatch: None,
        }
    }

    /// The next row, in sequence order.
    pub fn push(&mut self, row: &Row) -> Result<(), Break> {
        let expected = self.count as i64 + 1;
        if row.seq != expected {
            return Err(Break {
                seq: expected,
                reason: format!("row {expected} is missing (the next row is {})", row.seq),
            });
        }
        if row.prev_hash != self.prev {
            return Err(Break {
                seq: row.seq,
                reason:
                    "it does not follow the row before it (a row was removed, reordered or altered)"
                        .into(),
            });
        }
        if row.recomputed_hash() != row.hash {
            return Err(Break {
                seq: row.seq,
                reason: "its content does not match its hash (the row was altered)".into(),
            });
        }
        while self.anchors.last().is_some_and(|a| a.seq <= row.seq) {
            let anchor = self.anchors.pop().expect("just seen");
            let wrong = if anchor.seq != row.seq {
                // Below the first row: no row ever had it.
                Some(format!("no row {} exists in any chain", anchor.seq))
            } else {
                (anchor.hash != row.hash).then(|| {
                    format!(
                        "its hash is {}, not the anchored {}: the chain up to it was rewritten",
                        row.hash, anchor.hash
                    )
                })
            };
            if let Some(reason) = wrong
                && self.mismatch.is_none()
            {
                self.mismatch = Some(Break {
                    seq: anchor.seq,
                    reason,
                });
            }
        }
        self.prev.clone_from(&row.hash);
        self.count += 1;
        Ok(())
    }

    /// How many rows have verified so far.
    pub fn rows(&self) -> usize {
        self.count
    }

    /// The chain ends here: how many rows and its head, or the first
    /// anchor it does not keep.
    pub fn finish(self) -> Result<Verified, Break> {
        if let Some(mismatch) = self.mismatch {
            return Err(mismatch);
        }
        if let Some(anchor) = self.anchors.last() {
            return Err(Break {
                seq: anchor.seq,
                reason: format!(
                    "the chain ends at row {}, but row {} was anchored: the newest rows were cut off",
                    self.count, anchor.seq
                ),
            });
        }
        Ok(Verified {
            rows: self.count,
            head: self.prev,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn chain(n: i64) -> Vec<Row> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let payload = format!("{{\"step\":\"s{seq}\"}}");
                let h = hash(
                    seq,
                    "t",
                    Some("run-1"),
                    None,
                    "step-applied",
                    &payload,
                    None,
                    None,
                    &prev,
                );
                let row = Row {
                    seq,
                    at: "t".into(),
                    run_id: Some("run-1".into()),
                    event_id: None,
                    kind: "step-applied".into(),
                    payload,
                    policy_sha256: None,
                    adapter_sha256: None,
                    prev_hash: prev.clone(),
                    hash: h.clone(),
                };
                prev = h;
                row
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_reports_its_head() {
        let rows = chain(5);
        let head = rows[4].hash.clone();
        assert_eq!(verify(rows), Ok(Verified { rows: 5, head }));
        assert_eq!(verify(Vec::<Row>::new()).unwrap().head, GENESIS);
    }

    #[test]
    fn altering_reordering_or_removing_a_row_names_it() {
        let mut altered = chain(5);
        altered[2].payload = "{\"step\":\"forged\"}".into();
        assert_eq!(verify(altered).unwrap_err().seq, 3);

        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(verify(removed).unwrap_err().seq, 2);

        let mut swapped = chain(5);
        swapped.swap(1, 2);
        (swapped[1].seq, swapped[2].seq) = (2, 3);
        assert_eq!(verify(swapped).unwrap_err().seq, 2);

        let mut rehashed = chain(5);
        // Altering a row and fixing its own hash still breaks the next link.
        rehashed[2].kind = "step-skipped".into();
        rehashed[2].hash = rehashed[2].recomputed_hash();
        assert_eq!(verify(rehashed).unwrap_err().seq, 4);
    }
}
