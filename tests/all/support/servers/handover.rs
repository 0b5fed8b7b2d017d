//! A TCP relay in front of a real SMTP receiver that breaks one exchange at
//! a chosen moment, as a network or a crash would: the receiver is real
//! (what arrived is read from its Maildir); only the relay misbehaves, and
//! only once. Every other connection is relayed byte for byte.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the relay does, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// Close the first connection before the receiver's greeting: nothing
    /// was handed over.
    BeforeGreeting,
    /// Relay the message and its closing dot, then close the connection
    /// instead of relaying the receiver's answer: the receiver has the
    /// mail, the sender cannot know.
    AfterHandover,
}

/// The relay; it stops with the test process.
pub struct HandoverRelay {
    addr: String,
}

/// The end of a message's data, as SMTP writes it.
const END_OF_DATA: &[u8] = b"\r\n.\r\n";

impl HandoverRelay {
    pub fn start(upstream: &str, how: Break) -> HandoverRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let upstream = upstream.to_string();
        let spent = Arc::new(AtomicBool::new(false));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let upstream = upstream.clone();
                let spent = spent.clone();
                std::thread::spawn(move || relay(client, &upstream, how, &spent));
            }
        });
        HandoverRelay { addr }
    }

    /// `IP:port` to send through.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

fn relay(client: TcpStream, upstream: &str, how: Break, spent: &AtomicBool) {
    if how == Break::BeforeGreeting && !spent.swap(true, Ordering::SeqCst) {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let server = TcpStream::connect(upstream).unwrap();
    let handed_over = Arc::new(AtomicBool::new(false));
    let (mut from_client, mut to_server) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let seen = handed_over.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let mut tail = Vec::new();
        while let Ok(n) = from_client.read(&mut buf) {
            if n == 0 {
                break;
            }
            // Seen before it is relayed, so the answer cannot come first.
            tail.extend_from_slice(&buf[..n]);
            if tail.windows(END_OF_DATA.len()).any(|w| w == END_OF_DATA) {
                seen.store(true, Ordering::SeqCst);
            }
            let keep = tail.len().saturating_sub(END_OF_DATA.len());
            tail.drain(..keep);
            if to_server.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let (mut from_server, mut to_client) = (server, client);
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = from_server.read(&mut buf) {
        if n == 0 {
            break;
        }
        if how == Break::AfterHandover
            && handed_over.load(Ordering::SeqCst)
            && !spent.swap(true, Ordering::SeqCst)
        {
            // The receiver answered the message: it has it. Cut.
            let _ = to_client.shutdown(Shutdown::Both);
            let _ = from_server.shutdown(Shutdown::Both);
            return;
        }
        if to_client.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to_client.shutdown(Shutdown::Both);
}
