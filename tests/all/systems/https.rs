//! HTTPS through the sandbox against the test servers' HTTPS receiver:
//! the request goes to the address that was checked even when the name
//! rebinds, and the certificate is verified for the origin's name.

use crate::capabilities::*;
use crate::support::*;
use handoff::config::AdapterInstance;
use handoff::sandbox::Instance;
use handoff::sandbox::decision::Verdict;
use std::sync::Arc;

/// A resolver that answers `first` to the first lookup of a name and
/// `then` to every later one, as a rebinding name server does.
struct Rebinding {
    first: std::net::IpAddr,
    then: std::net::IpAddr,
    lookups: std::sync::atomic::AtomicUsize,
}

impl handoff::sandbox::net::Resolve for Rebinding {
    fn lookup<'a>(
        &'a self,
        _host: &'a str,
        _port: u16,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<Vec<std::net::IpAddr>>> + Send + 'a>,
    > {
        let n = self
            .lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let ip = if n == 0 { self.first } else { self.then };
        Box::pin(async move { Ok(vec![ip]) })
    }
}

/// The probe granted GET on `https://NAME:PORT` of the test HTTPS server,
/// trusting the test CA, with names looked up by `resolver`.
async fn https_probe(name: &str, resolver: Arc<Rebinding>) -> Instance {
    let port = crate::support::servers::env_var("HANDOFF_TEST_HTTPS_PORT");
    let ca = crate::support::servers::env_var("HANDOFF_TEST_HTTPS_CA");
    let dir = package(
        "probe",
        &probe_manifest(
            "tls",
            &format!(
                "[[capabilities.http]]\nurl = \"https://{name}:{port}\"\nmethods = [\"GET\"]\n"
            ),
        ),
    );
    let mut cfg = AdapterInstance::new("tls", dir.path());
    cfg.surfaces.http.http_ca_file = Some(ca.into());
    let adapter = approved(&sandbox().with_resolver(resolver), dir.path(), &cfg);
    std::mem::forget(dir);
    adapter.instantiate().await.unwrap()
}

#[tokio::test]
async fn https_goes_to_the_address_that_was_checked_even_when_the_name_rebinds() {
    let port = crate::support::servers::env_var("HANDOFF_TEST_HTTPS_PORT");
    // Checked: 127.0.0.1, where the test server is. Asked again, the name
    // would point at the cloud metadata address, which is always denied.
    let resolver = Arc::new(Rebinding {
        first: "127.0.0.1".parse().unwrap(),
        then: "169.254.169.254".parse().unwrap(),
        lookups: Default::default(),
    });
    let mut instance = https_probe("tracker.handoff.test", resolver.clone()).await;
    let url = format!("https://tracker.handoff.test:{port}/hello");
    let seen = match instance.observe(&rec("http", &format!("GET {url}"))).await {
        Ok(Ok(o)) => o,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(&seen, "status"), "200");
    assert_eq!(
        field(&seen, "body"),
        format!("host=tracker.handoff.test:{port} path=/hello\n"),
        "the certificate was verified for the name, the request sent to the checked address"
    );
    // One lookup decided where it went: a second one would have answered
    // the denied address.
    assert_eq!(
        resolver.lookups.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let allowed: Vec<String> = instance
        .take_decisions()
        .into_iter()
        .filter(|d| d.surface.name == "http" && d.verdict == Verdict::Allowed)
        .map(|d| d.reason)
        .collect();
    assert!(allowed[0].contains("sent to 127.0.0.1:"), "{allowed:?}");
    // The next request looks the name up again, and that answer is checked.
    let message = assert_denied(&mut instance, "http", &format!("GET {url}")).await;
    assert!(message.contains("outside the host's ceiling"), "{message}");
}

#[tokio::test]
async fn https_to_a_checked_address_still_verifies_the_certificate_for_the_name() {
    let port = crate::support::servers::env_var("HANDOFF_TEST_HTTPS_PORT");
    let resolver = Arc::new(Rebinding {
        first: "127.0.0.1".parse().unwrap(),
        then: "127.0.0.1".parse().unwrap(),
        lookups: Default::default(),
    });
    // The server's certificate is not valid for this name.
    let mut instance = https_probe("archive.handoff.test", resolver).await;
    let seen = instance
        .observe(&rec(
            "http",
            &format!("GET https://archive.handoff.test:{port}/hello"),
        ))
        .await;
    assert!(
        !matches!(&seen, Ok(Ok(o)) if field(o, "status") == "200"),
        "a certificate for another name was accepted: {seen:?}"
    );
}
