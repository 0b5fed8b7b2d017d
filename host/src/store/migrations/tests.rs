//! The migrations applied in order and one by one, data kept across them, and each CHECK list equal to its closed set.

use super::*;

#[test]
fn every_migration_applies_in_order_on_an_empty_database() {
    let mut conn = Connection::open_in_memory().unwrap();
    apply(&mut conn, Path::new(":memory:")).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, MIGRATIONS.len() as i64);
    // Applying again changes nothing and does not fail.
    apply(&mut conn, Path::new(":memory:")).unwrap();
}

#[test]
fn each_migration_is_valid_sql_on_its_own_predecessors() {
    for upto in 1..=MIGRATIONS.len() {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..upto] {
            conn.execute_batch(sql)
                .unwrap_or_else(|e| panic!("migration {upto} fails: {e}"));
        }
    }
}

#[test]
fn dropping_the_audit_hash_index_keeps_every_row_as_it_was() {
    let mut conn = Connection::open_in_memory().unwrap();
    for sql in &MIGRATIONS[..7] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 7).unwrap();
    for seq in 1..=3 {
        conn.execute(
            "INSERT INTO audit (seq, at, run_id, event_id, kind, payload,
                 policy_sha256, adapter_sha256, prev_hash, hash)
             VALUES (?1, 't', 'run-1', 'e', 'k', '{}', 'p', NULL, ?2, ?3)",
            rusqlite::params![seq, format!("h{}", seq - 1), format!("h{seq}")],
        )
        .unwrap();
    }
    let rows = |conn: &Connection| -> Vec<(i64, String, String, Option<String>)> {
        let mut stmt = conn
            .prepare("SELECT seq, prev_hash, hash, adapter_sha256 FROM audit ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let before = rows(&conn);

    apply(&mut conn, Path::new(":memory:")).unwrap();

    assert_eq!(rows(&conn), before);
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(indexes, ["audit_by_run"]);
    // Appending continues after the highest sequence number.
    conn.execute(
        "INSERT INTO audit (at, kind, payload, prev_hash, hash)
         VALUES ('t', 'k', '{}', 'h3', 'h4')",
        [],
    )
    .unwrap();
    let last: i64 = conn
        .query_row("SELECT max(seq) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert_eq!(last, 4);
}

/// The names a column's `CHECK (column IN (...))` allows, as the schema
/// holds it after every migration.
fn check_list(conn: &Connection, table: &str, column: &str) -> Vec<String> {
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .unwrap();
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let start = flat
        .find(&format!("CHECK ({column} IN ("))
        .unwrap_or_else(|| panic!("{table}.{column} has no CHECK list: {flat}"));
    let list = &flat[start..];
    let list = &list[list.find("IN (").unwrap() + 4..list.find("))").unwrap()];
    list.split(',')
        .map(|n| n.trim().trim_matches('\'').to_string())
        .collect()
}

#[test]
fn each_check_list_is_its_closed_set() {
    use crate::model::{Outcome, Resolution, StepState, Verdict};
    let names = |all: &[&'static str]| all.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let mut conn = Connection::open_in_memory().unwrap();
    apply(&mut conn, Path::new(":memory:")).unwrap();
    let outcomes: Vec<&str> = Outcome::ALL
        .iter()
        .filter(|o| o.ends_a_run())
        .map(|o| o.name())
        .collect();
    assert_eq!(check_list(&conn, "runs", "outcome"), names(&outcomes));
    let states: Vec<&str> = StepState::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(check_list(&conn, "steps", "state"), names(&states));
    let resolutions: Vec<&str> = Resolution::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(
        check_list(&conn, "follow_ups", "resolution"),
        names(&resolutions)
    );
    let verdicts: Vec<&str> = Verdict::ALL.iter().map(|v| v.name()).collect();
    assert_eq!(
        check_list(&conn, "capability_decisions", "verdict"),
        names(&verdicts)
    );
    use crate::model::{NoticeKind, NoticeState, ResolutionVerdict};
    let kinds: Vec<&str> = NoticeKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(check_list(&conn, "notices", "kind"), names(&kinds));
    let states: Vec<&str> = NoticeState::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(check_list(&conn, "notices", "state"), names(&states));
    let judged: Vec<&str> = ResolutionVerdict::ALL.iter().map(|v| v.name()).collect();
    assert_eq!(check_list(&conn, "follow_ups", "verdict"), names(&judged));
}

#[test]
fn a_step_left_applied_by_an_older_store_is_observed_again() {
    let mut conn = Connection::open_in_memory().unwrap();
    for sql in &MIGRATIONS[..9] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 9).unwrap();
    conn.execute_batch(
        "INSERT INTO events (seq, source, event_id, event_type, received_at, raw)
             VALUES (1, 's', 'e', 't', 'now', '{}');
         INSERT INTO runs (run_id, event_seq, event_id, policy_id, policy_sha256, context,
                           created_at, updated_at)
             VALUES ('run-1', 1, 'e', 'p', 'sha', '{}', 'now', 'now');
         INSERT INTO steps (run_id, position, step_id, adapter, plan, idem_key, state,
                            attempts, updated_at)
             VALUES ('run-1', 0, 'a', 'x', '{}', 'k1', 'applied', 1, 'now'),
                    ('run-1', 1, 'b', 'x', '{}', 'k2', 'verified', 1, 'now');",
    )
    .unwrap();
    apply(&mut conn, Path::new(":memory:")).unwrap();
    let states: Vec<(String, String, i64)> = conn
        .prepare("SELECT step_id, state, attempts FROM steps ORDER BY position")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        states,
        [
            ("a".to_string(), "observed".to_string(), 1),
            ("b".to_string(), "verified".to_string(), 1)
        ]
    );
}

#[test]
fn a_store_newer_than_this_binary_is_refused() {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    let err = apply(&mut conn, Path::new("x.db")).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 999, .. }),
        "{err}"
    );
}

