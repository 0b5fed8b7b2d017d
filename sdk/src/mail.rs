//! Outbound mail through the host (`[[capabilities.smtp]]`).
//!
//! The host builds and sends the message and checks the server, the sender
//! and every recipient's domain against the grant; a refusal comes back as
//! [`AdapterError::Denied`], as is a mail past the 16 one call may send.
//! [`deliver`] also says, when a mail fails, whether the server may hold it
//! (what [`crate::sent::SentLog::deliver`] needs to send at most once);
//! [`send`] folds that into `transient`. Only available inside a component:
//! natively both answer `unsupported`.

use crate::AdapterError;

pub use crate::bindings::mail::{DeliveryFailure, Email};

/// Hand one plain-text mail to the server at `IP:port`.
pub fn send(server: &str, email: &Email) -> Result<(), AdapterError> {
    backend::send(server, email)
}

/// As [`send`], but a failure says whether the server may hold the mail:
/// [`DeliveryFailure::NotDelivered`] when it certainly does not,
/// [`DeliveryFailure::Unsure`] when the message was handed over and no
/// answer came.
pub fn deliver(server: &str, email: &Email) -> Result<(), DeliveryFailure> {
    backend::deliver(server, email)
}

#[cfg(target_arch = "wasm32")]
mod backend {
    pub use crate::bindings::mail::{deliver, send};
}

#[cfg(not(target_arch = "wasm32"))]
mod backend {
    use super::{AdapterError, DeliveryFailure, Email};

    fn unsupported() -> AdapterError {
        AdapterError::Unsupported("mail is sent by the host: run inside a component".into())
    }

    pub fn send(_: &str, _: &Email) -> Result<(), AdapterError> {
        Err(unsupported())
    }

    pub fn deliver(_: &str, _: &Email) -> Result<(), DeliveryFailure> {
        Err(DeliveryFailure::NotDelivered(unsupported()))
    }
}
