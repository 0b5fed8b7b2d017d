//! What no adapter's directory may reach: the store (its file, and the log
//! and shared memory SQLite keeps beside it), the artifact cache of
//! compiled native code, the configuration file and the service's
//! workflow context, and every secret file and CA file the configuration
//! names. A
//! directory bound to an instance (`directories = { name = "path" }`) that
//! holds one of them, or lies inside the cache, would let the adapter read
//! or rewrite what the host trusts: approvals and the audit chain, code the
//! host runs natively, other adapters' credentials. Refused as the
//! configuration is read, so `handoff check` names it.

use super::{Config, SecretSource};
use std::path::{Component, Path, PathBuf};

/// The first directory binding that reaches a protected path, as a refusal.
/// `file` is the configuration's own file, when it came from one: an
/// adapter that could rewrite it would bind itself more at the next start.
pub(super) fn check(config: &Config, file: Option<&Path>) -> Result<(), String> {
    let mut protected: Vec<(String, PathBuf)> = vec![
        ("the store".into(), config.store_path.clone()),
        ("the artifact cache".into(), config.cache_dir.clone()),
    ];
    if let Some(file) = file {
        protected.push(("the configuration file".into(), file.to_path_buf()));
    }
    if let Some(context) = &config.serve.context {
        protected.push(("the service's workflow context".into(), context.clone()));
    }
    let secret = |protected: &mut Vec<(String, PathBuf)>, owner: String, source: &SecretSource| {
        if let SecretSource::File(path) = source {
            protected.push((owner, path.clone()));
        }
    };
    for (name, instance) in &config.adapters {
        for source in instance.secrets.sources.values() {
            secret(
                &mut protected,
                format!("a secret file of adapters.{name}"),
                source,
            );
        }
        // The certificates the host trusts for an instance's connections:
        // an adapter that could change them could vouch for any server as
        // a granted one, and be sent the credentials the host injects.
        let b = &instance.surfaces;
        for ca in [&b.http.http_ca_file, &b.smtp.smtp_ca_file, &b.s3.s3_ca_file]
            .into_iter()
            .flatten()
        {
            protected.push((format!("a CA file of adapters.{name}"), ca.clone()));
        }
    }
    for (role, access) in &config.access {
        for source in &access.tokens {
            secret(
                &mut protected,
                format!("a token file of roles.{role}"),
                source,
            );
        }
    }
    for (name, source) in &config.serve.sources {
        for s in &source.secrets {
            secret(
                &mut protected,
                format!("a secret file of serve.sources.{name:?}"),
                s,
            );
        }
    }
    let protected: Vec<(String, PathBuf)> = protected
        .into_iter()
        .map(|(what, path)| (what, real(&path)))
        .collect();
    let cache = real(&config.cache_dir);
    for (name, directory, bound) in bound_directories(config) {
        let dir = real(bound);
        let reached = protected
            .iter()
            .find(|(_, path)| path.starts_with(&dir))
            .map(|(what, _)| what.as_str())
            .or_else(|| dir.starts_with(&cache).then_some("the artifact cache"));
        if let Some(what) = reached {
            return Err(format!(
                "adapters.{name}.directories.{directory} = {}: it holds {what}, which an \
                 adapter must never reach; bind a directory of the adapter's own (such as \
                 one beside the store, not above it)",
                bound.display()
            ));
        }
    }
    Ok(())
}

/// The adapter directory that `path` would lie in, as
/// `adapters.NAME.directories.DIR`: where a copy of the store must not go.
pub fn reached_by_an_adapter(config: &Config, path: &Path) -> Option<String> {
    let path = real(path);
    bound_directories(config)
        .find(|(_, _, bound)| path.starts_with(real(bound)))
        .map(|(name, directory, _)| format!("adapters.{name}.directories.{directory}"))
}

/// Every directory bound to an instance: its instance, its name, its path.
fn bound_directories(config: &Config) -> impl Iterator<Item = (&str, &str, &PathBuf)> {
    config.adapters.iter().flat_map(|(name, instance)| {
        instance
            .surfaces
            .files
            .directories
            .iter()
            .map(move |(directory, bound)| (name.as_str(), directory.as_str(), bound))
    })
}

/// `path` as the file system resolves it: its nearest existing ancestor
/// with symbolic links followed, the rest as written (`.` and `..` taken
/// lexically). A binding and a protected path are compared as where they
/// really are, however each is spelt.
fn real(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(found) = existing.canonicalize() {
            let mut real = found;
            for part in rest.iter().rev() {
                real.push(part);
            }
            return lexical(&real);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return lexical(&absolute),
        }
    }
}

/// `.` dropped and `..` taken back one part, without asking the disk.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
