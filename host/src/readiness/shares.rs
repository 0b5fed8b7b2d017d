//! Where two adapter instances reach the same place and one of them may
//! write there: a directory (the same one, or one inside the other) or a
//! bucket's keys (under the same or nested prefixes). Each keeps to its
//! grant, yet one can change what the other reads: a record store bound
//! above the decision source's directory could rewrite its decisions.
//! `handoff check --reach` shows it under each instance, so a reviewer
//! reading one sees who else reaches what it reads or writes.

use crate::sandbox::LoadedAdapter;
use crate::sandbox::surfaces::files::FileMode;
use std::path::PathBuf;

/// A place an instance reaches, how it is shown, and whether it may write
/// there.
pub(super) struct Reached {
    instance: String,
    shown: String,
    place: Place,
    writes: bool,
}

enum Place {
    /// A directory, where it really is.
    Directory(PathBuf),
    /// An S3 bucket's keys under a prefix ("" for all of them).
    Keys {
        endpoint: String,
        bucket: String,
        prefix: String,
    },
}

impl Place {
    fn overlaps(&self, other: &Place) -> bool {
        match (self, other) {
            (Place::Directory(a), Place::Directory(b)) => a.starts_with(b) || b.starts_with(a),
            (
                Place::Keys {
                    endpoint,
                    bucket,
                    prefix,
                },
                Place::Keys {
                    endpoint: e,
                    bucket: b,
                    prefix: p,
                },
            ) => {
                endpoint == e
                    && bucket == b
                    && (prefix.starts_with(p.as_str()) || p.starts_with(prefix.as_str()))
            }
            _ => false,
        }
    }
}

/// The directories and keys `loaded` reaches, as the instance `instance`.
pub(super) fn of(instance: &str, loaded: &LoadedAdapter) -> Vec<Reached> {
    let capabilities = &loaded.grants().capabilities;
    let bound = &loaded.bindings().files.directories;
    let directories = capabilities.files.iter().filter_map(|(name, mode)| {
        let path = bound.get(name)?;
        Some(Reached {
            instance: instance.to_string(),
            shown: format!("/{name} = {}", path.display()),
            place: Place::Directory(crate::paths::resolved(path)),
            writes: *mode == FileMode::ReadWrite,
        })
    });
    let keys = capabilities.s3.iter().map(|scope| Reached {
        instance: instance.to_string(),
        shown: format!("s3 {} {}/{}*", scope.endpoint, scope.bucket, scope.prefix),
        place: Place::Keys {
            endpoint: scope.endpoint.to_string(),
            bucket: scope.bucket.clone(),
            prefix: scope.prefix.clone(),
        },
        writes: scope.mode == FileMode::ReadWrite,
    });
    directories.chain(keys).collect()
}

/// Under `instance`, one line for each place it shares with another
/// instance where either may write, saying which can change what the
/// other reads.
pub(super) fn lines(all: &[Reached], instance: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for mine in all.iter().filter(|r| r.instance == instance) {
        for other in all.iter().filter(|r| r.instance != instance) {
            if !mine.place.overlaps(&other.place) {
                continue;
            }
            let who = &other.instance;
            let effect = match (mine.writes, other.writes) {
                (false, false) => continue,
                (true, false) => format!("it can change what {who} reads there"),
                (false, true) => format!("{who} can change what it reads there"),
                (true, true) => format!("it and {who} can each change what the other reads there"),
            };
            lines.push(format!(
                "shares    {} with {who}'s {}: {effect}",
                mine.shown, other.shown
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::Place;
    use std::path::PathBuf;

    fn keys(bucket: &str, prefix: &str) -> Place {
        Place::Keys {
            endpoint: "http://127.0.0.1:8433".into(),
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    #[test]
    fn places_overlap_when_one_holds_the_other() {
        let dir = |p: &str| Place::Directory(PathBuf::from(p));
        assert!(dir("/srv/state").overlaps(&dir("/srv/state/governance")));
        assert!(dir("/srv/state/governance").overlaps(&dir("/srv/state")));
        assert!(!dir("/srv/state/tracker").overlaps(&dir("/srv/state/queue")));
        // A name that only begins like another is another directory.
        assert!(!dir("/srv/state").overlaps(&dir("/srv/state-old")));
        assert!(keys("evidence", "").overlaps(&keys("evidence", "releases/")));
        assert!(keys("evidence", "releases/2026/").overlaps(&keys("evidence", "releases/")));
        assert!(!keys("evidence", "rel/").overlaps(&keys("evidence", "releases/")));
        assert!(!keys("evidence", "").overlaps(&keys("archive", "")));
        assert!(!keys("evidence", "").overlaps(&dir("/evidence")));
    }
}
