//! The HTTP surface's grant, comparison, narrowing and request checks.

use super::gate::{aws_signed, permit};
use super::*;
use crate::sandbox::net::SystemResolver;

#[derive(Deserialize)]
struct Entries {
    http: Vec<RawHttp>,
}

fn grant(text: &str) -> Result<HttpGrants, String> {
    Http::parse(toml::from_str::<Entries>(text).unwrap().http)
}

const GET: &str = "[[http]]\nurl = \"http://127.0.0.1:3000\"\nmethods = [\"GET\"]\n";
const GET_PUT: &str = "[[http]]\nurl = \"http://127.0.0.1:3000\"\nmethods = [\"GET\", \"PUT\"]\n";

fn policy(url: &str, methods: &[&str]) -> HttpPolicy {
    let origin = Origin::parse(url).unwrap();
    let grant = HttpGrant {
        origin: origin.clone(),
        methods: methods.iter().map(|m| m.to_string()).collect(),
        inject_header: None,
    };
    HttpPolicy {
        grants: [(origin, grant)].into(),
        inject: BTreeMap::new(),
        ceiling: HostCeiling::default(),
        resolver: Arc::new(SystemResolver),
        tls: tls_client(None, "http-ca-file").unwrap(),
        pool: Default::default(),
    }
}

#[test]
fn origins_are_normalized_and_paths_refused() {
    let g =
        grant("[[http]]\nurl = \"HTTP://Tracker.Example:8080/\"\nmethods = [\"get\", \"put\"]\n")
            .unwrap();
    let only = g.values().next().unwrap();
    assert_eq!(only.origin.to_string(), "http://tracker.example:8080");
    assert_eq!(only.methods.iter().collect::<Vec<_>>(), ["GET", "PUT"]);
    let err = grant("[[http]]\nurl = \"http://h/api\"\n").unwrap_err();
    assert!(err.starts_with("[0].url"), "{err}");
    let err = grant("[[http]]\nurl = \"http://h\"\nmethods = [\"GET\", \"get\"]\n").unwrap_err();
    assert!(err.contains("\"get\" is listed twice"), "{err}");
}

#[test]
fn an_origin_names_one_real_host_and_a_port_a_server_can_listen_on() {
    for url in [
        "http://tracker.example.internal:8080",
        "https://redmine_app",
        "http://127.0.0.1:3000",
        "http://[::1]:3000",
        "https://xn--bcher-kva.example",
    ] {
        Origin::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    }
    for (url, why) in [
        ("http://*.example.com", "no pattern"),
        ("http://exa mple.com", "neither a host name"),
        ("http://-lead.example", "neither a host name"),
        ("http://a..b", "neither a host name"),
        ("http://bücher.example", "neither a host name"),
        ("http://127.0.0.1:0", "from 1 to 65535"),
        ("http://0.0.0.0:3000", "wildcard address"),
        ("http://[::]:3000", "wildcard address"),
        ("http://127.0.0.1:65536", "from 1 to 65535"),
    ] {
        let err = Origin::parse(url).unwrap_err();
        assert!(err.contains(why), "{url}: {err}");
    }
    let long = format!("http://{}.example", "a".repeat(64));
    assert!(Origin::parse(&long).is_err());
}

#[test]
fn without_methods_only_safe_methods_are_granted() {
    let g = grant("[[http]]\nurl = \"https://h\"\n").unwrap();
    let only = g.values().next().unwrap();
    assert_eq!(only.origin.port, 443);
    assert_eq!(only.methods.iter().collect::<Vec<_>>(), ["GET", "HEAD"]);
}

#[test]
fn a_new_method_widens_and_a_dropped_one_narrows_and_shrinks_the_grant() {
    let mut changes = Vec::new();
    Http::compare(&grant(GET).unwrap(), &grant(GET_PUT).unwrap(), &mut changes);
    assert_eq!(
        changes,
        [Change::Widened(
            "http http://127.0.0.1:3000 method PUT".into()
        )]
    );
    let mut changes = Vec::new();
    let (approved, declared) = (grant(GET_PUT).unwrap(), grant(GET).unwrap());
    Http::compare(&approved, &declared, &mut changes);
    assert!(changes.iter().all(|c| matches!(c, Change::Narrowed(_))));
    let eff = Http::intersect(&declared, &approved, &HostCeiling::default());
    assert_eq!(
        eff.values()
            .next()
            .unwrap()
            .methods
            .iter()
            .collect::<Vec<_>>(),
        ["GET"]
    );
}

