//! The S3 surface's grant and comparison, and the gate's own refusals.

use super::*;

#[derive(Deserialize)]
struct Entries {
    s3: Vec<RawS3>,
}

fn grant(text: &str) -> Result<BTreeSet<S3Scope>, String> {
    S3::parse(toml::from_str::<Entries>(text).unwrap().s3)
}

const RO: &str = "[[s3]]\nendpoint = \"http://127.0.0.1:8333\"\nbucket = \"evidence\"\n\
                  prefix = \"releases/\"\nmode = \"read-only\"\n\
                  credentials = { access-key = \"ak\", secret-key = \"sk\" }\n";

#[test]
fn an_entry_names_its_endpoint_bucket_prefix_and_mode() {
    let g = grant(RO).unwrap();
    let s = g.iter().next().unwrap();
    assert_eq!(s.endpoint.to_string(), "http://127.0.0.1:8333");
    assert_eq!(
        (s.bucket.as_str(), s.prefix.as_str()),
        ("evidence", "releases/")
    );
    assert_eq!(s.mode, FileMode::ReadOnly);
    assert_eq!(
        S3::lines(&g, None),
        ["http://127.0.0.1:8333 evidence/releases/* read-only  + host signs with secrets ak / sk"]
    );
    for (bad, says) in [
        (RO.replace("releases/", "releases"), "[0].prefix"),
        (RO.replace("releases/", "../"), "[0].prefix"),
        (RO.replace("evidence", "Evidence"), "[0].bucket"),
        (
            RO.replace("http://127.0.0.1:8333", "http://h/path"),
            "[0].endpoint",
        ),
        (RO.replace("read-only", "write"), "[0].mode"),
        (
            RO.replace("\"ak\"", "\"a k\""),
            "[0].credentials.access-key",
        ),
    ] {
        let err = grant(&bad).unwrap_err();
        assert!(err.starts_with(says), "{bad}: {err}");
    }
}

#[test]
fn write_another_prefix_or_other_secrets_widen_and_dropping_write_narrows() {
    let ro = grant(RO).unwrap();
    let widened = |declared: &str| {
        let mut changes = Vec::new();
        S3::compare(&ro, &grant(declared).unwrap(), &mut changes);
        changes.iter().any(|c| matches!(c, Change::Widened(_)))
    };
    assert!(widened(&RO.replace("read-only", "read-write")));
    assert!(widened(&RO.replace("releases/", "")));
    assert!(widened(&RO.replace("\"sk\"", "\"other\"")));
    assert!(!widened(RO));
    let rw = grant(&RO.replace("read-only", "read-write")).unwrap();
    let mut changes = Vec::new();
    S3::compare(&rw, &ro, &mut changes);
    assert!(matches!(changes[..], [Change::Narrowed(_)]), "{changes:?}");
    let eff = S3::intersect(&rw, &ro, &HostCeiling::default());
    assert_eq!(eff.iter().next().unwrap().mode, FileMode::ReadOnly);
}

#[test]
fn the_ceiling_s_origins_bound_s3_endpoints_too() {
    let g = grant(RO).unwrap();
    let ceiling = HostCeiling {
        http_origins: Some(BTreeSet::new()),
        ..HostCeiling::default()
    };
    assert!(S3::intersect(&g, &g, &ceiling).is_empty());
}

#[test]
fn an_instance_can_be_held_to_reading() {
    let mut g = grant(&RO.replace("read-only", "read-write")).unwrap();
    S3::narrow(&mut g, &S3Binding::default()).unwrap();
    assert_eq!(g.iter().next().unwrap().mode, FileMode::ReadWrite);
    let read_only = S3Binding {
        s3_read_only: true,
        ..Default::default()
    };
    S3::narrow(&mut g, &read_only).unwrap();
    assert_eq!(g.iter().next().unwrap().mode, FileMode::ReadOnly);
}

#[tokio::test]
async fn an_offset_past_any_object_is_refused_before_anything_is_sent() {
    use crate::sandbox::decision::{AdapterIdent, DecisionLog};
    let scopes: Vec<S3Scope> = grant(RO).unwrap().into_iter().collect();
    let policy = S3Policy::load(
        &scopes,
        |name| Ok(name.to_string()),
        HostCeiling::default(),
        Arc::new(crate::sandbox::net::SystemResolver),
        tls_client(None, "s3").unwrap(),
    )
    .unwrap();
    let log = DecisionLog::new(Arc::new(AdapterIdent {
        instance: "archive".into(),
        component_sha256: "c".repeat(64),
    }));
    let gate = S3Gate::new(Arc::new(policy), log);
    let err = gate
        .get_object(
            "http://127.0.0.1:8333".into(),
            "evidence".into(),
            "releases/R-1/evidence.tar".into(),
            u64::MAX,
            MAX_CHUNK,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, crate::sandbox::bindings::wit::AdapterError::Invalid(m) if m.contains("past any object")),
        "{err:?}"
    );
}
