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
