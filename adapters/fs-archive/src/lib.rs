//! An evidence archive kept in a directory (mounted read-only at `/archive`).
//!
//! `observe` on a `bundle` record whose id is the bundle's path inside the
//! archive reports whether it exists, its sha256 and size, and its link. The
//! archive is only read: it holds evidence, closure work never changes it.
//!
//! Config: `base_url` (optional) — links are `<base_url>/<id>`; without it,
//! `archive:///<id>`.

use handoff_sdk::{AdapterError, Observed, RecordRef, Target, export};
use sha2::{Digest, Sha256};

struct Archive;

impl Target for Archive {
    fn observe(record: RecordRef) -> Result<Observed, AdapterError> {
        if record.kind != "bundle" {
            return Err(AdapterError::Unsupported(format!(
                "fs-archive holds bundles, not {:?}",
                record.kind
            )));
        }
        let id = record.id.trim_start_matches('/');
        let bytes = match handoff_sdk::fs::read(&format!("/archive/{id}")) {
            Ok(bytes) => bytes,
            Err(AdapterError::NotFound(_)) => return Ok(Observed::missing()),
            Err(e) => return Err(e),
        };
        let link = match handoff_sdk::config("base_url") {
            Some(base) => format!("{}/{id}", base.trim_end_matches('/')),
            None => format!("archive:///{id}"),
        };
        Ok(Observed {
            exists: true,
            state: "archived".into(),
            revision: None,
            fields: vec![
                ("sha256".into(), hex::encode(Sha256::digest(&bytes))),
                ("size".into(), bytes.len().to_string()),
                ("url".into(), link.clone()),
            ],
            links: vec![link],
            applied_keys: Vec::new(),
        })
    }
}

export!(Archive: target);

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_sdk::testing::Harness;

    fn bundle(id: &str) -> RecordRef {
        RecordRef {
            system: "archive".into(),
            kind: "bundle".into(),
            id: id.into(),
        }
    }

    #[test]
    fn a_bundle_reports_its_sha256_size_and_link() {
        let dir = std::env::temp_dir().join(format!("fs-archive-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rel-42")).unwrap();
        std::fs::write(dir.join("rel-42/evidence.tar"), b"abc").unwrap();
        let h = Harness::new()
            .dir("archive", &dir)
            .config("base_url", "https://archive.example/evidence/");
        let o = h
            .run(|| Archive::observe(bundle("rel-42/evidence.tar")))
            .unwrap();
        assert!(o.exists);
        assert_eq!(
            o.field("sha256"),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(o.field("size"), Some("3"));
        assert_eq!(
            o.links,
            ["https://archive.example/evidence/rel-42/evidence.tar"]
        );
        let missing = h
            .run(|| Archive::observe(bundle("rel-42/none.tar")))
            .unwrap();
        assert!(!missing.exists);
        let escape = h
            .run(|| Archive::observe(bundle("../etc/passwd")))
            .unwrap_err();
        assert!(matches!(escape, AdapterError::Denied(_)), "{escape:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
