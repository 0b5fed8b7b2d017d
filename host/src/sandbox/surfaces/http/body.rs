//! What one call may send in request bodies: at most
//! [`MOST_BODY_BYTES_PER_CALL`], all its requests together. A body is a
//! stream the guest writes while the host sends it, so each of its frames
//! takes its share as it passes; the frame past the budget is not sent,
//! the request fails (`HTTP-request-body-size`), and the denial is
//! recorded once.

use super::HTTP;
use crate::sandbox::budget::Budget;
use crate::sandbox::decision::DecisionLog;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// The most bytes of request bodies one call may send.
pub const MOST_BODY_BYTES_PER_CALL: u64 = 64 * 1024 * 1024;

/// `body`, sent only as far as the call's `budget` goes; `shown` names the
/// request in the denial.
pub fn limited(body: WasiBody, budget: &Budget, log: DecisionLog, shown: String) -> WasiBody {
    http_body_util::BodyExt::boxed_unsync(Budgeted {
        inner: body,
        budget: budget.clone(),
        denial: Some((log, shown)),
    })
}

/// A request body whose data frames take their share of the call's budget.
struct Budgeted {
    inner: WasiBody,
    budget: Budget,
    /// Where the denial goes, until it has gone.
    denial: Option<(DecisionLog, String)>,
}

impl Body for Budgeted {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        let len = frame.data_ref().map_or(0, Bytes::len);
        if !this.budget.take(len) {
            if let Some((log, shown)) = this.denial.take() {
                log.deny(
                    HTTP,
                    shown,
                    format!(
                        "more than {} MiB of request bodies in one call",
                        MOST_BODY_BYTES_PER_CALL >> 20
                    ),
                );
            }
            return Poll::Ready(Some(Err(HttpError::HttpRequestBodySize(Some(
                MOST_BODY_BYTES_PER_CALL,
            )))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