#[test]
fn no_ceiling_origins_means_no_http() {
    let g = grant(GET).unwrap();
    let ceiling = HostCeiling {
        http_origins: Some(BTreeSet::new()),
        ..HostCeiling::default()
    };
    assert!(Http::intersect(&g, &g, &ceiling).is_empty());
}

#[test]
fn an_instance_narrows_methods_only_to_ones_its_grant_holds() {
    let mut g = grant(GET_PUT).unwrap();
    let narrowing = HttpBinding {
        http_methods: Some(["GET".to_string()].into()),
        ..Default::default()
    };
    Http::narrow(&mut g, &narrowing).unwrap();
    assert_eq!(g.values().next().unwrap().methods.len(), 1);
    let wrong = HttpBinding {
        http_methods: Some(["POST".to_string()].into()),
        ..Default::default()
    };
    let err = Http::narrow(&mut grant(GET).unwrap(), &wrong).unwrap_err();
    assert!(
        err.starts_with("http-methods: POST is not a method"),
        "{err}"
    );
}

#[test]
fn only_the_exact_declared_origin_and_method_pass() {
    let p = policy("http://127.0.0.1:3000", &["GET"]);
    let o = |u: &str| Origin::parse(u).unwrap();
    assert!(permit(&p, &o("http://127.0.0.1:3000"), "GET").is_ok());
    assert!(permit(&p, &o("http://127.0.0.1:3000"), "PUT").is_err());
    assert!(permit(&p, &o("http://127.0.0.1:3001"), "GET").is_err());
    assert!(permit(&p, &o("https://127.0.0.1:3000"), "GET").is_err());
    assert!(permit(&p, &o("http://localhost:3000"), "GET").is_err());
    assert!(permit(&p, &o("http://[::ffff:127.0.0.1]:3000"), "GET").is_err());
    assert!(permit(&p, &o("http://2130706433:3000"), "GET").is_err());
    let why = permit(&p, &o("http://127.0.0.1:9"), "GET").unwrap_err();
    assert!(why.contains("http://127.0.0.1:3000"), "{why}");
}

#[test]
fn aws_signed_requests_are_recognised_in_the_query_and_the_headers() {
    let request = |uri: &str, auth: Option<&str>| {
        let mut b = http::Request::builder().uri(uri);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(wasmtime_wasi_http::WasiBody::default()).unwrap()
    };
    let presigned = "http://s3.local:8333/evidence/other/x.tar?X-Amz-Algorithm=AWS4-HMAC-SHA256\
                     &X-Amz-Credential=K%2F20261206%2Fus-east-1%2Fs3%2Faws4_request\
                     &X-Amz-Signature=abc";
    assert!(aws_signed(&request(presigned, None)).is_some());
    assert!(aws_signed(&request("http://s3.local:8333/x?x-amz-signature=abc", None)).is_some());
    assert!(
        aws_signed(&request(
            "http://s3.local:8333/x",
            Some("AWS4-HMAC-SHA256 Credential=K/...")
        ))
        .is_some()
    );
    assert!(aws_signed(&request("http://h/issues.json?limit=1", Some("Bearer t"))).is_none());
}

#[test]
fn a_shadow_grant_keeps_only_the_reading_methods() {
    let mut g = grant(GET_PUT).unwrap();
    Http::read_only(&mut g);
    let methods: Vec<&String> = g.values().flat_map(|g| &g.methods).collect();
    assert_eq!(methods, ["GET"]);
}

#[test]
fn a_reviewer_is_told_the_per_call_bound_only_of_a_grant_that_writes() {
    assert_eq!(Http::per_call(&grant(GET).unwrap()), None);
    let writes = Http::per_call(&grant(GET_PUT).unwrap()).unwrap();
    assert!(writes.contains("16 requests that write"), "{writes}");
    assert!(writes.contains("64 MiB of bodies"), "{writes}");
}
