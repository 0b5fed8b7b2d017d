//! Every parser that takes outside input gives a value or a typed error,
//! never a panic: property tests over arbitrary text and over valid
//! documents with bytes inserted, deleted and replaced at random.

use handoff::audit::anchor::Anchor;
use handoff::config::Config;
use handoff::model::CloudEvent;
use handoff::policy::Policy;
use handoff::sandbox::manifest::Manifest;
use handoff::serve::signature::{Verifier, standard_key};
use proptest::prelude::*;
use std::path::Path;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/release-readiness");

fn example(rel: &str) -> String {
    std::fs::read_to_string(Path::new(EXAMPLE).join(rel)).unwrap()
}

fn manifest_text() -> String {
    std::fs::read_to_string(Path::new(handoff::BUILT_PACKAGES_DIR).join("redmine/adapter.toml"))
        .unwrap()
}

fn policy_text() -> String {
    let dir = Path::new(EXAMPLE).join("policies");
    let first = std::fs::read_dir(dir).unwrap().next().unwrap().unwrap();
    std::fs::read_to_string(first.path()).unwrap()
}

/// Edits of a document: at a position (a fraction of its length), delete
/// some bytes, or insert or overwrite with some of these.
fn edits() -> impl Strategy<Value = Vec<(f64, u8, Vec<u8>)>> {
    proptest::collection::vec(
        (
            0.0..1.0f64,
            0u8..3,
            proptest::collection::vec(
                prop_oneof![
                    Just(b'"'),
                    Just(b'['),
                    Just(b']'),
                    Just(b'{'),
                    Just(b'}'),
                    Just(b'='),
                    Just(b'\n'),
                    Just(b','),
                    Just(b':'),
                    Just(b'\\'),
                    any::<u8>(),
                ],
                0..8,
            ),
        ),
        1..6,
    )
}

fn mutate(text: &str, edits: &[(f64, u8, Vec<u8>)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for (at, kind, with) in edits {
        let i = ((bytes.len() as f64) * at) as usize;
        let i = i.min(bytes.len());
        match kind {
            0 => {
                let end = (i + with.len().max(1)).min(bytes.len());
                bytes.drain(i..end);
            }
            1 => {
                bytes.splice(i..i, with.iter().copied());
            }
            _ => {
                let end = (i + with.len()).min(bytes.len());
                bytes.splice(i..end, with.iter().copied());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn cloudevents_parse_or_refuse(text in ".{0,400}", edits in edits()) {
        let _ = CloudEvent::parse(text.as_bytes(), "fuzz");
        let valid = example("events/accepted.json");
        let _ = CloudEvent::parse(mutate(&valid, &edits).as_bytes(), "fuzz");
    }

    #[test]
    fn signature_headers_verify_or_refuse(
        id in ".{0,80}",
        timestamp in ".{0,30}",
        signature in ".{0,200}",
        hub in ".{0,100}",
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("webhook-id", &id),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", &signature),
            ("x-hub-signature-256", &hub),
        ] {
            if let Ok(v) = http::HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        }
        let standard = Verifier::StandardWebhooks {
            keys: vec![standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()],
            tolerance_secs: 300,
        };
        let github = Verifier::GitHub { secrets: vec![b"a secret".to_vec()] };
        prop_assert!(standard.verify(&headers, &body, 1_700_000_000).is_err());
        prop_assert!(github.verify(&headers, &body, 1_700_000_000).is_err());
        let _ = standard_key(&signature);
    }

    #[test]
    fn adapter_manifests_parse_or_refuse(text in ".{0,300}", edits in edits()) {
        let _ = Manifest::parse(&text, Path::new("adapter.toml"));
        let _ = Manifest::parse(&mutate(&manifest_text(), &edits), Path::new("adapter.toml"));
    }

    #[test]
    fn configurations_parse_or_refuse(text in ".{0,300}", edits in edits()) {
        let _ = Config::parse(&text, Path::new("handoff.toml"));
        let valid = example("handoff-servers.toml");
        let _ = Config::parse(&mutate(&valid, &edits), Path::new("handoff.toml"));
        let valid = example("handoff.toml");
        let _ = Config::parse(&mutate(&valid, &edits), Path::new("handoff.toml"));
    }

    #[test]
    fn policies_parse_or_refuse(text in ".{0,300}", edits in edits()) {
        let _ = Policy::parse(&text, Path::new("policy.toml"));
        let _ = Policy::parse(&mutate(&policy_text(), &edits), Path::new("policy.toml"));
    }

    #[test]
    fn anchors_files_parse_or_refuse(text in ".{0,300}", edits in edits()) {
        let _ = Anchor::parse_lines(&text, "anchors");
        let valid = format!("# kept\n12:{}\n\n3:{}\n", "a".repeat(64), "0".repeat(64));
        let _ = Anchor::parse_lines(&mutate(&valid, &edits), "anchors");
    }
}
