//! Outbound mail through the host (`[[capabilities.smtp]]`).
//!
//! The host builds and sends the message and checks the server, the sender
//! and every recipient's domain against the grant; a refusal comes back as
//! [`AdapterError::Denied`], as is a mail past the 16 one call may send.
//! [`prepare`] takes a mail up to the handover (connected, the envelope
//! accepted, nothing sent) and [`ReadyMail::hand_over`] sends it, saying on
//! failure whether the server may hold it: an adapter marks the mail as
//! under way between the two ([`crate::sent::SentLog::deliver`]), so it
//! never sends twice. [`send`] does both at once, a mail perhaps taken
//! being `transient`. Only available inside a component: natively both
//! answer `unsupported`.

use crate::AdapterError;

pub use crate::bindings::mail::{DeliveryFailure, Email, ReadyMail};

/// Hand one plain-text mail to the server at `IP:port`.
pub fn send(server: &str, email: &Email) -> Result<(), AdapterError> {
    backend::send(server, email)
}

/// Take one plain-text mail to the server at `IP:port` up to the
/// handover: its [`ReadyMail::hand_over`] sends it; dropped, it is never
/// sent. It lasts as long as the call.
pub fn prepare(server: &str, email: &Email) -> Result<ReadyMail, AdapterError> {
    backend::prepare(server, email)
}

#[cfg(target_arch = "wasm32")]
mod backend {
    pub use crate::bindings::mail::{prepare, send};
}

#[cfg(not(target_arch = "wasm32"))]
mod backend {
    use super::{AdapterError, Email, ReadyMail};

    fn unsupported() -> AdapterError {
        AdapterError::Unsupported("mail is sent by the host: run inside a component".into())
    }

    pub fn send(_: &str, _: &Email) -> Result<(), AdapterError> {
        Err(unsupported())
    }

    pub fn prepare(_: &str, _: &Email) -> Result<ReadyMail, AdapterError> {
        Err(unsupported())
    }
}
