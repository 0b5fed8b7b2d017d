use super::*;
use crate::store::{Durability, Store, StoreError};
use std::path::Path;
use std::time::{Duration, Instant};

/// A store in `dir` committing in groups, with a table to write to; a
/// batch nobody asks for stays open for a minute, so that the counts
/// are the test's own.
fn grouped(dir: &Path, durability: Durability) -> Store {
    grouped_open_for(dir, durability, Duration::from_secs(60))
}

fn grouped_open_for(dir: &Path, durability: Durability, max_open: Duration) -> Store {
    let path = dir.join("s.db");
    let mut store = Store::open(&path).unwrap();
    let tx = store.write().unwrap();
    tx.execute_batch(
        "CREATE TABLE t (n INTEGER PRIMARY KEY);
         CREATE TABLE child (n INTEGER REFERENCES t (n) DEFERRABLE INITIALLY DEFERRED);",
    )
    .unwrap();
    tx.commit().unwrap();
    store
        .commit_in_groups_open_for(durability, max_open)
        .unwrap();
    store
}

fn insert(store: &mut Store, n: i64) {
    let tx = store.write().unwrap();
    tx.execute("INSERT INTO t (n) VALUES (?1)", [n]).unwrap();
    tx.commit().unwrap();
}

fn rows(reader: &Store) -> Vec<i64> {
    let conn = reader.conn().unwrap();
    let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn writes_share_one_commit_and_one_sync_made_when_someone_waits() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = grouped(dir.path(), Durability::Power);
    let reader = Store::open_unshared(&dir.path().join("s.db")).unwrap();
    for n in 1..=3 {
        insert(&mut store, n);
    }
    // Everyone on the connection sees them at once.
    assert_eq!(rows(&store), [1, 2, 3]);
    store.durable_blocking().unwrap();
    let counts = store.group_counts().unwrap();
    assert_eq!(counts.writes, 3);
    assert_eq!((counts.commits, counts.syncs), (1, 1), "{counts:?}");
    assert_eq!(rows(&reader), [1, 2, 3], "committed for other connections");
    // Nothing new: no commit, no sync.
    store.durable_blocking().unwrap();
    assert_eq!(store.group_counts().unwrap(), counts);
}

#[test]
fn a_full_batch_is_committed_by_its_last_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = grouped(dir.path(), Durability::Power);
    for n in 0..MAX_WRITES as i64 + 2 {
        insert(&mut store, n);
    }
    let counts = store.group_counts().unwrap();
    assert_eq!((counts.writes, counts.commits), (MAX_WRITES + 2, 1));
    let reader = Store::open_unshared(&dir.path().join("s.db")).unwrap();
    assert_eq!(rows(&reader).len() as u64, MAX_WRITES);
}

#[test]
fn a_write_dropped_undoes_only_its_own_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = grouped(dir.path(), Durability::Process);
    insert(&mut store, 1);
    {
        let tx = store.write().unwrap();
        tx.execute("INSERT INTO t (n) VALUES (2)", []).unwrap();
    }
    insert(&mut store, 3);
    store.durable_blocking().unwrap();
    let reader = Store::open_unshared(&dir.path().join("s.db")).unwrap();
    assert_eq!(rows(&reader), [1, 3]);
    assert_eq!(store.group_counts().unwrap().commits, 1);
}

#[test]
fn a_writer_of_another_connection_has_the_batch_committed_and_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = grouped(dir.path(), Durability::Power);
    insert(&mut store, 1);
    // Intake's kind of connection: its own, not grouped. It waits at
    // the gate, asks for the batch's commit, then writes.
    let mut other = Store::open_unshared(&dir.path().join("s.db")).unwrap();
    insert(&mut other, 2);
    assert_eq!(rows(&other), [1, 2]);
    assert_eq!(store.group_counts().unwrap().commits, 1);
    // And the grouped connection goes on writing after it.
    insert(&mut store, 3);
    store.durable_blocking().unwrap();
    assert_eq!(rows(&other), [1, 2, 3]);
}

