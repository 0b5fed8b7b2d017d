//! Anchors: a row's sequence number and hash (`SEQ:HASH`), copied out of
//! the store (into a ticket, another system's log, a file an operator
//! keeps elsewhere) to be checked against later.
//!
//! The chain alone proves that no row was changed, reordered or removed in
//! the middle. It cannot prove that the newest rows were not cut off, nor
//! that someone with write access did not rewrite every hash after a
//! change: both leave a chain that verifies. A row's hash covers every row
//! before it, so a chain that still holds an anchored row with the anchored
//! hash has, up to that row, exactly the rows it had when the anchor was
//! taken.

use super::{Break, Row, Verified};
use std::fmt;

/// A row as it was: its sequence number and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl Anchor {
    /// The head of a verified chain (`None` when the chain is empty).
    pub fn head(verified: &Verified) -> Option<Anchor> {
        (verified.rows > 0).then(|| Anchor {
            seq: verified.rows as i64,
            hash: verified.head.clone(),
        })
    }

    /// `SEQ:HASH`, as `audit head` prints it.
    pub fn parse(text: &str) -> Result<Anchor, String> {
        let bad = |why: &str| {
            format!(
                "{text:?} is not an anchor ({why}); write SEQ:HASH, as `handoff audit head` prints it"
            )
        };
        let (seq, hash) = text.trim().split_once(':').ok_or_else(|| bad("no ':'"))?;
        let seq: i64 = seq
            .parse()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| bad("the sequence number is not a positive integer"))?;
        let hash = hash.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the hash is not 64 hex digits"));
        }
        Ok(Anchor { seq, hash })
    }

    /// Anchors kept in a file, one per line; blank lines and lines starting
    /// with `#` are skipped. `origin` names the file in errors.
    pub fn parse_lines(text: &str, origin: &str) -> Result<Vec<Anchor>, String> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|(i, l)| Anchor::parse(l).map_err(|e| format!("{origin}:{}: {e}", i + 1)))
            .collect()
    }
}

/// Recompute the chain, then check that it still holds every anchored row
/// with its anchored hash.
pub fn verify_anchored<R: std::borrow::Borrow<Row>>(
    rows: impl IntoIterator<Item = R>,
    anchors: &[Anchor],
) -> Result<Verified, Break> {
    let mut verifier = super::Verifier::with_anchors(anchors);
    for row in rows {
        verifier.push(row.borrow())?;
    }
    verifier.finish()
}

#[cfg(test)]
mod tests {
    use super::super::tests::chain;
    use super::*;

    fn anchor_of(rows: &[Row], seq: usize) -> Anchor {
        Anchor {
            seq: seq as i64,
            hash: rows[seq - 1].hash.clone(),
        }
    }

    #[test]
    fn a_chain_holding_its_anchors_verifies_and_a_longer_one_too() {
        let rows = chain(5);
        let anchors = [anchor_of(&rows, 3), anchor_of(&rows, 5)];
        assert_eq!(verify_anchored(rows, &anchors).unwrap().rows, 5);
        let longer = chain(8);
        assert_eq!(verify_anchored(longer, &anchors).unwrap().rows, 8);
    }

    #[test]
    fn a_cut_off_or_rewritten_chain_verifies_alone_but_not_against_its_anchor() {
        let rows = chain(5);
        let anchor = anchor_of(&rows, 4);
        let cut: Vec<Row> = rows.iter().take(3).cloned().collect();
        assert!(super::super::verify(cut.clone()).is_ok());
        let err = verify_anchored(cut, std::slice::from_ref(&anchor)).unwrap_err();
        assert_eq!(err.seq, 4);
        assert!(err.reason.contains("ends at row 3"), "{err}");

        // A different chain of the same length, every hash consistent.
        let mut rewritten = chain(5);
        rewritten[1].payload = "{\"step\":\"forged\"}".into();
        let mut prev = rewritten[0].hash.clone();
        for row in rewritten.iter_mut().skip(1) {
            row.prev_hash = prev;
            row.hash = row.recomputed_hash();
            prev = row.hash.clone();
        }
        assert!(super::super::verify(rewritten.clone()).is_ok());
        let err = verify_anchored(rewritten, &[anchor]).unwrap_err();
        assert_eq!(err.seq, 4);
        assert!(err.reason.contains("rewritten"), "{err}");
    }

    #[test]
    fn anchors_parse_from_text_and_files_naming_the_bad_line() {
        let hash = "ab".repeat(32);
        let a = Anchor::parse(&format!(" 12:{} ", hash.to_uppercase())).unwrap();
        assert_eq!(a.to_string(), format!("12:{hash}"));
        for bad in ["12", "x:ab", "0:ab", &format!("3:{}", &hash[1..])] {
            assert!(Anchor::parse(bad).is_err(), "{bad}");
        }
        let file = format!("# taken daily\n\n3:{hash}\n4:nope\n");
        let err = Anchor::parse_lines(&file, "anchors.txt").unwrap_err();
        assert!(err.starts_with("anchors.txt:4: \"4:nope\""), "{err}");
        let ok = Anchor::parse_lines(&format!("# c\n3:{hash}\n"), "a").unwrap();
        assert_eq!(ok.len(), 1);
    }
}
