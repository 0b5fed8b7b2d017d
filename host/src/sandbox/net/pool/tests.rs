//! Kept connections against a real loopback HTTP/1.1 server that counts
//! the connections it accepts and the requests it answers.

use super::*;
use crate::sandbox::net::send::{self, Timeouts, read_bounded};
use http_body_util::Full;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    first_byte: Duration::from_secs(5),
    between_bytes: Duration::from_secs(5),
};

/// A server on 127.0.0.1 answering every request `ok`; with `close`, each
/// answer says `Connection: close` and the server closes after it.
struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

impl Server {
    async fn start(close: bool) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let (a, n) = (accepted.clone(), answered.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, close, n.clone()));
            }
        });
        Server {
            addr,
            accepted,
            answered,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

async fn serve(stream: tokio::net::TcpStream, close: bool, answered: Arc<AtomicUsize>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        read.read_exact(&mut body).await.unwrap();
        let head = if close { "Connection: close\r\n" } else { "" };
        let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{head}\r\nok");
        // Counted before the answer goes out, so a client that has it
        // finds it counted (and the connection's accept before it).
        answered.fetch_add(1, Ordering::SeqCst);
        write.write_all(answer.as_bytes()).await.unwrap();
        if close {
            return;
        }
    }
}

fn post() -> http::Request<Full<Bytes>> {
    http::Request::post("/hook")
        .header(http::header::HOST, "target.example")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

/// A POST to `addr` through `pool`, its answer read to the end.
async fn post_read(pool: &Pool<Full<Bytes>>, addr: SocketAddr) -> Vec<u8> {
    let answer = send::send(post(), addr, None, TIMEOUTS, pool)
        .await
        .unwrap();
    read_bounded(answer.into_body(), 1024)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn requests_read_to_the_end_go_on_one_connection() {
    let server = Server::start(false).await;
    let pool = Pool::default();
    for _ in 0..3 {
        assert_eq!(post_read(&pool, server.addr).await, b"ok");
    }
    assert_eq!((server.accepted(), server.answered()), (1, 3));
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn an_answer_left_unread_closes_its_connection() {
    let server = Server::start(false).await;
    let pool = Pool::default();
    let answer = send::send(post(), server.addr, None, TIMEOUTS, &pool)
        .await
        .unwrap();
    drop(answer);
    assert_eq!(pool.idle_count(), 0);
    assert_eq!(post_read(&pool, server.addr).await, b"ok");
    assert_eq!((server.accepted(), server.answered()), (2, 2));
}

#[tokio::test]
async fn a_connection_the_server_closes_is_not_used_again() {
    let server = Server::start(true).await;
    let pool = Pool::default();
    for _ in 0..3 {
        assert_eq!(post_read(&pool, server.addr).await, b"ok");
    }
    assert_eq!((server.accepted(), server.answered()), (3, 3));
}

#[tokio::test]
async fn a_connection_idle_past_the_pools_time_is_not_used_again() {
    let server = Server::start(false).await;
    let pool = Pool::keeping_for(Duration::ZERO);
    for _ in 0..2 {
        assert_eq!(post_read(&pool, server.addr).await, b"ok");
    }
    assert_eq!((server.accepted(), server.answered()), (2, 2));
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test]
async fn a_connection_is_used_again_only_for_its_own_address() {
    let (one, two) = (Server::start(false).await, Server::start(false).await);
    let pool = Pool::default();
    for addr in [one.addr, two.addr, one.addr, two.addr] {
        assert_eq!(post_read(&pool, addr).await, b"ok");
    }
    assert_eq!((one.accepted(), one.answered()), (1, 2));
    assert_eq!((two.accepted(), two.answered()), (1, 2));
    let runtime = tokio::runtime::Handle::current().id();
    let tls_key = Key {
        addr: one.addr,
        tls_name: Some("target.example".into()),
        runtime,
    };
    assert!(pool.take(&tls_key).is_none(), "plain HTTP is not TLS");
    let plain = Key {
        tls_name: None,
        ..tls_key
    };
    assert!(pool.take(&plain).is_some(), "the connection to one is kept");
}

#[test]
fn a_connection_is_used_again_only_from_the_runtime_that_drives_it() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let (serving, other) = (runtime(), runtime());
    let server = serving.block_on(Server::start(false));
    // The server's tasks run while `serving` is driven: on a thread of
    // their own, blocked on it.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_thread = std::thread::spawn(move || {
        serving.block_on(async {
            let _ = stopped.await;
        })
    });
    let pool = Pool::default();
    let first = runtime();
    assert_eq!(first.block_on(post_read(&pool, server.addr)), b"ok");
    assert_eq!(first.block_on(post_read(&pool, server.addr)), b"ok");
    assert_eq!(server.accepted(), 1);
    // Another runtime opens its own, though one is idle in the pool.
    assert_eq!(other.block_on(post_read(&pool, server.addr)), b"ok");
    assert_eq!((server.accepted(), server.answered()), (2, 3));
    stop.send(()).unwrap();
    server_thread.join().unwrap();
}

/// A request body that sends one part and then never ends.
struct Unfinished(bool);

impl Body for Unfinished {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.0 {
            // Never woken again: the body never ends.
            return Poll::Pending;
        }
        self.0 = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{\"a\":")))))
    }
}

type Boxed = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// A connect time far longer than the tests below allow themselves.
const LONG: Timeouts = Timeouts {
    connect: Duration::from_secs(600),
    ..TIMEOUTS
};

fn request(body: Boxed) -> http::Request<Boxed> {
    http::Request::post("/hook")
        .header(http::header::HOST, "target.example")
        .body(body)
        .unwrap()
}

/// A request the server answers before its body ends (it reads none
/// without a length), the answer read to its end: its connection goes back
/// to `pool` still sending the request.
async fn answered_early(pool: &Pool<Boxed>, addr: SocketAddr) {
    use http_body_util::BodyExt;
    let early = request(Unfinished(false).boxed());
    let answer = send::send(early, addr, None, LONG, pool).await.unwrap();
    let body = read_bounded(answer.into_body(), 1024).await.unwrap();
    assert_eq!(body.unwrap(), b"ok");
}

/// A request that finishes, within 30 s (the connect time is 600 s).
async fn post_in_time(pool: &Pool<Boxed>, addr: SocketAddr) {
    use http_body_util::BodyExt;
    let next = request(Full::new(Bytes::from_static(b"{}")).boxed());
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        send::send(next, addr, None, LONG, pool),
    )
    .await
    .expect("the request does not wait for busy connections")
    .unwrap();
    let body = read_bounded(answer.into_body(), 1024).await.unwrap();
    assert_eq!(body.unwrap(), b"ok");
}

#[tokio::test]
async fn a_kept_connection_still_sending_a_request_is_not_waited_for() {
    let server = Server::start(false).await;
    let pool = Pool::default();
    answered_early(&pool, server.addr).await;
    assert_eq!(pool.idle_count(), 1);
    post_in_time(&pool, server.addr).await;
    assert_eq!((server.accepted(), server.answered()), (2, 2));
}

#[tokio::test]
async fn a_request_tries_a_few_kept_connections_before_a_new_one() {
    let server = Server::start(false).await;
    let pool = Pool::default();
    let busy = || answered_early(&pool, server.addr);
    tokio::join!(busy(), busy(), busy(), busy(), busy());
    assert_eq!((server.accepted(), pool.idle_count()), (5, 5));
    post_in_time(&pool, server.addr).await;
    // Three were tried and closed; the other two wait, beside the new one.
    assert_eq!(server.accepted(), 6);
    assert_eq!(pool.idle_count(), 5 - 3 + 1);
}
