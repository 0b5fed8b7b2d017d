//! What a guest hands back is bounded. Every value lifted from a call
//! (an observed record, a decision, a page of changes, an error message)
//! is measured right after wasmtime lifts it, before anything copies,
//! formats or stores it; one over a limit fails the call with
//! [`Oversize`], which names the part and the limit, and the value is
//! dropped. The limits are the host ceiling's (`[ceiling] result-*`).
//! A result within them that names one field twice is the adapter's
//! `invalid` ([`one_reading`]).
//!
//! The other half is [`crate::kept`]: the bounded form of a value that is
//! kept (in a follow-up packet or an audit row).

use super::{AdapterError, ChangePage, Decision, Observed, RecordRef};
use crate::kept::render;
use std::fmt;

/// How large a call's result may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultLimits {
    /// Bytes in any one string.
    pub string_bytes: usize,
    /// Entries in any one list.
    pub list_entries: usize,
    /// Bytes of every string of the result together.
    pub total_bytes: usize,
}

impl Default for ResultLimits {
    fn default() -> Self {
        ResultLimits {
            string_bytes: 64 * 1024,
            list_entries: 10_000,
            total_bytes: 1024 * 1024,
        }
    }
}

/// Which limit a result broke, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversize {
    /// The part of the result (`state`, `links`, `fields[3].1`...).
    pub part: String,
    pub size: usize,
    pub limit: usize,
    /// The ceiling key that sets the limit.
    pub key: &'static str,
}

impl fmt::Display for Oversize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.key == "result-list-entries" {
            "entries"
        } else {
            "bytes"
        };
        write!(
            f,
            "{} has {} {unit}, over the limit of {} (ceiling.{})",
            self.part, self.size, self.limit, self.key
        )
    }
}

/// Adds up a result as it is measured.
pub struct Meter {
    limits: ResultLimits,
    total: usize,
}

impl Meter {
    pub fn new(limits: ResultLimits) -> Meter {
        Meter { limits, total: 0 }
    }

    pub fn text(&mut self, part: impl FnOnce() -> String, text: &str) -> Result<(), Oversize> {
        if text.len() > self.limits.string_bytes {
            return Err(Oversize {
                part: part(),
                size: text.len(),
                limit: self.limits.string_bytes,
                key: "result-string-bytes",
            });
        }
        self.total += text.len();
        if self.total > self.limits.total_bytes {
            return Err(Oversize {
                part: format!("the result, up to {}", part()),
                size: self.total,
                limit: self.limits.total_bytes,
                key: "result-bytes",
            });
        }
        Ok(())
    }

    pub fn list(&mut self, part: &str, len: usize) -> Result<(), Oversize> {
        if len > self.limits.list_entries {
            return Err(Oversize {
                part: part.into(),
                size: len,
                limit: self.limits.list_entries,
                key: "result-list-entries",
            });
        }
        Ok(())
    }

    fn texts<'a>(
        &mut self,
        part: &str,
        items: impl ExactSizeIterator<Item = &'a String>,
    ) -> Result<(), Oversize> {
        self.list(part, items.len())?;
        for (i, item) in items.enumerate() {
            self.text(|| format!("{part}[{i}]"), item)?;
        }
        Ok(())
    }

    fn fields(&mut self, fields: &[(String, String)]) -> Result<(), Oversize> {
        self.list("fields", fields.len())?;
        for (i, (name, value)) in fields.iter().enumerate() {
            self.text(|| format!("fields[{i}] name"), name)?;
            self.text(|| format!("field {}", render(name, 64)), value)?;
        }
        Ok(())
    }

    fn record(&mut self, part: &str, r: &RecordRef) -> Result<(), Oversize> {
        self.text(|| format!("{part}.system"), &r.system)?;
        self.text(|| format!("{part}.kind"), &r.kind)?;
        self.text(|| format!("{part}.id"), &r.id)
    }

    fn revision(&mut self, revision: &Option<String>) -> Result<(), Oversize> {
        match revision {
            Some(r) => self.text(|| "revision".into(), r),
            None => Ok(()),
        }
    }
}

/// A value lifted from a guest, measured part by part.
pub trait Bounded {
    fn measure(&self, meter: &mut Meter) -> Result<(), Oversize>;

    /// Its named fields, if it has any: each name may be given once.
    fn named_fields(&self) -> &[(String, String)] {
        &[]
    }
}

/// A result that names one field twice, refused as the adapter's own
/// `invalid`: a condition or a packet could read either value, and which
/// one the source meant is for a person to find out.
pub fn one_reading<T>(result: Result<T, AdapterError>) -> Result<T, AdapterError>
where
    Result<T, AdapterError>: Bounded,
{
    let mut names = std::collections::HashSet::new();
    match result
        .named_fields()
        .iter()
        .find(|(name, _)| !names.insert(name))
    {
        None => result,
        Some((name, _)) => Err(AdapterError::Invalid(format!(
            "the answer gives field {:?} twice, which could be read either way",
            render(name, 64)
        ))),
    }
}

/// Measure `value` against `limits`.
pub fn check(value: &impl Bounded, limits: ResultLimits) -> Result<(), Oversize> {
    value.measure(&mut Meter::new(limits))
}

