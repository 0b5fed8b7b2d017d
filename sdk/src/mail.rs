//! Outbound mail through the host (`[[capabilities.smtp]]`).
//!
//! The host builds and sends the message and checks the server, the sender
//! and every recipient's domain against the grant; a refusal comes back as
//! [`AdapterError::Denied`], as is a mail past the 16 one call may send.
//! Only available inside a component: natively [`send`] answers
//! `unsupported`.

use crate::AdapterError;

pub use crate::bindings::mail::Email;

/// Hand one plain-text mail to the server at `IP:port`.
pub fn send(server: &str, email: &Email) -> Result<(), AdapterError> {
    backend::send(server, email)
}

#[cfg(target_arch = "wasm32")]
mod backend {
    pub use crate::bindings::mail::send;
}

#[cfg(not(target_arch = "wasm32"))]
mod backend {
    use super::{AdapterError, Email};

    pub fn send(_: &str, _: &Email) -> Result<(), AdapterError> {
        Err(AdapterError::Unsupported(
            "mail is sent by the host: run inside a component".into(),
        ))
    }
}
