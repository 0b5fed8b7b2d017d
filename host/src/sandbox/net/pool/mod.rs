//! Connections kept open between the requests one adapter instance sends to
//! the same checked address (and, for HTTPS, the same TLS name), so a run's
//! calls to a target do not each connect and shake hands again.
//!
//! A pool belongs to one instance's loaded policy: no other adapter sends
//! on its connections. A connection goes back to the pool only once its
//! answer's body was read to the end (one dropped mid-body is closed, as
//! HTTP/1 requires); it is used again only while it has been idle less than
//! [`IDLE_FOR`], well under the time servers keep idle connections open
//! (5 s in Apache's default, 60-75 s in nginx's), so a request seldom meets
//! one the server is closing. When it does, a request the connection never
//! took is sent on a new connection; one it took and then lost unanswered
//! fails as any lost answer does (it is never sent twice by the pool).

use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How long a connection may have been idle and still be used again.
pub const IDLE_FOR: Duration = Duration::from_secs(2);

/// Idle connections kept per address; more are closed when they come back.
pub const IDLE_PER_ADDRESS: usize = 32;

/// How long a kept connection may take to be ready for the next request
/// (its connection task catching up): one still busy after that, say
/// sending the rest of a request its server answered early, is closed and
/// a new one opened, so that no request waits on another's.
pub const READY_WITHIN: Duration = Duration::from_millis(250);

/// Requests adapters sent on a connection of their own opening, and on one
/// kept from an earlier request, by every pool of this process (`/metrics`).
static ON_NEW: AtomicU64 = AtomicU64::new(0);
static ON_KEPT: AtomicU64 = AtomicU64::new(0);

/// A request went out on a new connection (`kept`: on a kept one).
pub(crate) fn count_request(kept: bool) {
    let counter = if kept { &ON_KEPT } else { &ON_NEW };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Requests sent so far on new connections, and on kept ones.
pub fn request_counts() -> (u64, u64) {
    (
        ON_NEW.load(Ordering::Relaxed),
        ON_KEPT.load(Ordering::Relaxed),
    )
}

/// Where a connection goes: the checked address, and the name TLS asked
/// for (none for plain HTTP); and the runtime whose task drives it. A
/// connection is used again only from that runtime: from another, a
/// request would wait on a runtime that may not be running (a command's
/// runtime between two calls) or be gone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub addr: SocketAddr,
    pub tls_name: Option<String>,
    pub runtime: tokio::runtime::Id,
}

type Idle<B> = HashMap<Key, Vec<(SendRequest<B>, Instant)>>;

/// The idle connections of one instance, by where they go.
pub struct Pool<B> {
    idle: Arc<Mutex<Idle<B>>>,
    idle_for: Duration,
}

impl<B> Default for Pool<B> {
    fn default() -> Self {
        Pool::keeping_for(IDLE_FOR)
    }
}

impl<B> std::fmt::Debug for Pool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl<B> Pool<B> {
    /// A pool that uses a connection again while it has been idle less
    /// than `idle_for`.
    pub fn keeping_for(idle_for: Duration) -> Pool<B> {
        Pool {
            idle: Arc::default(),
            idle_for,
        }
    }

    /// The most recently idled live connection to `key`, if one was idle
    /// less than the pool's time; the stale ones met on the way are closed.
    pub fn take(&self, key: &Key) -> Option<SendRequest<B>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key)?;
        let found = loop {
            match list.pop() {
                None => break None,
                Some((sender, since)) if since.elapsed() < self.idle_for && !sender.is_closed() => {
                    break Some(sender);
                }
                // Dropping the sender closes its connection.
                Some(_) => {}
            }
        };
        if list.is_empty() {
            idle.remove(key);
        }
        found
    }

    /// Connections idle now (all addresses).
    pub fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }

    /// `body`, which gives `sender` back to this pool once read to its end.
    pub fn returning(
        &self,
        body: Incoming,
        key: Key,
        sender: SendRequest<B>,
        between_bytes: Duration,
    ) -> Returning<B> {
        let mut returning = Returning {
            body,
            back: Some((Arc::downgrade(&self.idle), self.idle_for, key, sender)),
            between_bytes,
            stalled: Box::pin(tokio::time::sleep(between_bytes)),
        };
        // An answer with no body (a HEAD's, a 204) may never be read.
        if returning.body.is_end_stream() {
            returning.ended();
        }
        returning
    }
}

fn give_back<B>(idle: &Weak<Mutex<Idle<B>>>, idle_for: Duration, key: Key, sender: SendRequest<B>) {
    let Some(idle) = idle.upgrade() else { return };
    if sender.is_closed() || idle_for.is_zero() {
        return;
    }
    let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
    // Whatever has been idle too long goes first, under every address, so
    // a pool that was busy once does not keep its connections for good.
    idle.retain(|_, list| {
        list.retain(|(s, since)| since.elapsed() < idle_for && !s.is_closed());
        !list.is_empty()
    });
    let list = idle.entry(key).or_default();
    if list.len() < IDLE_PER_ADDRESS {
        list.push((sender, Instant::now()));
    }
}

/// Why an answer's body stopped.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("{0}")]
    Http(hyper::Error),
    /// Nothing came for the time allowed between two parts of the body.
    #[error("the answer stopped coming")]
    Stalled,
}

/// Where a connection goes back to: its pool (if it still exists), the
/// pool's idle time, and its key.
type Back<B> = (Weak<Mutex<Idle<B>>>, Duration, Key, SendRequest<B>);

/// An answer's body whose connection returns to its pool at the body's end.
pub struct Returning<B> {
    body: Incoming,
    back: Option<Back<B>>,
    between_bytes: Duration,
    stalled: Pin<Box<tokio::time::Sleep>>,
}

impl<B> Returning<B> {
    fn ended(&mut self) {
        if let Some((idle, idle_for, key, sender)) = self.back.take() {
            give_back(&idle, idle_for, key, sender);
        }
    }
}

impl<B> Body for Returning<B> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(None) => {
                this.ended();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                let deadline = tokio::time::Instant::now() + this.between_bytes;
                this.stalled.as_mut().reset(deadline);
                if this.body.is_end_stream() {
                    this.ended();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                // The connection is not reused: dropping the sender closes it.
                this.back = None;
                Poll::Ready(Some(Err(BodyError::Http(e))))
            }
            Poll::Pending => match this.stalled.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.back = None;
                    Poll::Ready(Some(Err(BodyError::Stalled)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests;
