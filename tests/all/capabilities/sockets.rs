//! Sockets: TCP to a granted address connects; any other is refused.

use super::*;
use crate::support::*;
use handoff::config::AdapterInstance;

#[tokio::test]
async fn a_declared_socket_address_connects_to_a_real_listener() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = package(
        "probe",
        &probe_manifest(
            "probe-tcp",
            &format!("[[capabilities.sockets]]\naddress = \"{addr}\"\n"),
        ),
    );
    let sandbox = sandbox();
    let adapter = approved(
        &sandbox,
        dir.path(),
        &AdapterInstance::new("probe-tcp", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    instance
        .observe(&rec("tcp", &addr.to_string()))
        .await
        .unwrap()
        .unwrap();
    // The connection is in the listener's backlog: accepting does not block.
    listener.set_nonblocking(true).unwrap();
    let (_conn, peer) = listener.accept().expect("the guest's connection arrived");
    assert!(peer.ip().is_loopback());
}

/// A granted address says where an adapter may connect, not how much it
/// may send there: one call sends at most 64 MiB through its sockets, and
/// is stopped at the write past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_call_sends_through_its_sockets_is_bounded() {
    use handoff::sandbox::CallError;
    use handoff::sandbox::surfaces::sockets::writes::MOST_BYTES_PER_CALL;
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // What each connection brought, read to its end.
    let received = tokio::spawn(async move {
        let mut sizes = Vec::new();
        for _ in 0..2 {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let mut n = 0u64;
            while let Ok(read @ 1..) = conn.read(&mut buf).await {
                n += read as u64;
            }
            sizes.push(n);
        }
        sizes
    });
    // A hundred MiB through a debug build take more than the probe's second.
    let manifest = probe_manifest(
        "sender",
        &format!("[[capabilities.sockets]]\naddress = \"{addr}\"\n"),
    )
    .replace("call-timeout-ms = 1000", "call-timeout-ms = 60000");
    let dir = package("probe", &manifest);
    let adapter = approved(
        &sandbox(),
        dir.path(),
        &AdapterInstance::new("sender", dir.path()),
    );
    let mut instance = adapter.instantiate().await.unwrap();
    let err = instance
        .observe(&rec("tcp-send", &format!("100 {addr}")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Stopped { surface: "sockets", why, .. } if why.contains("64 MiB")),
        "{err}"
    );
    assert_eq!(denials(&mut instance, "sockets").len(), 1);
    drop(instance);
    // A fresh instance sends again, within the bound.
    let mut instance = adapter.instantiate().await.unwrap();
    instance
        .observe(&rec("tcp-send", &format!("8 {addr}")))
        .await
        .unwrap()
        .unwrap();
    drop(instance);
    let sizes = received.await.unwrap();
    assert_eq!(sizes, vec![MOST_BYTES_PER_CALL, 8 << 20]);
}

#[tokio::test]
async fn a_socket_to_an_undeclared_address_is_denied() {
    let server = TestServer::start().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut f = fixture(&server).await;
    let addr = listener.local_addr().unwrap().to_string();
    assert_denied(&mut f.instance, "tcp", &addr).await;
    assert_denied(&mut f.instance, "tcp", &server.addr.to_string()).await;
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "a connection reached the listener"
    );
    assert_eq!(denials(&mut f.instance, "sockets").len(), 2);
}
