//! Delivering a key at most once: a delivery is marked under way
//! (`<channel>.sending/<hash of the key>`, holding the key) before it goes
//! out and the mark removed once the target's answer says whether it
//! arrived; a mark found later means an earlier try may have delivered it.

use super::{SentLog, fits_a_line, fnv1a};
use crate::{AdapterError, fs};

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

impl SentLog {
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
        self.deliver_prepared(key, about, || Ok(()), |()| send())
    }

    /// [`SentLog::deliver`] in two parts: `prepare` readies the delivery
    /// without handing anything over (connected, a mail's envelope taken),
    /// and only then is it marked under way and `send` hands it over. A
    /// stop while it is prepared leaves no mark, so the next try simply
    /// delivers. Neither runs when the key was delivered already or an
    /// earlier try may have delivered it.
    pub fn deliver_prepared<T>(
        &self,
        key: &str,
        about: &str,
        prepare: impl FnOnce() -> Result<T, AdapterError>,
        send: impl FnOnce(T) -> Delivery,
    ) -> Result<(), AdapterError> {
        fits_a_line(key)?;
        if self.contains(key)? {
            return Ok(());
        }
        let mark = self.mark_of(key);
        let marked = self.marked(&mark, key)?;
        // Only a person who looked may have it sent again.
        if marked && !crate::person_resumed() {
            return Err(unsure(
                key,
                about,
                "an earlier try ended without learning whether it arrived",
            ));
        }
        let ready = prepare()?;
        if !marked {
            fs::append_making_dir(&mark, format!("{SENDING}\n{key}\n").as_bytes())?;
        }
        match send(ready) {
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
}

/// The answer when a key may have been delivered.
fn unsure(key: &str, about: &str, why: &str) -> AdapterError {
    AdapterError::Conflict(format!(
        "{about} (key {key}) may have been delivered already ({why}), and this target cannot \
         be asked whether it was: look there. If it did not arrive, resuming the run \
         delivers it; if it did, resuming would deliver it a second time"
    ))
}
