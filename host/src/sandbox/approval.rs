//! Approval: what an operator or reviewer accepted, compared with what a
//! package declares now, and the effective grant that results.
//!
//! Effective grant = declared ∩ approved ∩ host ceiling. A changed component
//! digest, a widened declaration, or no approval at all refuses the load.
//! A declaration narrower than its approval loads, with the narrower grant.

use super::manifest::{Capabilities, FileMode, Grants, HttpGrant, Limits};
use super::package::Package;
use crate::config::HostCeiling;
use crate::store::adapters::Approval;
use std::fmt;

/// One difference between an approval and a declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The declaration asks for more than was approved.
    Widened(String),
    /// The declaration asks for less (it loads, with the smaller grant).
    Narrowed(String),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Widened(s) => write!(f, "+ {s}"),
            Change::Narrowed(s) => write!(f, "- {s}"),
        }
    }
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
        out.push(Change::Widened(format!("action {}", a.name())));
    }
    for a in approved.actions.difference(&declared.actions) {
        out.push(Change::Narrowed(format!("action {}", a.name())));
    }
    compare_capabilities(&approved.capabilities, &declared.capabilities, &mut out);
    compare_limits(&approved.limits, &declared.limits, &mut out);
    out
}

fn compare_capabilities(approved: &Capabilities, declared: &Capabilities, out: &mut Vec<Change>) {
    for (origin, d) in &declared.http {
        match approved.http.get(origin) {
            None => out.push(Change::Widened(format!("http {origin} {}", methods(d)))),
            Some(a) => {
                for m in d.methods.difference(&a.methods) {
                    out.push(Change::Widened(format!("http {origin} method {m}")));
                }
                for m in a.methods.difference(&d.methods) {
                    out.push(Change::Narrowed(format!("http {origin} method {m}")));
                }
                if d.inject_header != a.inject_header {
                    let show = |g: &HttpGrant| match &g.inject_header {
                        Some(h) => format!("header {} from secret {}", h.name, h.secret),
                        None => "no injected header".to_string(),
                    };
                    let change = format!("http {origin} {} (approved: {})", show(d), show(a));
                    out.push(if d.inject_header.is_some() {
                        Change::Widened(change)
                    } else {
                        Change::Narrowed(change)
                    });
                }
            }
        }
    }
    for (origin, a) in &approved.http {
        if !declared.http.contains_key(origin) {
            out.push(Change::Narrowed(format!("http {origin} {}", methods(a))));
        }
    }
    for (name, mode) in &declared.files {
        match approved.files.get(name) {
            None => out.push(Change::Widened(format!("files {name} {}", mode.name()))),
            Some(FileMode::ReadOnly) if *mode == FileMode::ReadWrite => out.push(Change::Widened(
                format!("files {name} read-write (approved: read-only)"),
            )),
            Some(FileMode::ReadWrite) if *mode == FileMode::ReadOnly => out.push(Change::Narrowed(
                format!("files {name} read-only (approved: read-write)"),
            )),
            Some(_) => {}
        }
    }
    for (name, mode) in &approved.files {
        if !declared.files.contains_key(name) {
            out.push(Change::Narrowed(format!("files {name} {}", mode.name())));
        }
    }
    for addr in declared.sockets.difference(&approved.sockets) {
        out.push(Change::Widened(format!("socket tcp {addr}")));
    }
    for addr in approved.sockets.difference(&declared.sockets) {
        out.push(Change::Narrowed(format!("socket tcp {addr}")));
    }
    compare_sets(&approved.nats, &declared.nats, out);
    compare_sets(&approved.smtp, &declared.smtp, out);
}

/// Scopes are compared as sets: each one declared and not approved widens.
fn compare_sets<T: Ord + fmt::Display>(
    approved: &std::collections::BTreeSet<T>,
    declared: &std::collections::BTreeSet<T>,
    out: &mut Vec<Change>,
) {
    for s in declared.difference(approved) {
        out.push(Change::Widened(s.to_string()));
    }
    for s in approved.difference(declared) {
        out.push(Change::Narrowed(s.to_string()));
    }
}

fn compare_limits(approved: &Limits, declared: &Limits, out: &mut Vec<Change>) {
    limit_change(
        "memory",
        "MiB",
        declared.memory_mib.into(),
        approved.memory_mib.into(),
        out,
    );
    limit_change(
        "call timeout",
        "ms",
        declared.call_timeout_ms,
        approved.call_timeout_ms,
        out,
    );
}

fn limit_change(what: &str, unit: &str, declared: u64, approved: u64, out: &mut Vec<Change>) {
    let text = format!("{what} {declared} {unit} (approved: {approved} {unit})");
    match declared.cmp(&approved) {
        std::cmp::Ordering::Greater => out.push(Change::Widened(text)),
        std::cmp::Ordering::Less => out.push(Change::Narrowed(text)),
        std::cmp::Ordering::Equal => {}
    }
}

fn methods(g: &HttpGrant) -> String {
    g.methods.iter().cloned().collect::<Vec<_>>().join(",")
}