#[test]
fn the_handoff_counters_are_backfilled_from_the_packets_an_older_store_holds() {
    let mut conn = Connection::open_in_memory().unwrap();
    for sql in &MIGRATIONS[..10] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 10).unwrap();
    // A run halted, was resumed, and halted again; the second packet was
    // taken on an hour after it opened.
    conn.execute_batch(
        "INSERT INTO events (seq, source, event_id, event_type, received_at, raw)
             VALUES (1, 's', 'e', 't', 'now', '{}');
         INSERT INTO runs (run_id, event_seq, event_id, policy_id, policy_sha256, context,
                           created_at, updated_at)
             VALUES ('run-1', 1, 'e', 'closure', 'sha', '{}', 'now', 'now');
         INSERT INTO follow_ups (run_id, reason, route_to, due_at, packet, created_at,
                                 resolution, resolved_by, resolved_note, resolved_at,
                                 acknowledged_by, acknowledged_at)
             VALUES ('run-1', 'revoked', 'coordinator', 'd', '{}', '2026-12-01T00:00:00Z',
                     'resume', 'c', '', '2026-12-01T00:30:00Z', 'c', '2026-12-01T00:30:00Z');
         INSERT INTO follow_ups (run_id, reason, route_to, due_at, packet, created_at,
                                 acknowledged_by, acknowledged_at)
             VALUES ('run-1', 'revoked', 'coordinator', 'd', '{}', '2026-12-01T01:00:00Z',
                     'c', '2026-12-01T02:00:00Z');",
    )
    .unwrap();
    apply(&mut conn, Path::new(":memory:")).unwrap();
    let counter = |name: &str| -> f64 {
        conn.query_row("SELECT n FROM counters WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .unwrap_or(0.0)
    };
    let at = |measure: &str| counter(&format!("handoffs/{measure}/closure/coordinator"));
    assert_eq!(at("opened"), 2.0);
    assert_eq!(at("rework"), 1.0);
    assert_eq!(at("resolved"), 1.0);
    assert_eq!(at("acknowledged"), 2.0);
    assert!((at("resolved-seconds") - 1800.0).abs() < 0.01);
    assert!((at("acknowledged-seconds") - 5400.0).abs() < 0.01);
}

#[test]
fn runs_made_again_for_the_shadowed_outcome_keep_their_rows_references_and_counts() {
    let mut conn = Connection::open_in_memory().unwrap();
    for sql in &MIGRATIONS[..11] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 11).unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn.execute_batch(
        "INSERT INTO events (seq, source, event_id, event_type, received_at, raw)
             VALUES (1, 's', 'e1', 't', 'now', '{}'), (2, 's', 'e2', 't', 'now', '{}');
         INSERT INTO runs (run_id, event_seq, event_id, policy_id, policy_sha256, context,
                           outcome, created_at, updated_at)
             VALUES ('run-1', 1, 'e1', 'closure', 'sha', '{}', 'halted-for-follow-up', 'a', 'b'),
                    ('run-2', 2, 'e2', 'closure', 'sha', '{}', NULL, 'c', 'd');
         INSERT INTO steps (run_id, position, step_id, adapter, plan, idem_key, state,
                            attempts, updated_at)
             VALUES ('run-1', 0, 'a', 'x', '{}', 'k1', 'verified', 1, 'now');
         INSERT INTO follow_ups (run_id, reason, route_to, due_at, packet, created_at)
             VALUES ('run-1', 'revoked', 'coordinator', 'd', '{}', '2026-12-01T00:00:00Z');",
    )
    .unwrap();
    let runs = |conn: &Connection| -> Vec<(String, Option<String>, String)> {
        conn.prepare("SELECT run_id, outcome, created_at FROM runs ORDER BY run_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let counter = |conn: &Connection, name: &str| -> f64 {
        conn.query_row("SELECT n FROM counters WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .unwrap_or(0.0)
    };
    let before = runs(&conn);

    apply(&mut conn, Path::new(":memory:")).unwrap();

    assert_eq!(runs(&conn), before);
    let fk: bool = conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    assert!(fk, "references are enforced again after the migrations");
    // Steps and follow-ups still refer to their run, and are held to it.
    let orphan = conn.execute(
        "INSERT INTO steps (run_id, position, step_id, adapter, plan, idem_key, state,
                            attempts, updated_at)
         VALUES ('run-9', 0, 'a', 'x', '{}', 'k9', 'planned', 0, 'now')",
        [],
    );
    assert!(orphan.is_err(), "a step of no run is refused");
    // The new outcome is allowed and counted by the triggers made again.
    assert_eq!(counter(&conn, "runs/running"), 1.0);
    conn.execute(
        "UPDATE runs SET outcome = 'shadowed' WHERE run_id = 'run-2'",
        [],
    )
    .unwrap();
    assert_eq!(counter(&conn, "runs/shadowed"), 1.0);
    assert_eq!(counter(&conn, "runs/running"), 0.0);
    assert!(
        conn.execute(
            "UPDATE runs SET outcome = 'lost' WHERE run_id = 'run-2'",
            []
        )
        .is_err()
    );
}
