//! `handoff store restore`: a store made again from a backup, only where
//! no store is, and only from a backup whose chain verifies; the backup
//! itself is never written to.

use crate::support::scenario::*;
use serde_json::Value;
use std::path::Path;

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn beside(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    name.into()
}

#[test]
fn a_store_is_restored_from_its_backup_only_where_none_is_and_only_when_it_verifies() {
    let s = Scenario::new();
    let (code, out, err) = outcome(&s.run());
    assert_eq!(code, 0, "{out}{err}");
    let backup = s.path("backups/copy.db");
    let b = backup.to_str().unwrap();
    let taken = json(&s.handoff(&["store", "backup", b, "--json"]));
    assert_eq!(taken["verified"], true, "{taken}");
    // A backup is one file: nothing beside it to forget when it is copied.
    assert!(!beside(&backup, "-wal").exists() && !beside(&backup, "-shm").exists());
    let bytes = std::fs::read(&backup).unwrap();
    // A backup is never written over the store's own files, however named.
    for own in [
        "state/handoff.db-wal",
        "state/../state/handoff.db-shm",
        "state/handoff.db",
    ] {
        let (code, _, err) =
            outcome(&s.handoff(&["store", "backup", &s.path(own).display().to_string()]));
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("is the store's own file"), "{own}: {err}");
    }
    // Nor where an adapter could read it.
    let exposed = s.path("state/notify/copy.db");
    let (code, _, err) = outcome(&s.handoff(&["store", "backup", exposed.to_str().unwrap()]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("lies in adapters.notify.directories.records"),
        "{err}"
    );
    assert!(!exposed.exists() && !beside(&exposed, ".partial").exists());

    // Never over a store, nor beside a log that would be read as its own.
    let store = s.path("state/handoff.db");
    let before = std::fs::read(&store).unwrap();
    let (code, _, err) = outcome(&s.handoff(&["store", "restore", b]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("never replaces a store"), "{err}");
    assert_eq!(
        std::fs::read(&store).unwrap(),
        before,
        "the store untouched"
    );
    let stale = s.path("restored/stale.db");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(beside(&stale, "-wal"), b"an old log").unwrap();
    let stale = stale.to_str().unwrap();
    let (code, _, err) = outcome(&s.handoff(&["--store", stale, "store", "restore", b]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("stale.db-wal is there"), "{err}");
    // Nor beside a rollback journal, which would be played onto it.
    std::fs::remove_file(s.path("restored/stale.db-wal")).unwrap();
    std::fs::write(s.path("restored/stale.db-journal"), b"an old journal").unwrap();
    let (code, _, err) = outcome(&s.handoff(&["--store", stale, "store", "restore", b]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("stale.db-journal is there"), "{err}");
    std::fs::remove_file(s.path("restored/stale.db-journal")).unwrap();
    // Nor beside what a restore stopped part-way left, its log included.
    std::fs::write(s.path("restored/stale.db.partial-wal"), b"an old log").unwrap();
    let (code, _, err) = outcome(&s.handoff(&["--store", stale, "store", "restore", b]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("stale.db.partial-wal is there") && err.contains("stopped part-way"),
        "{err}"
    );

    // Where no store is: the backup's runs and chain, head for head.
    let fresh = s.path("restored/handoff.db");
    let f = fresh.to_str().unwrap();
    let out = s.handoff(&["--store", f, "store", "restore", b, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let restored = json(&out);
    assert_eq!(
        (&restored["restored"], &restored["rows"], &restored["head"]),
        (&Value::Bool(true), &taken["rows"], &taken["head"]),
        "{restored}"
    );
    let (code, out, _) = outcome(&s.handoff(&["--store", f, "runs", "list"]));
    assert_eq!(code, 0);
    assert!(out.contains("run-1") && out.contains("completed"), "{out}");
    let (code, out, _) = outcome(&s.handoff(&["--store", f, "audit", "verify"]));
    assert_eq!(code, 0, "{out}");
    assert!(!s.path("restored/handoff.db.partial").exists());
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        bytes,
        "the backup not written to"
    );
    assert!(!beside(&backup, "-wal").exists() && !beside(&backup, "-shm").exists());

    // A backup changed since it was taken restores nothing.
    let tampered = s.path("backups/tampered.db");
    std::fs::copy(&backup, &tampered).unwrap();
    let conn = rusqlite::Connection::open(&tampered).unwrap();
    conn.execute(
        "UPDATE audit SET payload = replace(payload, 'completed', 'abandoned') \
         WHERE kind = 'run-completed'",
        [],
    )
    .unwrap();
    drop(conn);
    let target = s.path("restored/from-tampered.db");
    let t = target.to_str().unwrap();
    let out = s.handoff(&[
        "--store",
        t,
        "store",
        "restore",
        tampered.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(json(&out)["restored"], false);
    let left: Vec<_> = std::fs::read_dir(s.path("restored"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("from-tampered"))
        .collect();
    assert!(left.is_empty(), "nothing left of it: {left:?}");

    // Neither another program's database, nor a file that is none, nor
    // one that is not there.
    let other = s.path("backups/other.db");
    let conn = rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE issues (id INTEGER)")
        .unwrap();
    drop(conn);
    std::fs::write(s.path("backups/notes.txt"), "not a database").unwrap();
    for (given, says) in [
        ("backups/other.db", "is not the backup of a handoff store"),
        ("backups/notes.txt", "not a database"),
        ("backups/missing.db", "is not a file"),
    ] {
        let given = s.path(given);
        let (code, _, err) =
            outcome(&s.handoff(&["--store", t, "store", "restore", given.to_str().unwrap()]));
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!target.exists() && !beside(&target, ".partial").exists());
    }
}
