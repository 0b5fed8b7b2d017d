//! The S3 surface: `[[capabilities.s3]]` grants, per endpoint
//! (`scheme://host[:port]`) and bucket, one key prefix (empty for the whole
//! bucket, else ending in `/`), read-only or read-write, and names the
//! operator secrets holding the access key and its secret. The host signs
//! every request itself (SigV4, with rusty-s3) and sends it to the address
//! it looked up and checked against the ceiling, through the `s3` interface
//! ([`gate`]); the adapter sees neither the credentials nor a signed URL.
//! An instance may be held to reading (`s3-read-only = true`) and trust a
//! private CA for an HTTPS endpoint (`s3-ca-file`).
//!
//! ```toml
//! [[capabilities.s3]]
//! endpoint = "http://127.0.0.1:8333"
//! bucket = "evidence"
//! prefix = "releases/"
//! mode = "read-only"
//! credentials = { access-key = "s3_access_key", secret-key = "s3_secret_key" }
//! ```

mod gate;
mod grant;
mod request;
#[cfg(test)]
mod tests;

pub use gate::{MAX_CHUNK, MOST_PUT_BYTES_PER_CALL, S3Gate, S3Policy};
pub use grant::{CredentialSecrets, DEFAULT_REGION, S3Scope, key_problem, valid_bucket};

use crate::sandbox::bindings::handoff::adapter::s3;
use crate::sandbox::ceiling::HostCeiling;
use crate::sandbox::decision::DecisionLog;
use crate::sandbox::net::send::tls_client;
use crate::sandbox::surface::{Change, GateOf, HasGate, LoadContext, Surface, SurfaceId};
use crate::sandbox::surfaces::files::FileMode;
use crate::sandbox::surfaces::http::Origin;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi::{WasiCtxBuilder, WasiView};
use wasmtime_wasi_http::WasiHttpView;

/// The S3 surface.
pub struct S3;

pub(crate) const S3_ID: SurfaceId = SurfaceId {
    name: "s3",
    fix: "if the adapter should reach it, declare the endpoint, bucket and key prefix \
          (read-write to write) under [[capabilities.s3]], then approve it again",
};

/// One `[[capabilities.s3]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawS3 {
    endpoint: String,
    bucket: String,
    prefix: String,
    mode: String,
    region: Option<String>,
    credentials: Option<RawCredentials>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCredentials {
    access_key: String,
    secret_key: String,
}

/// `s3-read-only` and `s3-ca-file` of an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct S3Binding {
    /// Every granted scope read-only for this instance, whatever mode the
    /// grant allows.
    #[serde(default)]
    pub s3_read_only: bool,
    /// The CA certificates (PEM) an HTTPS endpoint's certificate must chain
    /// to, instead of the public web roots.
    pub s3_ca_file: Option<PathBuf>,
}

fn secret_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_entry(raw: RawS3) -> Result<S3Scope, String> {
    let endpoint = Origin::parse(&raw.endpoint).map_err(|p| format!(".endpoint: {p}"))?;
    if !valid_bucket(&raw.bucket) {
        return Err(format!(
            ".bucket {:?}: 3 to 63 lower-case letters, digits, '-' and '.', \
             starting and ending with a letter or digit",
            raw.bucket
        ));
    }
    if let Some(problem) = key_problem(&raw.prefix, true) {
        return Err(format!(
            ".prefix {:?}: {problem} (\"\" grants the whole bucket)",
            raw.prefix
        ));
    }
    let mode = FileMode::parse(&raw.mode)
        .ok_or_else(|| format!(".mode {:?}: use \"read-only\" or \"read-write\"", raw.mode))?;
    let region = raw.region.unwrap_or_else(|| DEFAULT_REGION.into());
    if region.is_empty()
        || !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            ".region {region:?}: a region name such as us-east-1"
        ));
    }
    let credentials = match raw.credentials {
        None => None,
        Some(c) => {
            for (field, name) in [("access-key", &c.access_key), ("secret-key", &c.secret_key)] {
                if !secret_name(name) {
                    return Err(format!(
                        ".credentials.{field} {name:?}: the name of an operator secret \
                         (letters, digits, '_', '-')"
                    ));
                }
            }
            Some(CredentialSecrets {
                access_key: c.access_key,
                secret_key: c.secret_key,
            })
        }
    };
    Ok(S3Scope {
        endpoint,
        bucket: raw.bucket,
        prefix: raw.prefix,
        mode,
        region,
        credentials,
    })
}

