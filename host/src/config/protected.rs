//! What no adapter's directory may reach: the store (its file, and the log
//! and shared memory SQLite keeps beside it), the artifact cache of
//! compiled native code, the configuration file and the service's
//! workflow context, and every secret file and CA file the configuration
//! names. A directory bound to an instance (`directories = { name = "path"
//! }`) that holds one of them, or lies inside the cache, would let the
//! adapter read or rewrite what the host trusts: approvals and the audit
//! chain, code the host runs natively, other adapters' credentials. Refused
//! as the configuration is read, so `handoff check` names it. Paths are
//! compared as [`crate::paths::resolved`] has them.

use super::{Config, SecretSource};
use crate::paths::resolved;
use std::path::{Path, PathBuf};

/// The first directory binding that reaches a protected path, as a refusal.
/// `file` is the configuration's own file, when it came from one: an
/// adapter that could rewrite it would bind itself more at the next start.
pub(super) fn check(config: &Config, file: Option<&Path>) -> Result<(), String> {
    // The lock file of the runs' turns on records: an adapter that could
    // replace it could let two processes change a record at once.
    let turns = crate::pipeline::throttle::across::file_beside(&config.store_path);
    let mut protected: Vec<(String, &Path)> = vec![
        ("the store".into(), &config.store_path),
        ("the store's record turns".into(), &turns),
    ];
    protected.extend(file.map(|f| ("the configuration file".into(), f)));
    protected.extend(
        (config.serve.context.as_deref()).map(|c| ("the service's workflow context".into(), c)),
    );
    for (name, instance) in &config.adapters {
        let owner = format!("a secret file of adapters.{name}");
        protected.extend(file_of(instance.secrets.sources.values(), &owner));
        // The certificates the host trusts for an instance's connections:
        // an adapter that could change them could vouch for any server as
        // a granted one, and be sent the credentials the host injects.
        let b = &instance.surfaces;
        for ca in [&b.http.http_ca_file, &b.smtp.smtp_ca_file, &b.s3.s3_ca_file]
            .into_iter()
            .flatten()
        {
            protected.push((format!("a CA file of adapters.{name}"), ca));
        }
    }
    for (role, access) in &config.access {
        protected.extend(file_of(
            &access.tokens,
            &format!("a token file of roles.{role}"),
        ));
    }
    for (name, source) in &config.serve.sources {
        let owner = format!("a secret file of serve.sources.{name:?}");
        protected.extend(file_of(&source.secrets, &owner));
    }
    let protected: Vec<(String, PathBuf)> = protected
        .into_iter()
        .map(|(what, path)| (what, resolved(path)))
        .collect();
    let cache = resolved(&config.cache_dir);
    for (name, directory, bound) in bound_directories(config) {
        let dir = resolved(bound);
        let reached = protected
            .iter()
            .find(|(_, path)| path.starts_with(&dir))
            .map(|(what, _)| what.as_str())
            .or_else(|| {
                (cache.starts_with(&dir) || dir.starts_with(&cache)).then_some("the artifact cache")
            });
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

/// The files among `sources` (secrets given as files, not variables), each
/// with `owner` to name it by.
fn file_of<'a>(
    sources: impl IntoIterator<Item = &'a SecretSource>,
    owner: &str,
) -> impl Iterator<Item = (String, &'a Path)> {
    sources.into_iter().filter_map(move |source| match source {
        SecretSource::File(path) => Some((owner.to_string(), path.as_path())),
        SecretSource::Env(_) => None,
    })
}

/// The adapter directory that `path` would lie in, as
/// `adapters.NAME.directories.DIR`: where a copy of the store must not go.
pub fn reached_by_an_adapter(config: &Config, path: &Path) -> Option<String> {
    let path = resolved(path);
    bound_directories(config)
        .find(|(_, _, bound)| path.starts_with(resolved(bound)))
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