#[test]
fn a_batch_nobody_asks_for_is_committed_when_it_has_been_open_long_enough() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = grouped_open_for(dir.path(), Durability::Process, MAX_OPEN);
    let reader = Store::open_unshared(&dir.path().join("s.db")).unwrap();
    insert(&mut store, 7);
    // No wait is asked for: the syncer's own clock commits it.
    let deadline = Instant::now() + Duration::from_secs(10);
    // (The count follows the commit, so it is waited for too.)
    while rows(&reader).is_empty() || store.group_counts().unwrap().commits == 0 {
        assert!(Instant::now() < deadline, "the batch was never committed");
        std::thread::yield_now();
    }
    assert_eq!(rows(&reader), [7]);
    assert_eq!(store.group_counts().unwrap().commits, 1);
}

#[test]
fn a_batch_left_open_is_committed_when_the_connection_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let mut store = grouped(dir.path(), Durability::Power);
        insert(&mut store, 5);
    }
    assert_eq!(rows(&Store::open_unshared(&path).unwrap()), [5]);
}

#[test]
fn many_waiting_tasks_share_commits_and_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = grouped(dir.path(), Durability::Power);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let tasks: Vec<_> = (0..50)
            .map(|n| {
                let mut store = store.handle();
                tokio::task::spawn_local(async move {
                    insert(&mut store, n);
                    store.durable().await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let counts = store.group_counts().unwrap();
    assert_eq!(counts.writes, 50);
    assert!((1..50).contains(&counts.syncs), "{counts:?}");
    assert!(counts.commits <= counts.syncs + 1, "{counts:?}");
}

#[test]
fn a_sync_that_fails_fails_the_wait_and_the_next_wait_tries_again() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let mut store = grouped(&home, Durability::Power);
    insert(&mut store, 1);
    // The files cannot be opened under their names any more.
    let moved = dir.path().join("moved");
    std::fs::rename(&home, &moved).unwrap();
    assert!(store.durable_blocking().is_err());
    std::fs::rename(&moved, &home).unwrap();
    insert(&mut store, 2);
    store.durable_blocking().unwrap();
}

#[test]
fn a_batch_that_cannot_commit_refuses_every_later_write_and_wait() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = grouped(dir.path(), Durability::Process);
    store
        .conn()
        .unwrap()
        .execute_batch("PRAGMA foreign_keys = ON")
        .unwrap();
    insert(&mut store, 1);
    // Checked only at the commit: the whole batch fails with it.
    let tx = store.write().unwrap();
    tx.execute("INSERT INTO child (n) VALUES (99)", []).unwrap();
    tx.commit().unwrap();
    assert!(matches!(
        store.durable_blocking(),
        Err(StoreError::Unavailable(m)) if m.contains("could not be committed")
    ));
    assert!(store.write().is_err(), "a write after a lost batch");
    let why = store
        .writes_refused()
        .expect("refusing writes, and saying why");
    assert!(why.contains("FOREIGN KEY"), "{why}");
    let reader = Store::open_unshared(&dir.path().join("s.db")).unwrap();
    assert!(rows(&reader).is_empty(), "the batch was not committed");
}

#[test]
fn a_batch_committed_when_full_is_synced_by_the_next_wait_even_after_an_empty_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = grouped(dir.path(), Durability::Power);
    // The last of these commits the full batch at once, without a sync.
    for n in 0..MAX_WRITES as i64 {
        insert(&mut store, n);
    }
    assert_eq!(store.group_counts().unwrap().commits, 1);
    // A write that begins the next batch and is dropped with nothing in it.
    drop(store.write().unwrap());
    store.durable_blocking().unwrap();
    assert_eq!(
        store.group_counts().unwrap().syncs,
        1,
        "the commit was taken for synced without a sync"
    );
}