/// declared ∩ approved ∩ ceiling. Callers check [`status`] first; this only
/// ever shrinks what `declared` asks for.
pub fn effective(declared: &Grants, approved: &Grants, ceiling: &HostCeiling) -> Grants {
    let mut caps = Capabilities::default();
    for (origin, d) in &declared.capabilities.http {
        let Some(a) = approved.capabilities.http.get(origin) else {
            continue;
        };
        if !ceiling.allows_origin(origin) {
            continue;
        }
        let methods: std::collections::BTreeSet<String> =
            d.methods.intersection(&a.methods).cloned().collect();
        if methods.is_empty() {
            continue;
        }
        caps.http.insert(
            origin.clone(),
            HttpGrant {
                origin: origin.clone(),
                methods,
                inject_header: if d.inject_header == a.inject_header {
                    d.inject_header.clone()
                } else {
                    None
                },
            },
        );
    }
    for (name, mode) in &declared.capabilities.files {
        if let Some(approved_mode) = approved.capabilities.files.get(name) {
            let mode = if *mode == FileMode::ReadWrite && *approved_mode == FileMode::ReadWrite {
                FileMode::ReadWrite
            } else {
                FileMode::ReadOnly
            };
            caps.files.insert(name.clone(), mode);
        }
    }
    if ceiling.sockets {
        caps.sockets = declared
            .capabilities
            .sockets
            .intersection(&approved.capabilities.sockets)
            .copied()
            .collect();
    }
    // Service servers are addresses, checked against the ceiling's denied
    // networks here, once, since nothing is resolved later.
    caps.nats = declared
        .capabilities
        .nats
        .intersection(&approved.capabilities.nats)
        .filter(|s| ceiling.denies_ip(s.server.ip()).is_none())
        .cloned()
        .collect();
    caps.smtp = declared
        .capabilities
        .smtp
        .intersection(&approved.capabilities.smtp)
        .filter(|s| ceiling.denies_ip(s.server.ip()).is_none())
        .cloned()
        .collect();
    Grants {
        world: declared.world,
        actions: declared
            .actions
            .intersection(&approved.actions)
            .copied()
            .collect(),
        capabilities: caps,
        limits: Limits {
            memory_mib: declared
                .limits
                .memory_mib
                .min(approved.limits.memory_mib)
                .min(ceiling.max_memory_mib),
            call_timeout_ms: declared
                .limits
                .call_timeout_ms
                .min(approved.limits.call_timeout_ms)
                .min(ceiling.max_call_timeout_ms),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::manifest::Manifest;
    use std::path::Path;

    fn grants(extra: &str) -> Grants {
        let text = format!(
            "[adapter]\nname = \"t\"\nversion = \"0.1.0\"\nworld = \"handoff:adapter/target-adapter@0.1.0\"\nactions = [\"set-state\"]\n{extra}"
        );
        Manifest::parse(&text, Path::new("t.toml")).unwrap().grants
    }

    const HTTP_GET: &str =
        "[[capabilities.http]]\nurl = \"http://127.0.0.1:3000\"\nmethods = [\"GET\"]\n";
    const HTTP_GET_PUT: &str =
        "[[capabilities.http]]\nurl = \"http://127.0.0.1:3000\"\nmethods = [\"GET\", \"PUT\"]\n";

    #[test]
    fn a_new_method_is_a_widening() {
        let changes = compare(&grants(HTTP_GET), &grants(HTTP_GET_PUT));
        assert_eq!(
            changes,
            [Change::Widened(
                "http http://127.0.0.1:3000 method PUT".into()
            )]
        );
    }

    #[test]
    fn dropping_a_method_is_a_narrowing_and_shrinks_the_grant() {
        let approved = grants(HTTP_GET_PUT);
        let declared = grants(HTTP_GET);
        let changes = compare(&approved, &declared);
        assert!(
            changes.iter().all(|c| matches!(c, Change::Narrowed(_))),
            "{changes:?}"
        );
        let eff = effective(&declared, &approved, &HostCeiling::default());
        let methods = &eff.capabilities.http.values().next().unwrap().methods;
        assert_eq!(methods.iter().collect::<Vec<_>>(), ["GET"]);
    }

    #[test]
    fn read_only_to_read_write_is_a_widening() {
        let ro = grants("[[capabilities.files]]\nname = \"evidence\"\nmode = \"read-only\"\n");
        let rw = grants("[[capabilities.files]]\nname = \"evidence\"\nmode = \"read-write\"\n");
        assert!(matches!(compare(&ro, &rw)[..], [Change::Widened(_)]));
        assert!(matches!(compare(&rw, &ro)[..], [Change::Narrowed(_)]));
    }

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
        use crate::sandbox::jetstream::{NatsScope, ScopeKind as NatsKind};
        use crate::sandbox::manifest::{ActionKind, HttpGrant, Origin, World};
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
                        http: origins
                            .into_iter()
                            .map(|(origin, (methods, inject))| {
                                let grant = HttpGrant {
                                    origin: origin.clone(),
                                    methods,
                                    inject_header: inject.then(|| {
                                        crate::sandbox::manifest::InjectHeader {
                                            name: "x-key".into(),
                                            secret: "key".into(),
                                        }
                                    }),
                                };
                                (origin, grant)
                            })
                            .collect::<BTreeMap<_, _>>(),
                        files,
                        sockets,
                        nats,
                        smtp: Default::default(),
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
