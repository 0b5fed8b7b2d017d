//! A TCP relay in front of a real SMTP receiver that breaks one exchange at
//! a chosen moment, as a network or a crash would: the receiver is real
//! (what arrived is read from its Maildir); only the relay misbehaves, and
//! only once. Every other connection is relayed byte for byte.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

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
    /// SIGKILL the sending process (see [`HandoverRelay::sender_is`]) when
    /// it sends `DATA`, before the receiver sees it: nothing handed over.
    KillBeforeData,
    /// As [`Break::AfterHandover`], SIGKILLing the sending process instead
    /// of relaying the receiver's answer.
    KillAtHandover,
}

/// The relay; it stops with the test process.
pub struct HandoverRelay {
    addr: String,
    sender: Arc<Sender>,
}

/// The process a kill is for, once the test knows it.
#[derive(Default)]
struct Sender {
    pid: Mutex<u32>,
    known: Condvar,
}

impl Sender {
    /// SIGKILL the sender, waiting until the test has named it.
    fn kill(&self) {
        let mut pid = self.pid.lock().unwrap();
        while *pid == 0 {
            pid = self.known.wait(pid).unwrap();
        }
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success(), "kill {pid}");
    }
}

/// The end of a message's data, as SMTP writes it.
const END_OF_DATA: &[u8] = b"\r\n.\r\n";

impl HandoverRelay {
    pub fn start(upstream: &str, how: Break) -> HandoverRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let upstream = upstream.to_string();
        let spent = Arc::new(AtomicBool::new(false));
        let sender = Arc::new(Sender::default());
        let for_kills = sender.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let upstream = upstream.clone();
                let spent = spent.clone();
                let sender = for_kills.clone();
                std::thread::spawn(move || relay(client, &upstream, how, &spent, &sender));
            }
        });
        HandoverRelay { addr, sender }
    }

    /// The process a `Kill...` break kills.
    pub fn sender_is(&self, pid: u32) {
        *self.sender.pid.lock().unwrap() = pid;
        self.sender.known.notify_all();
    }

    /// `IP:port` to send through.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

fn relay(
    client: TcpStream,
    upstream: &str,
    how: Break,
    spent: &Arc<AtomicBool>,
    sender: &Arc<Sender>,
) {
    if how == Break::BeforeGreeting && !spent.swap(true, Ordering::SeqCst) {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let server = TcpStream::connect(upstream).unwrap();
    let handed_over = Arc::new(AtomicBool::new(false));
    let (mut from_client, mut to_server) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let seen = handed_over.clone();
    let (spent_here, killer) = (spent.clone(), sender.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let mut tail = Vec::new();
        while let Ok(n) = from_client.read(&mut buf) {
            if n == 0 {
                break;
            }
            if how == Break::KillBeforeData
                && buf[..n].starts_with(b"DATA\r\n")
                && !spent_here.swap(true, Ordering::SeqCst)
            {
                // Killed with the envelope taken and nothing handed over.
                killer.kill();
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
        if matches!(how, Break::AfterHandover | Break::KillAtHandover)
            && handed_over.load(Ordering::SeqCst)
            && !spent.swap(true, Ordering::SeqCst)
        {
            // The receiver answered the message: it has it. Cut (or kill
            // the sender first).
            if how == Break::KillAtHandover {
                sender.kill();
            }
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