impl Bounded for Observed {
    fn measure(&self, m: &mut Meter) -> Result<(), Oversize> {
        m.text(|| "state".into(), &self.state)?;
        m.revision(&self.revision)?;
        m.fields(&self.fields)?;
        m.texts("links", self.links.iter())?;
        m.texts("applied-keys", self.applied_keys.iter())
    }

    fn named_fields(&self) -> &[(String, String)] {
        &self.fields
    }
}

impl Bounded for Decision {
    fn measure(&self, m: &mut Meter) -> Result<(), Oversize> {
        m.record("record", &self.record)?;
        m.text(|| "state".into(), &self.state)?;
        m.revision(&self.revision)?;
        m.fields(&self.fields)?;
        m.texts("links", self.links.iter())
    }

    fn named_fields(&self) -> &[(String, String)] {
        &self.fields
    }
}

impl Bounded for ChangePage {
    fn measure(&self, m: &mut Meter) -> Result<(), Oversize> {
        m.list("changes", self.changes.len())?;
        for (i, change) in self.changes.iter().enumerate() {
            m.record(&format!("changes[{i}].record"), &change.record)?;
            m.text(|| format!("changes[{i}].state"), &change.state)?;
            if let Some(r) = &change.revision {
                m.text(|| format!("changes[{i}].revision"), r)?;
            }
        }
        m.text(|| "next-cursor".into(), &self.next_cursor)
    }
}

/// The most of an adapter's error message passed on: a few sentences for a
/// person (a message up to the ceiling's `result-string-bytes` is read, and
/// cut here, so one failing call does not put 64 KiB into every log line,
/// packet and notice that repeats it).
pub const MESSAGE_BYTES: usize = 2048;

/// An adapter's error as it is passed on: its message on one line, with
/// nothing in it that drives a terminal ([`super::guest_log::escaped`]), at
/// most [`MESSAGE_BYTES`]. The message is for people, who read it in
/// packets, logs and `runs show`.
pub fn plain(err: AdapterError) -> AdapterError {
    let line = |s: String| super::guest_log::escaped(&s, MESSAGE_BYTES);
    match err {
        AdapterError::NotFound(s) => AdapterError::NotFound(line(s)),
        AdapterError::Conflict(s) => AdapterError::Conflict(line(s)),
        AdapterError::Transient(s) => AdapterError::Transient(line(s)),
        AdapterError::Denied(s) => AdapterError::Denied(line(s)),
        AdapterError::Invalid(s) => AdapterError::Invalid(line(s)),
        AdapterError::Unsupported(s) => AdapterError::Unsupported(line(s)),
    }
}

impl Bounded for AdapterError {
    fn measure(&self, m: &mut Meter) -> Result<(), Oversize> {
        let message = match self {
            AdapterError::NotFound(s)
            | AdapterError::Conflict(s)
            | AdapterError::Transient(s)
            | AdapterError::Denied(s)
            | AdapterError::Invalid(s)
            | AdapterError::Unsupported(s) => s,
        };
        m.text(|| "the error message".into(), message)
    }
}

impl<T: Bounded> Bounded for Result<T, AdapterError> {
    fn measure(&self, m: &mut Meter) -> Result<(), Oversize> {
        match self {
            Ok(v) => v.measure(m),
            Err(e) => e.measure(m),
        }
    }

    fn named_fields(&self) -> &[(String, String)] {
        self.as_ref().map_or(&[], |v| v.named_fields())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed() -> Observed {
        Observed {
            exists: true,
            state: "open".into(),
            revision: Some("1".into()),
            fields: vec![("release_id".into(), "R-42".into())],
            links: vec!["https://e/1".into()],
            applied_keys: vec![],
        }
    }

    #[test]
    fn a_result_within_every_limit_passes() {
        assert_eq!(check(&observed(), ResultLimits::default()), Ok(()));
    }

    #[test]
    fn each_limit_names_the_part_that_broke_it() {
        let limits = ResultLimits {
            string_bytes: 12,
            list_entries: 2,
            total_bytes: 50,
        };
        assert_eq!(check(&observed(), limits), Ok(()));
        let mut o = observed();
        o.state = "x".repeat(13);
        let e = check(&o, limits).unwrap_err();
        assert_eq!(
            (e.part.as_str(), e.size, e.key),
            ("state", 13, "result-string-bytes")
        );
        let mut o = observed();
        o.links = vec!["a".into(); 3];
        let e = check(&o, limits).unwrap_err();
        assert_eq!(
            (e.part.as_str(), e.size, e.key),
            ("links", 3, "result-list-entries")
        );
        let mut o = observed();
        o.applied_keys = vec!["123456789012".into(), "123456789012".into()];
        let e = check(&o, limits).unwrap_err();
        assert_eq!(e.key, "result-bytes");
        assert!(e.to_string().contains("ceiling.result-bytes"), "{e}");
        let err: Result<Observed, AdapterError> = Err(AdapterError::Invalid("y".repeat(13)));
        assert_eq!(check(&err, limits).unwrap_err().part, "the error message");
    }
}
