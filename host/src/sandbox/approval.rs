//! Approval: what an operator or reviewer accepted, compared with what a
//! package declares now, and the effective grant that results.
//!
//! Effective grant = declared ∩ approved ∩ host ceiling. A changed component
//! digest, a widened declaration, or no approval at all refuses the load.
//! A declaration narrower than its approval loads, with the narrower grant.
//! Each surface compares and intersects its own grant
//! ([`super::surface::Surface`]); this module puts them together with the
//! world, the actions and the limits.

use super::ceiling::HostCeiling;
use super::manifest::Grants;
use super::package::Package;
use super::surfaces::Capabilities;
use super::surfaces::limits::Limits;

pub use super::surface::Change;

/// One approval record: who approved which exact package (its digests),
/// with which grants, and whether it was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub id: i64,
    pub name: String,
    pub version: String,
    pub world: String,
    pub component_sha256: String,
    pub manifest_sha256: String,
    pub grants: Grants,
    pub approved_by: String,
    pub approved_at: String,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<String>,
}

/// Where a package stands against its approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    NotApproved,
    Revoked {
        by: String,
        at: String,
    },
    /// The component bytes are not the ones approved.
    ComponentChanged {
        approved: String,
        actual: String,
    },
    /// The manifest asks for more than was approved.
    Widened(Vec<Change>),
    /// Approved; `changes` lists narrowings since approval, if any.
    Approved {
        changes: Vec<Change>,
    },
}

impl Status {
    pub fn allows_load(&self) -> bool {
        matches!(self, Status::Approved { .. })
    }

    /// The differences from the approval, where the package was compared.
    pub fn changes(&self) -> &[Change] {
        match self {
            Status::Widened(c) | Status::Approved { changes: c } => c,
            _ => &[],
        }
    }
}

/// Compare a package with its latest approval record (if any).
pub fn status(package: &Package, approval: Option<&Approval>) -> Status {
    let Some(approval) = approval else {
        return Status::NotApproved;
    };
    if let (Some(by), Some(at)) = (&approval.revoked_by, &approval.revoked_at) {
        return Status::Revoked {
            by: by.clone(),
            at: at.clone(),
        };
    }
    if approval.component_sha256 != package.component_sha256 {
        return Status::ComponentChanged {
            approved: approval.component_sha256.clone(),
            actual: package.component_sha256.clone(),
        };
    }
    let changes = compare(&approval.grants, &package.manifest.grants);
    if changes.iter().any(|c| matches!(c, Change::Widened(_))) {
        Status::Widened(changes)
    } else {
        Status::Approved { changes }
    }
}

/// Every difference between `approved` and `declared`.
pub fn compare(approved: &Grants, declared: &Grants) -> Vec<Change> {
    let mut out = Vec::new();
    if approved.world != declared.world {
        out.push(Change::Widened(format!(
            "world {} (approved: {})",
            declared.world, approved.world
        )));
    }
    for a in declared.actions.difference(&approved.actions) {
        out.push(Change::Widened(format!("action {a}")));
    }
    for a in approved.actions.difference(&declared.actions) {
        out.push(Change::Narrowed(format!("action {a}")));
    }
    Capabilities::compare(&approved.capabilities, &declared.capabilities, &mut out);
    Limits::compare(&approved.limits, &declared.limits, &mut out);
    out
}