impl Surface for S3 {
    const ID: SurfaceId = S3_ID;
    const IMPORTS: &'static [&'static str] = &["handoff:adapter/s3"];
    const UNDECLARED: &'static str = "declare [[capabilities.s3]] or remove the S3 code";
    const BINDING_KEYS: &'static [&'static str] = &["s3-read-only", "s3-ca-file"];

    type Entry = RawS3;
    type Grant = BTreeSet<S3Scope>;
    type Binding = S3Binding;
    type Shared = ();
    type Policy = S3Policy;
    type Gate = S3Gate;

    fn parse(entries: Vec<RawS3>) -> Result<Self::Grant, String> {
        let mut out: BTreeSet<S3Scope> = BTreeSet::new();
        for (i, raw) in entries.into_iter().enumerate() {
            let scope = parse_entry(raw).map_err(|p| format!("[{i}]{p}"))?;
            if out.iter().any(|s| s.place() == scope.place()) {
                return Err(format!(
                    "[{i}]: {} {}/{} is declared twice; merge the entries",
                    scope.endpoint, scope.bucket, scope.prefix
                ));
            }
            out.insert(scope);
        }
        Ok(out)
    }

    fn is_empty(grant: &Self::Grant) -> bool {
        grant.is_empty()
    }

    fn compare(approved: &Self::Grant, declared: &Self::Grant, out: &mut Vec<Change>) {
        for d in declared {
            let Some(a) = approved.iter().find(|a| a.place() == d.place()) else {
                out.push(Change::Widened(d.to_string()));
                continue;
            };
            if d == a {
                continue;
            }
            // Less than approved only by dropping write or signing; any
            // other difference (a region, other secrets) is a change that
            // must be approved again.
            let narrower = (d.mode == a.mode || d.mode == FileMode::ReadOnly)
                && d.region == a.region
                && (d.credentials == a.credentials || d.credentials.is_none());
            let change = format!("{d} (approved: {a})");
            out.push(if narrower {
                Change::Narrowed(change)
            } else {
                Change::Widened(change)
            });
        }
        for a in approved {
            if !declared.iter().any(|d| d.place() == a.place()) {
                out.push(Change::Narrowed(a.to_string()));
            }
        }
    }

    fn intersect(
        declared: &Self::Grant,
        approved: &Self::Grant,
        ceiling: &HostCeiling,
    ) -> Self::Grant {
        declared
            .iter()
            .filter(|d| ceiling.allows_origin(&d.endpoint))
            .filter_map(|d| {
                let a = approved.iter().find(|a| a.place() == d.place())?;
                if d.region != a.region {
                    return None;
                }
                let both_write = d.mode == FileMode::ReadWrite && a.mode == FileMode::ReadWrite;
                Some(S3Scope {
                    mode: if both_write {
                        FileMode::ReadWrite
                    } else {
                        FileMode::ReadOnly
                    },
                    credentials: if d.credentials == a.credentials {
                        d.credentials.clone()
                    } else {
                        None
                    },
                    ..d.clone()
                })
            })
            .collect()
    }

    fn read_only(grant: &mut Self::Grant) {
        *grant = std::mem::take(grant)
            .into_iter()
            .map(|scope| S3Scope {
                mode: FileMode::ReadOnly,
                ..scope
            })
            .collect();
    }

    fn narrow(grant: &mut Self::Grant, binding: &S3Binding) -> Result<(), String> {
        if binding.s3_read_only {
            *grant = std::mem::take(grant)
                .into_iter()
                .map(|scope| S3Scope {
                    mode: FileMode::ReadOnly,
                    ..scope
                })
                .collect();
        }
        Ok(())
    }

    fn resolve_paths(binding: &mut S3Binding, resolve: &dyn Fn(&Path) -> PathBuf) {
        if let Some(p) = &binding.s3_ca_file {
            binding.s3_ca_file = Some(resolve(p));
        }
    }

    fn lines(grant: &Self::Grant, _: Option<&S3Binding>) -> Vec<String> {
        grant
            .iter()
            .map(|s| s.to_string().trim_start_matches("s3 ").to_string())
            .collect()
    }

    fn load(
        grant: &Self::Grant,
        binding: &S3Binding,
        _: &Arc<()>,
        cx: &LoadContext<'_>,
    ) -> Result<S3Policy, String> {
        let scopes: Vec<S3Scope> = grant.iter().cloned().collect();
        let tls = tls_client(binding.s3_ca_file.as_deref(), "s3-ca-file")?;
        S3Policy::load(
            &scopes,
            |secret| cx.secrets.value(secret),
            cx.ceiling.clone(),
            cx.resolver.clone(),
            tls,
        )
    }

    fn gate(
        policy: &Arc<S3Policy>,
        _: &mut WasiCtxBuilder,
        log: &DecisionLog,
    ) -> wasmtime::Result<S3Gate> {
        Ok(S3Gate::new(policy.clone(), log.clone()))
    }

    fn per_call(grant: &Self::Grant) -> Option<String> {
        grant
            .iter()
            .any(|s| s.mode == FileMode::ReadWrite)
            .then(|| format!("{} MiB put", MOST_PUT_BYTES_PER_CALL >> 20))
    }

    fn begin_call(gate: &mut S3Gate) {
        gate.begin_call();
    }

    fn add_to_linker<T: HasGate<Self> + WasiView + WasiHttpView + Send + 'static>(
        linker: &mut Linker<T>,
    ) -> wasmtime::Result<()> {
        s3::add_to_linker::<T, GateOf<S3>>(linker, |state| state.gate())
    }
}
