//! A log of idempotency keys already delivered, for targets that cannot be
//! read back (a mail server, a webhook receiver).
//!
//! One file per channel under a granted directory, one key per line. An
//! adapter delivers through [`SentLog::deliver`], which skips a key already
//! delivered, records the key once the target took it, and reports
//! [`SentLog::recent`] as the channel's applied keys.
//!
//! A delivery is marked before it goes out (`<channel>.sending/`, one small
//! file per key under way), so the one moment a log cannot record, after
//! the target took the key and before its line is written, is not taken
//! for "never sent": a process killed there, or a target that took the
//! message and never answered, leaves the mark, and no later try delivers
//! again. It answers `conflict` instead, saying the key may have been
//! delivered, and the run hands that to a person. Only a try in a step
//! that person resumed delivers it again ([`crate::person_resumed`], which
//! the host answers from its store: a retry or a resume after a crash is
//! not their decision). Each delivery therefore reaches its target at most
//! once unless a person decides otherwise.
//!
//! Beside the log, `<channel>.index/` spreads the same keys over 256
//! bucket files (`00`..`ff`, by a fixed hash of the key), so asking whether
//! a key was ever delivered reads one bucket, 1/256 of the history, instead
//! of the whole log (which made every delivery slower than the last). A log
//! written before the index existed is indexed once, on the first question;
//! `.complete` in the directory says that has been done. A key is logged
//! before it is indexed: a stop between the two leaves it in the log only,
//! where it still counts among the recent keys (the channel reads as
//! delivered, so the step is not applied again); asked about after it has
//! left that window, its delivery mark (removed only after both) still
//! keeps it from being delivered twice.

use crate::{AdapterError, fs};

/// The longest line (a key and its line break) a log holds; bounds how
/// much of its end [`SentLog::recent`] reads. The host's keys are 68 bytes.
const MAX_LINE: u64 = 256;
const TYPICAL_LINE: u64 = 72;

/// The delivered keys of one channel.
#[derive(Debug, Clone)]
pub struct SentLog {
    path: String,
    /// The directory of bucket files.
    index: String,
}

/// In the index directory: every key of the log is in its bucket.
const COMPLETE: &str = ".complete";