/// declared ∩ approved ∩ ceiling. Callers check [`status`] first; this only
/// ever shrinks what `declared` asks for.
pub fn effective(declared: &Grants, approved: &Grants, ceiling: &HostCeiling) -> Grants {
    Grants {
        world: declared.world,
        actions: declared
            .actions
            .intersection(&approved.actions)
            .copied()
            .collect(),
        capabilities: Capabilities::intersect(
            &declared.capabilities,
            &approved.capabilities,
            ceiling,
        ),
        limits: Limits::intersect(&declared.limits, &approved.limits, ceiling),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::manifest::Manifest;
    use std::path::Path;

    fn grants(extra: &str) -> Grants {
        let text = format!(
            "[adapter]\nname = \"t\"\nversion = \"0.1.0\"\nworld = \"{}\"\nactions = [\"set-state\"]\n{extra}",
            crate::model::World::Target.id()
        );
        Manifest::parse(&text, Path::new("t.toml")).unwrap().grants
    }

    const HTTP_GET: &str =
        "[[capabilities.http]]\nurl = \"http://127.0.0.1:3000\"\nmethods = [\"GET\"]\n";

    #[test]
    fn the_ceiling_caps_limits_and_can_remove_origins_and_sockets() {
        let g = grants(&format!(
            "{HTTP_GET}[[capabilities.sockets]]\naddress = \"127.0.0.1:4222\"\n[limits]\nmemory-mib = 512\n"
        ));
        let ceiling = HostCeiling {
            max_memory_mib: 64,
            sockets: false,
            http_origins: Some(Default::default()),
            ..HostCeiling::default()
        };
        let eff = effective(&g, &g, &ceiling);
        assert_eq!(eff.limits.memory_mib, 64);
        assert!(eff.capabilities.http.is_empty());
        assert!(eff.capabilities.sockets.is_empty());
    }

    mod properties {
        use super::*;
        use crate::model::{ActionKind, World};
        use crate::sandbox::surfaces::files::FileMode;
        use crate::sandbox::surfaces::http::{HttpGrant, HttpGrants, InjectHeader, Origin};
        use crate::sandbox::surfaces::nats::{NatsScope, ScopeKind as NatsKind};
        use proptest::prelude::*;
        use std::collections::{BTreeMap, BTreeSet};
        use std::net::SocketAddr;

        fn grants() -> impl Strategy<Value = Grants> {
            let origins = proptest::collection::btree_map(
                (0u16..4).prop_map(|p| Origin {
                    scheme: "http".into(),
                    host: "127.0.0.1".into(),
                    port: 3000 + p,
                }),
                (
                    proptest::collection::btree_set(
                        prop_oneof![Just("GET"), Just("PUT"), Just("POST")].prop_map(String::from),
                        1..3,
                    ),
                    any::<bool>(),
                ),
                0..4,
            );
            let files = proptest::collection::btree_map(
                prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(String::from),
                prop_oneof![Just(FileMode::ReadOnly), Just(FileMode::ReadWrite)],
                0..3,
            );
            let sockets = proptest::collection::btree_set(
                (0u16..3).prop_map(|p| SocketAddr::from(([127, 0, 0, 1], 4000 + p))),
                0..3,
            );
            let actions = proptest::collection::btree_set(
                proptest::sample::select(ActionKind::ALL.to_vec()),
                0..5,
            );
            let nats = proptest::collection::btree_set(
                (
                    0u16..2,
                    any::<bool>(),
                    prop_oneof![Just("a.>"), Just("b"), Just("q")],
                )
                    .prop_map(|(p, bucket, name)| NatsScope {
                        server: SocketAddr::from(([127, 0, 0, 1], 4222 + p)),
                        kind: if bucket {
                            NatsKind::Bucket
                        } else {
                            NatsKind::Subject
                        },
                        name: name.into(),
                    }),
                0..4,
            );
            let services = (sockets, nats);
            (origins, files, services, actions, 1u32..512, 1u64..100_000).prop_map(
                |(origins, files, (sockets, nats), actions, memory_mib, call_timeout_ms)| Grants {
                    world: World::Target,
                    actions,
                    capabilities: Capabilities {
                        http: HttpGrants(
                            origins
                                .into_iter()
                                .map(|(origin, (methods, inject))| {
                                    let grant = HttpGrant {
                                        origin: origin.clone(),
                                        methods,
                                        inject_header: inject.then(|| InjectHeader {
                                            name: "x-key".into(),
                                            secret: "key".into(),
                                        }),
                                    };
                                    (origin, grant)
                                })
                                .collect::<BTreeMap<_, _>>(),
                        ),
                        files,
                        sockets,
                        nats,
                        ..Capabilities::default()
                    },
                    limits: Limits {
                        memory_mib,
                        call_timeout_ms,
                    },
                },
            )
        }

        /// `inner` grants nothing that `outer` does not.
        fn within(inner: &Grants, outer: &Grants) -> bool {
            inner.actions.is_subset(&outer.actions)
                && inner
                    .capabilities
                    .sockets
                    .is_subset(&outer.capabilities.sockets)
                && inner.capabilities.nats.is_subset(&outer.capabilities.nats)
                && inner.limits.memory_mib <= outer.limits.memory_mib
                && inner.limits.call_timeout_ms <= outer.limits.call_timeout_ms
                && inner.capabilities.http.iter().all(|(o, g)| {
                    outer.capabilities.http.get(o).is_some_and(|og| {
                        g.methods.is_subset(&og.methods)
                            && (g.inject_header.is_none() || g.inject_header == og.inject_header)
                    })
                })
                && inner.capabilities.files.iter().all(|(n, m)| {
                    outer
                        .capabilities
                        .files
                        .get(n)
                        .is_some_and(|om| *m == FileMode::ReadOnly || *om == FileMode::ReadWrite)
                })
        }

        proptest! {
            #[test]
            fn the_effective_grant_never_exceeds_declared_approved_or_ceiling(
                declared in grants(), approved in grants(), ceiling_mib in 1u32..512
            ) {
                let ceiling = HostCeiling { max_memory_mib: ceiling_mib, ..HostCeiling::default() };
                let eff = effective(&declared, &approved, &ceiling);
                prop_assert!(within(&eff, &declared));
                prop_assert!(within(&eff, &approved));
                prop_assert!(eff.limits.memory_mib <= ceiling_mib);
            }

            #[test]
            fn a_declaration_beyond_its_approval_is_always_reported_as_widened(
                declared in grants(), approved in grants()
            ) {
                let widened = compare(&approved, &declared)
                    .iter()
                    .any(|c| matches!(c, Change::Widened(_)));
                prop_assert_eq!(widened, !within(&declared, &approved));
            }
        }

        #[test]
        fn no_ceiling_origins_means_no_http() {
            let g = grants_with_http();
            let ceiling = HostCeiling {
                http_origins: Some(BTreeSet::new()),
                ..HostCeiling::default()
            };
            assert!(effective(&g, &g, &ceiling).capabilities.http.is_empty());
        }

        fn grants_with_http() -> Grants {
            super::grants(HTTP_GET)
        }
    }
}