/// FNV-1a (64-bit) of a key's bytes. Part of the on-disk format:
/// changing it would hide indexed keys and delivery marks.
fn fnv1a(key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The bucket a key belongs in: the low byte of its hash.
fn bucket_name(key: &str) -> String {
    format!("{:02x}", fnv1a(key) & 0xff)
}

/// How one try at delivering a key ended, as the adapter learned it.
#[derive(Debug)]
pub enum Delivery {
    /// The target took it.
    Delivered,
    /// The target certainly does not hold it: the try failed before
    /// anything was handed over, or the target answered that it would not
    /// take it. Trying again cannot deliver it twice.
    NotDelivered(AdapterError),
    /// It was handed over and no answer came (the connection broke, or the
    /// answer did not come in time): the target may hold it. Why, for the
    /// person who will look.
    Unsure(String),
}

/// A delivery under way: marked before it went out, removed once it is
/// known to have arrived or not.
const SENDING: &str = "sending";

/// A file's bytes, or none if it does not exist.
fn read_or_empty(path: &str) -> Result<Vec<u8>, AdapterError> {
    match fs::read(path) {
        Err(AdapterError::NotFound(_)) => Ok(Vec::new()),
        read => read,
    }
}

/// Whether `text`, a file of lines, has `key` as one of them.
fn has_line(text: &[u8], key: &str) -> bool {
    text.split(|b| *b == b'\n')
        .any(|line| line == key.as_bytes())
}

impl SentLog {
    /// The log for `channel` in the mounted directory `dir` (e.g. `/sent`).
    pub fn new(dir: &str, channel: &str) -> Result<SentLog, AdapterError> {
        let safe = !channel.is_empty()
            && !channel.starts_with('.')
            && channel
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !safe {
            return Err(AdapterError::Invalid(format!(
                "channel {channel:?}: use letters, digits, '-', '_' and '.'"
            )));
        }
        Ok(SentLog {
            path: format!("{dir}/{channel}.sent"),
            index: format!("{dir}/{channel}.index"),
        })
    }

    /// Whether `key` was ever delivered on this channel (a delivery must
    /// never be repeated, however old).
    pub fn contains(&self, key: &str) -> Result<bool, AdapterError> {
        if has_line(&read_or_empty(&self.in_index(&bucket_name(key)))?, key) {
            return Ok(true);
        }
        if fs::try_exists(&self.in_index(COMPLETE))? {
            return Ok(false);
        }
        // A log from before the index: put each of its keys in its bucket,
        // then say so. A stop half-way only means doing it again (a key
        // twice in a bucket is still one key).
        let log = read_or_empty(&self.path)?;
        fs::create_dir_all(&self.index)?;
        for line in String::from_utf8_lossy(&log).lines() {
            if !line.is_empty() {
                self.add(&bucket_name(line), line)?;
            }
        }
        fs::write(&self.in_index(COMPLETE), b"")?;
        Ok(has_line(&log, key))
    }

    fn in_index(&self, name: &str) -> String {
        format!("{}/{name}", self.index)
    }

    /// Append `key` to its bucket: one line, one append, so a concurrent
    /// appender's line never lands inside it. The directory is made only
    /// when the append finds it missing, not looked for on every record.
    fn add(&self, bucket: &str, key: &str) -> Result<(), AdapterError> {
        fs::append_making_dir(&self.in_index(bucket), format!("{key}\n").as_bytes())
    }

    /// The latest `window` keys, oldest first. Only the end of the log is
    /// read, so a channel's history does not slow every call down.
    pub fn recent(&self, window: usize) -> Result<Vec<String>, AdapterError> {
        // Sized for the host's keys first; longer ones need a second read.
        for line in [TYPICAL_LINE, MAX_LINE] {
            let budget = (window as u64 + 1).saturating_mul(line);
            let tail = match fs::read_tail(&self.path, budget) {
                Ok(tail) => tail,
                Err(AdapterError::NotFound(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let text = String::from_utf8_lossy(&tail.bytes);
            let mut lines: Vec<&str> = text.lines().collect();
            if !tail.whole && !lines.is_empty() {
                // The read began inside the log: its first line may be cut.
                lines.remove(0);
            }
            if tail.whole || lines.len() >= window || line == MAX_LINE {
                let skip = lines.len().saturating_sub(window);
                return Ok(lines[skip..].iter().map(|k| k.to_string()).collect());
            }
        }
        unreachable!("the last pass returns")
    }

    /// Deliver `key` with `send`, at most once: not at all when the key was
    /// delivered already, and not again when an earlier try may have
    /// delivered it. Then the answer is `conflict`, saying so, and the run
    /// goes to a person; only a try in a step that person resumed
    /// ([`crate::person_resumed`]) delivers it again.
    ///
    /// `about` names the delivery for the person who will look (`the mail
    /// "Release R-1 done" to ops@example.com`): the key alone is seldom
    /// what they can see.
    pub fn deliver(
        &self,
        key: &str,
        about: &str,
        send: impl FnOnce() -> Delivery,
    ) -> Result<(), AdapterError> {
        fits_a_line(key)?;
        if self.contains(key)? {
            return Ok(());
        }
        let mark = self.mark_of(key);
        if self.marked(&mark, key)? {
            // Only a person who looked may have it sent again.
            if !crate::person_resumed() {
                return Err(unsure(
                    key,
                    about,
                    "an earlier try ended without learning whether it arrived",
                ));
            }
        } else {
            fs::append_making_dir(&mark, format!("{SENDING}\n{key}\n").as_bytes())?;
        }
        match send() {
            Delivery::Delivered => {
                self.record(key)?;
                fs::remove_file(&mark)
            }
            Delivery::NotDelivered(e) => {
                fs::remove_file(&mark)?;
                Err(e)
            }
            // The mark stays, for the next try to find.
            Delivery::Unsure(why) => Err(unsure(key, about, &why)),
        }
    }

    /// As [`SentLog::deliver`], for a target that drops a repeat of the
    /// key by itself (a receiver that keeps the `webhook-id`s it has seen,
    /// as Standard Webhooks asks receivers to): no mark is kept, and a try
    /// whose outcome is unsure is `transient`, tried again with the same
    /// key; the target keeps one. Only the operator, who knows the target,
    /// can say that it does.
    pub fn deliver_repeatable(
        &self,
        key: &str,
        send: impl FnOnce() -> Delivery,
    ) -> Result<(), AdapterError> {
        fits_a_line(key)?;
        if self.contains(key)? {
            return Ok(());
        }
        match send() {
            Delivery::Delivered => self.record(key),
            Delivery::NotDelivered(e) => Err(e),
            Delivery::Unsure(why) => Err(AdapterError::Transient(format!(
                "{key} may have been delivered already ({why}); it goes again with the same \
                 key, which the target drops if it has it"
            ))),
        }
    }

    /// The file that marks `key` as under way.
    fn mark_of(&self, key: &str) -> String {
        format!("{}.sending/{:016x}", self.stem(), fnv1a(key))
    }

    fn stem(&self) -> &str {
        self.path.strip_suffix(".sent").unwrap_or(&self.path)
    }

    /// Whether `key` is marked under way. A mark cut short (a process
    /// killed while making it) counts: that is the answer that never
    /// delivers twice.
    fn marked(&self, mark: &str, key: &str) -> Result<bool, AdapterError> {
        let text = match fs::read(mark) {
            Ok(text) => text,
            Err(AdapterError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&text);
        let marked_key = text.lines().nth(1);
        // A key line cut short is this key's (the mark's name is its hash);
        // only a whole other key is another's.
        if let Some(other) = marked_key
            && !key.starts_with(other)
        {
            return Err(AdapterError::Conflict(format!(
                "{key}: its delivery mark {mark} belongs to another key ({other}); \
                 nothing was delivered: remove the mark once that key's delivery is settled"
            )));
        }
        Ok(true)
    }

    /// Record a delivered key. [`SentLog::deliver`] does, once the target
    /// took it.
    pub fn record(&self, key: &str) -> Result<(), AdapterError> {
        fits_a_line(key)?;
        // The log first: a stop between the two leaves a key the log shows
        // as recent (so the channel reads as delivered) rather than an
        // indexed key the log never got.
        fs::append(&self.path, format!("{key}\n").as_bytes())?;
        self.add(&bucket_name(key), key)
    }
}

/// The answer when a key may have been delivered.
fn unsure(key: &str, about: &str, why: &str) -> AdapterError {
    AdapterError::Conflict(format!(
        "{about} (key {key}) may have been delivered already ({why}), and this target cannot \
         be asked whether it was: look there. If it did not arrive, resuming the run \
         delivers it; if it did, resuming would deliver it a second time"
    ))
}

/// A key a log line can hold.
fn fits_a_line(key: &str) -> Result<(), AdapterError> {
    if key.contains(['\n', '\r']) {
        return Err(AdapterError::Invalid(
            "a key cannot contain a line break".into(),
        ));
    }
    if key.len() as u64 >= MAX_LINE {
        return Err(AdapterError::Invalid(format!(
            "a key of {} bytes is longer than a sent log keeps ({} at most)",
            key.len(),
            MAX_LINE - 1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;

    #[test]
    fn recent_reads_the_latest_keys_of_a_long_log_and_contains_sees_them_all() {
        let dir = std::env::temp_dir().join(format!("handoff-sdk-sent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let h = Harness::new().dir("sent", &dir);
        h.run(|| {
            let log = SentLog::new("/sent", "coord").unwrap();
            assert!(log.recent(5).unwrap().is_empty(), "no log yet");
            for i in 0..2_000 {
                log.record(&format!("hk1-{i:064}")).unwrap();
            }
            let recent = log.recent(3).unwrap();
            let expected: Vec<String> = (1_997..2_000).map(|i| format!("hk1-{i:064}")).collect();
            assert_eq!(recent, expected);
            assert_eq!(log.recent(5_000).unwrap().len(), 2_000);
            assert!(log.contains(&format!("hk1-{:064}", 0)).unwrap());
            let long = "k".repeat(300);
            assert!(matches!(log.record(&long), Err(AdapterError::Invalid(_))));
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_log_from_before_the_index_is_indexed_once_then_answered_without_it() {
        let dir = std::env::temp_dir().join(format!("handoff-sdk-legacy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let old: Vec<String> = (0..40).map(|i| format!("hk1-old-{i}")).collect();
        std::fs::write(dir.join("coord.sent"), old.join("\n") + "\n").unwrap();
        let h = Harness::new().dir("sent", &dir);
        h.run(|| {
            let log = SentLog::new("/sent", "coord").unwrap();
            assert!(
                log.contains("hk1-old-3").unwrap(),
                "a key logged before the index"
            );
            assert!(!log.contains("hk1-never").unwrap());
            log.record("hk1-new").unwrap();
            log.record("a key with spaces").unwrap();
        });
        let index = dir.join("coord.index");
        assert!(index.join(".complete").is_file());
        for key in old
            .iter()
            .map(String::as_str)
            .chain(["hk1-new", "a key with spaces"])
        {
            let bucket = std::fs::read_to_string(index.join(bucket_name(key))).unwrap();
            assert!(bucket.lines().any(|l| l == key), "{key} in its bucket");
        }
        let buckets = std::fs::read_dir(&index).unwrap().count() - 1;
        assert!(
            buckets > 1 && buckets <= 42,
            "{buckets} buckets for 42 keys"
        );
        // Once indexed, a key is answered from its bucket alone: with the
        // log gone, old and new keys are still known.
        std::fs::remove_file(dir.join("coord.sent")).unwrap();
        h.run(|| {
            let log = SentLog::new("/sent", "coord").unwrap();
            assert!(log.contains("hk1-old-0").unwrap());
            assert!(log.contains("hk1-old-39").unwrap());
            assert!(log.contains("a key with spaces").unwrap());
            assert!(!log.contains("hk1-never").unwrap());
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Deliver `key` on `log`, counting the tries that reached `send`.
    fn deliver_counting(
        log: &SentLog,
        key: &str,
        tries: &std::cell::Cell<u32>,
        outcome: impl FnOnce() -> Delivery,
    ) -> Result<(), AdapterError> {
        log.deliver(key, "the note", || {
            tries.set(tries.get() + 1);
            outcome()
        })
    }

    #[test]
    fn a_key_is_delivered_at_most_once_unless_a_person_resumed_it() {
        let dir = std::env::temp_dir().join(format!("handoff-sdk-deliver-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let h = Harness::new().dir("sent", &dir);
        let marks = dir.join("coord.sending");
        let tries = std::cell::Cell::new(0);
        h.run(|| {
            let log = SentLog::new("/sent", "coord").unwrap();
            // Taken: recorded once, never tried again.
            deliver_counting(&log, "hk1-a", &tries, || Delivery::Delivered).unwrap();
            deliver_counting(&log, "hk1-a", &tries, || Delivery::Delivered).unwrap();
            assert_eq!(tries.get(), 1);
            assert_eq!(log.recent(10).unwrap(), ["hk1-a"]);

            // Certainly not taken: the error, and the next try goes out.
            let refused = AdapterError::Transient("connection refused".into());
            let e = deliver_counting(&log, "hk1-b", &tries, || Delivery::NotDelivered(refused));
            assert!(matches!(e, Err(AdapterError::Transient(_))), "{e:?}");
            deliver_counting(&log, "hk1-b", &tries, || Delivery::Delivered).unwrap();
            assert_eq!(tries.get(), 3);

            // Handed over, no answer: a person is asked. Every try after it
            // asks again, sending nothing, until one in a step the person
            // resumed: that one sends, once.
            let e = deliver_counting(&log, "hk1-c", &tries, || {
                Delivery::Unsure("the connection broke".into())
            });
            let Err(AdapterError::Conflict(m)) = e else {
                panic!("{e:?}")
            };
            assert!(
                m.contains(
                    "the note (key hk1-c) may have been delivered already (the connection broke)"
                ),
                "{m}"
            );
            for _ in 0..2 {
                let e = deliver_counting(&log, "hk1-c", &tries, || Delivery::Delivered);
                assert!(matches!(e, Err(AdapterError::Conflict(_))), "{e:?}");
            }
            assert_eq!(tries.get(), 4, "nothing sent until a person resumed");
            h.person_resumed(true);
            deliver_counting(&log, "hk1-c", &tries, || Delivery::Delivered).unwrap();
            deliver_counting(&log, "hk1-c", &tries, || Delivery::Delivered).unwrap();
            assert_eq!(tries.get(), 5);
            h.person_resumed(false);

            // Killed while delivering: the next try does not deliver, it
            // asks; a person's resume delivers.
            let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                deliver_counting(&log, "hk1-d", &tries, || panic!("killed mid-delivery"))
            }));
            assert!(killed.is_err());
            assert_eq!(tries.get(), 6);
            let e = deliver_counting(&log, "hk1-d", &tries, || Delivery::Delivered);
            let Err(AdapterError::Conflict(m)) = e else {
                panic!("{e:?}")
            };
            assert!(
                m.contains("an earlier try ended without learning whether it arrived"),
                "{m}"
            );
            assert_eq!(tries.get(), 6, "the try after a kill sends nothing");
            h.person_resumed(true);
            deliver_counting(&log, "hk1-d", &tries, || Delivery::Delivered).unwrap();
            h.person_resumed(false);
            assert_eq!(tries.get(), 7);
            // A person's resume of a key never tried sends it as any try.
            h.person_resumed(true);
            deliver_counting(&log, "hk1-e0", &tries, || Delivery::Delivered).unwrap();
            h.person_resumed(false);
            assert_eq!(tries.get(), 8);
            assert_eq!(
                log.recent(10).unwrap(),
                ["hk1-a", "hk1-b", "hk1-c", "hk1-d", "hk1-e0"]
            );
        });
        assert_eq!(
            std::fs::read_dir(&marks).unwrap().count(),
            0,
            "no mark outlives its delivery"
        );
        // A mark cut short by a kill while it was made reads as under way,
        // whether nothing or part of the key was written; one holding a
        // whole other key is refused, naming it.
        std::fs::write(marks.join(format!("{:016x}", fnv1a("hk1-e"))), b"").unwrap();
        std::fs::write(
            marks.join(format!("{:016x}", fnv1a("hk1-f"))),
            b"sending\nhk1-",
        )
        .unwrap();
        std::fs::write(
            marks.join(format!("{:016x}", fnv1a("hk1-g"))),
            b"sending\nhk1-x\n",
        )
        .unwrap();
        h.run(|| {
            let log = SentLog::new("/sent", "coord").unwrap();
            for key in ["hk1-e", "hk1-f"] {
                let e = deliver_counting(&log, key, &tries, || Delivery::Delivered);
                let Err(AdapterError::Conflict(m)) = e else {
                    panic!("{key}: {e:?}")
                };
                assert!(m.contains("may have been delivered already"), "{m}");
            }
            let e = deliver_counting(&log, "hk1-g", &tries, || Delivery::Delivered);
            let Err(AdapterError::Conflict(m)) = e else {
                panic!("{e:?}")
            };
            assert!(m.contains("belongs to another key (hk1-x)"), "{m}");
            assert_eq!(tries.get(), 8);
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_target_that_drops_repeats_is_tried_again_when_unsure() {
        let dir = std::env::temp_dir().join(format!("handoff-sdk-repeat-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let h = Harness::new().dir("sent", &dir);
        let tries = std::cell::Cell::new(0);
        let counting = |outcome: Delivery| {
            tries.set(tries.get() + 1);
            outcome
        };
        h.run(|| {
            let log = SentLog::new("/sent", "coord").unwrap();
            let e =
                log.deliver_repeatable("hk1-a", || counting(Delivery::Unsure("no answer".into())));
            assert!(matches!(e, Err(AdapterError::Transient(_))), "{e:?}");
            log.deliver_repeatable("hk1-a", || counting(Delivery::Delivered))
                .unwrap();
            log.deliver_repeatable("hk1-a", || counting(Delivery::Delivered))
                .unwrap();
            assert_eq!(
                tries.get(),
                2,
                "tried again once unsure, never once recorded"
            );
            assert_eq!(log.recent(10).unwrap(), ["hk1-a"]);
        });
        assert!(!dir.join("coord.sending").exists(), "no marks");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_bucket_of_a_key_never_changes() {
        // FNV-1a 64 of "" and of "a": the index on disk depends on these.
        assert_eq!(bucket_name(""), "25");
        assert_eq!(bucket_name("a"), "8c");
    }
}
