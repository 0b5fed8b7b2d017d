//! The schema, as a constant list of migrations applied in order.
//!
//! `PRAGMA user_version` records how many have been applied. A migration is
//! never edited once released: a change is a new entry at the end.

use super::StoreError;
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;

/// Every migration, oldest first.
pub const MIGRATIONS: &[&str] = &[
    // 1: adapter approvals. One row per approval; revoking sets revoked_*.
    "CREATE TABLE adapter_approvals (
        id               INTEGER PRIMARY KEY,
        name             TEXT NOT NULL,
        version          TEXT NOT NULL,
        world            TEXT NOT NULL,
        component_sha256 TEXT NOT NULL,
        manifest_sha256  TEXT NOT NULL,
        grants_json      TEXT NOT NULL,
        approved_by      TEXT NOT NULL,
        approved_at      TEXT NOT NULL,
        revoked_by       TEXT,
        revoked_at       TEXT
    );
    CREATE INDEX adapter_approvals_by_name ON adapter_approvals(name, id);",
    // 2: capability decisions made by the sandbox (allowed and denied).
    "CREATE TABLE capability_decisions (
        id               INTEGER PRIMARY KEY,
        at               TEXT NOT NULL,
        adapter          TEXT NOT NULL,
        component_sha256 TEXT NOT NULL,
        surface          TEXT NOT NULL,
        target           TEXT NOT NULL,
        verdict          TEXT NOT NULL CHECK (verdict IN ('allowed', 'denied')),
        reason           TEXT NOT NULL
    );
    CREATE INDEX capability_decisions_by_adapter ON capability_decisions(adapter, id);",
    // 3: the audit chain. Append-only: each row's hash covers its content and
    // the previous row's hash (see crate::audit).
    "CREATE TABLE audit (
        seq            INTEGER PRIMARY KEY,
        at             TEXT NOT NULL,
        run_id         TEXT,
        event_id       TEXT,
        kind           TEXT NOT NULL,
        payload        TEXT NOT NULL,
        policy_sha256  TEXT,
        adapter_sha256 TEXT,
        prev_hash      TEXT NOT NULL,
        hash           TEXT NOT NULL UNIQUE
    );
    CREATE INDEX audit_by_run ON audit(run_id, seq);",
    // 4: events as received. The unique keys are the dedupe: (source, id),
    // and the business key a policy derives (a decision re-sent under a new
    // event id is still the same decision).
    "CREATE TABLE events (
        seq          INTEGER PRIMARY KEY,
        source       TEXT NOT NULL,
        event_id     TEXT NOT NULL,
        event_type   TEXT NOT NULL,
        business_key TEXT,
        received_at  TEXT NOT NULL,
        raw          TEXT NOT NULL,
        UNIQUE (source, event_id)
    );
    CREATE UNIQUE INDEX events_by_business_key ON events(business_key)
        WHERE business_key IS NOT NULL;",
    // 5: policies, runs, their steps, and follow-up packets.
    // A policy approval keeps the approved text itself, so a run can always
    // be resumed under exactly the policy it started with.
    "CREATE TABLE policy_approvals (
        id           INTEGER PRIMARY KEY,
        policy_id    TEXT NOT NULL,
        version      TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        reach_json   TEXT NOT NULL,
        text         TEXT NOT NULL,
        approved_by  TEXT NOT NULL,
        approved_at  TEXT NOT NULL,
        revoked_by   TEXT,
        revoked_at   TEXT
    );
    CREATE INDEX policy_approvals_by_id ON policy_approvals(policy_id, id);
    CREATE TABLE runs (
        run_id        TEXT PRIMARY KEY,
        event_seq     INTEGER NOT NULL UNIQUE REFERENCES events(seq),
        event_id      TEXT NOT NULL,
        policy_id     TEXT NOT NULL,
        policy_sha256 TEXT NOT NULL,
        context       TEXT NOT NULL,
        outcome       TEXT CHECK (outcome IN ('completed', 'completed-with-skips',
                        'partially-completed', 'halted-for-follow-up')),
        lease_owner   TEXT,
        lease_until   TEXT,
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    );
    CREATE INDEX runs_unfinished ON runs(run_id) WHERE outcome IS NULL;
    CREATE TABLE steps (
        run_id      TEXT NOT NULL REFERENCES runs(run_id),
        position    INTEGER NOT NULL,
        step_id     TEXT NOT NULL,
        adapter     TEXT NOT NULL,
        plan        TEXT NOT NULL,
        idem_key    TEXT NOT NULL UNIQUE,
        state       TEXT NOT NULL CHECK (state IN ('planned', 'observed', 'applied',
                        'verified', 'skipped', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        error       TEXT,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (run_id, step_id)
    );
    CREATE TABLE follow_ups (
        id            INTEGER PRIMARY KEY,
        run_id        TEXT NOT NULL REFERENCES runs(run_id),
        reason        TEXT NOT NULL,
        route_to      TEXT NOT NULL,
        due_at        TEXT NOT NULL,
        packet        TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        resolution    TEXT CHECK (resolution IN ('resume', 'abandon', 'mark-resolved')),
        resolved_by   TEXT,
        resolved_note TEXT,
        resolved_at   TEXT
    );
    CREATE INDEX follow_ups_open ON follow_ups(id) WHERE resolution IS NULL;",
    // 6: where reconciliation polling stands, per source adapter instance
    // and policy (the adapter's own cursor, opaque to the host).
    "CREATE TABLE poll_cursors (
        adapter     TEXT NOT NULL,
        policy_id   TEXT NOT NULL,
        cursor      TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (adapter, policy_id)
    );",
    // 7: a person taking a follow-up on before deciding it (time to
    // acknowledge). A resolution without an explicit acknowledgement counts
    // as one at the time of the resolution.
    "ALTER TABLE follow_ups ADD COLUMN acknowledged_by TEXT;
    ALTER TABLE follow_ups ADD COLUMN acknowledged_at TEXT;",
    // 8: the audit chain without a unique index on `hash`. Nothing looks a
    // row up by its hash (`audit verify` recomputes the chain in `seq`
    // order), and the index cost each appended row a write to a random
    // page: about a third of the store's page writes per run.
    "CREATE TABLE audit_v8 (
        seq            INTEGER PRIMARY KEY,
        at             TEXT NOT NULL,
        run_id         TEXT,
        event_id       TEXT,
        kind           TEXT NOT NULL,
        payload        TEXT NOT NULL,
        policy_sha256  TEXT,
        adapter_sha256 TEXT,
        prev_hash      TEXT NOT NULL,
        hash           TEXT NOT NULL
    );
    INSERT INTO audit_v8 (seq, at, run_id, event_id, kind, payload, policy_sha256,
                          adapter_sha256, prev_hash, hash)
        SELECT seq, at, run_id, event_id, kind, payload, policy_sha256,
               adapter_sha256, prev_hash, hash
        FROM audit ORDER BY seq;
    DROP TABLE audit;
    ALTER TABLE audit_v8 RENAME TO audit;
    CREATE INDEX audit_by_run ON audit(run_id, seq);",
    // 9: what /metrics reports of the store, kept as it happens: triggers
    // count each change in the transaction that makes it, so a scrape reads
    // one small table instead of scanning runs, follow-ups, capability
    // decisions and the whole audit chain. Filled first from what the store
    // holds.
    "CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        n    REAL NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO counters (name, n)
        SELECT 'runs/' || COALESCE(outcome, 'running'), COUNT(*) FROM runs GROUP BY 1;
    INSERT INTO counters (name, n)
        SELECT 'follow-ups/' || reason, COUNT(*) FROM follow_ups GROUP BY 1;
    INSERT INTO counters (name, n)
        SELECT 'decisions/' || verdict, COUNT(*) FROM capability_decisions GROUP BY 1;
    INSERT INTO counters (name, n)
        SELECT 'duplicates', COUNT(*) FROM audit WHERE kind = 'duplicate-suppressed';
    INSERT INTO counters (name, n)
        SELECT 'acknowledged', COUNT(*) FROM follow_ups WHERE acknowledged_at IS NOT NULL;
    INSERT INTO counters (name, n)
        SELECT 'acknowledged-seconds',
               COALESCE(SUM((julianday(acknowledged_at) - julianday(created_at)) * 86400.0), 0)
        FROM follow_ups WHERE acknowledged_at IS NOT NULL;
    INSERT INTO counters (name, n)
        SELECT 'resolved', COUNT(*) FROM follow_ups WHERE resolved_at IS NOT NULL;
    INSERT INTO counters (name, n)
        SELECT 'resolved-seconds',
               COALESCE(SUM((julianday(resolved_at) - julianday(created_at)) * 86400.0), 0)
        FROM follow_ups WHERE resolved_at IS NOT NULL;
    CREATE TRIGGER count_run_new AFTER INSERT ON runs BEGIN
        INSERT INTO counters (name, n) VALUES ('runs/' || COALESCE(NEW.outcome, 'running'), 1)
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER count_run_outcome AFTER UPDATE OF outcome ON runs
        WHEN OLD.outcome IS NOT NEW.outcome BEGIN
        UPDATE counters SET n = n - 1 WHERE name = 'runs/' || COALESCE(OLD.outcome, 'running');
        INSERT INTO counters (name, n) VALUES ('runs/' || COALESCE(NEW.outcome, 'running'), 1)
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER count_run_gone AFTER DELETE ON runs BEGIN
        UPDATE counters SET n = n - 1 WHERE name = 'runs/' || COALESCE(OLD.outcome, 'running');
    END;
    CREATE TRIGGER count_follow_up_new AFTER INSERT ON follow_ups BEGIN
        INSERT INTO counters (name, n) VALUES ('follow-ups/' || NEW.reason, 1)
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER count_follow_up_acknowledged AFTER UPDATE OF acknowledged_at ON follow_ups
        WHEN OLD.acknowledged_at IS NULL AND NEW.acknowledged_at IS NOT NULL BEGIN
        INSERT INTO counters (name, n) VALUES ('acknowledged', 1)
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
        INSERT INTO counters (name, n)
            VALUES ('acknowledged-seconds',
                    (julianday(NEW.acknowledged_at) - julianday(NEW.created_at)) * 86400.0)
            ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
    END;
    CREATE TRIGGER count_follow_up_resolved AFTER UPDATE OF resolved_at ON follow_ups
        WHEN OLD.resolved_at IS NULL AND NEW.resolved_at IS NOT NULL BEGIN
        INSERT INTO counters (name, n) VALUES ('resolved', 1)
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
        INSERT INTO counters (name, n)
            VALUES ('resolved-seconds',
                    (julianday(NEW.resolved_at) - julianday(NEW.created_at)) * 86400.0)
            ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
    END;
    CREATE TRIGGER count_decision_new AFTER INSERT ON capability_decisions BEGIN
        INSERT INTO counters (name, n) VALUES ('decisions/' || NEW.verdict, 1)
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER count_decision_gone AFTER DELETE ON capability_decisions BEGIN
        UPDATE counters SET n = n - 1 WHERE name = 'decisions/' || OLD.verdict;
    END;
    CREATE TRIGGER count_duplicate AFTER INSERT ON audit
        WHEN NEW.kind = 'duplicate-suppressed' BEGIN
        INSERT INTO counters (name, n) VALUES ('duplicates', 1)
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
    END;",
    // 10: step states as their lifecycle has them (crate::model::step):
    // `applied` was never set, and is gone from the CHECK list (a row in it,
    // which none should be, becomes `observed`: its intent was recorded, so
    // the next drive looks at its target before anything else).
    "CREATE TABLE steps_v10 (
        run_id      TEXT NOT NULL REFERENCES runs(run_id),
        position    INTEGER NOT NULL,
        step_id     TEXT NOT NULL,
        adapter     TEXT NOT NULL,
        plan        TEXT NOT NULL,
        idem_key    TEXT NOT NULL UNIQUE,
        state       TEXT NOT NULL CHECK (state IN ('planned', 'observed', 'verified',
                        'skipped', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        error       TEXT,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (run_id, step_id)
    );
    INSERT INTO steps_v10 (run_id, position, step_id, adapter, plan, idem_key, state,
                           attempts, error, updated_at)
        SELECT run_id, position, step_id, adapter, plan, idem_key,
               CASE state WHEN 'applied' THEN 'observed' ELSE state END,
               attempts, error, updated_at
        FROM steps;
    DROP TABLE steps;
    ALTER TABLE steps_v10 RENAME TO steps;",
    // 11: the notices a follow-up packet sends to people (delivery,
    // reminders, overdue notices, escalations), scheduled with the packet
    // and each sent at most once by its key; and whether a resolved packet
    // was needed at all (a false positive of the automation).
    "CREATE TABLE notices (
        id           INTEGER PRIMARY KEY,
        follow_up_id INTEGER NOT NULL REFERENCES follow_ups(id),
        kind         TEXT NOT NULL CHECK (kind IN ('opened', 'reminder', 'overdue', 'escalated')),
        role         TEXT NOT NULL,
        instance     TEXT NOT NULL,
        notice_key   TEXT NOT NULL UNIQUE,
        send_at      TEXT NOT NULL,
        state        TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'cancelled')),
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT,
        sent_at      TEXT,
        claimed_by   TEXT,
        claimed_until TEXT
    );
    CREATE INDEX notices_due ON notices(send_at) WHERE state = 'pending';
    CREATE INDEX notices_by_follow_up ON notices(follow_up_id);
    ALTER TABLE follow_ups ADD COLUMN verdict TEXT CHECK (verdict IN ('needed', 'unnecessary'));
    CREATE TRIGGER count_notice_sent AFTER UPDATE OF state ON notices
        WHEN OLD.state IS NOT NEW.state AND NEW.state IN ('sent', 'failed') BEGIN
        INSERT INTO counters (name, n) VALUES ('notices/' || NEW.state || '/' || NEW.kind, 1)
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
    END;
    -- The handoff per policy and role, 'handoffs/MEASURE/POLICY/ROLE', kept
    -- as it happens: packets opened, rework (a packet of a run a person had
    -- resumed before), acknowledged and resolved with their seconds, and
    -- those resolved as unnecessary (false positives).
    INSERT INTO counters (name, n)
        SELECT 'handoffs/opened/' || r.policy_id || '/' || f.route_to, COUNT(*)
        FROM follow_ups f JOIN runs r ON r.run_id = f.run_id GROUP BY 1;
    INSERT INTO counters (name, n)
        SELECT 'handoffs/rework/' || r.policy_id || '/' || f.route_to, COUNT(*)
        FROM follow_ups f JOIN runs r ON r.run_id = f.run_id
        WHERE EXISTS (SELECT 1 FROM follow_ups e
                      WHERE e.run_id = f.run_id AND e.id < f.id AND e.resolution = 'resume')
        GROUP BY 1;
    INSERT INTO counters (name, n)
        SELECT 'handoffs/acknowledged/' || r.policy_id || '/' || f.route_to, COUNT(*)
        FROM follow_ups f JOIN runs r ON r.run_id = f.run_id
        WHERE f.acknowledged_at IS NOT NULL GROUP BY 1;
    INSERT INTO counters (name, n)
        SELECT 'handoffs/acknowledged-seconds/' || r.policy_id || '/' || f.route_to,
               SUM((julianday(f.acknowledged_at) - julianday(f.created_at)) * 86400.0)
        FROM follow_ups f JOIN runs r ON r.run_id = f.run_id
        WHERE f.acknowledged_at IS NOT NULL GROUP BY 1;
    INSERT INTO counters (name, n)
        SELECT 'handoffs/resolved/' || r.policy_id || '/' || f.route_to, COUNT(*)
        FROM follow_ups f JOIN runs r ON r.run_id = f.run_id
        WHERE f.resolved_at IS NOT NULL GROUP BY 1;
    INSERT INTO counters (name, n)
        SELECT 'handoffs/resolved-seconds/' || r.policy_id || '/' || f.route_to,
               SUM((julianday(f.resolved_at) - julianday(f.created_at)) * 86400.0)
        FROM follow_ups f JOIN runs r ON r.run_id = f.run_id
        WHERE f.resolved_at IS NOT NULL GROUP BY 1;
    CREATE TRIGGER count_handoff_opened AFTER INSERT ON follow_ups BEGIN
        INSERT INTO counters (name, n)
            SELECT 'handoffs/opened/' || r.policy_id || '/' || NEW.route_to, 1
            FROM runs r WHERE r.run_id = NEW.run_id
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
        INSERT INTO counters (name, n)
            SELECT 'handoffs/rework/' || r.policy_id || '/' || NEW.route_to, 1
            FROM runs r WHERE r.run_id = NEW.run_id
              AND EXISTS (SELECT 1 FROM follow_ups e WHERE e.run_id = NEW.run_id
                          AND e.id < NEW.id AND e.resolution = 'resume')
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER count_handoff_acknowledged AFTER UPDATE OF acknowledged_at ON follow_ups
        WHEN OLD.acknowledged_at IS NULL AND NEW.acknowledged_at IS NOT NULL BEGIN
        INSERT INTO counters (name, n)
            SELECT 'handoffs/acknowledged/' || r.policy_id || '/' || NEW.route_to, 1
            FROM runs r WHERE r.run_id = NEW.run_id
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
        INSERT INTO counters (name, n)
            SELECT 'handoffs/acknowledged-seconds/' || r.policy_id || '/' || NEW.route_to,
                   (julianday(NEW.acknowledged_at) - julianday(NEW.created_at)) * 86400.0
            FROM runs r WHERE r.run_id = NEW.run_id
            ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
    END;
    CREATE TRIGGER count_handoff_resolved AFTER UPDATE OF resolved_at ON follow_ups
        WHEN OLD.resolved_at IS NULL AND NEW.resolved_at IS NOT NULL BEGIN
        INSERT INTO counters (name, n)
            SELECT 'handoffs/resolved/' || r.policy_id || '/' || NEW.route_to, 1
            FROM runs r WHERE r.run_id = NEW.run_id
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
        INSERT INTO counters (name, n)
            SELECT 'handoffs/resolved-seconds/' || r.policy_id || '/' || NEW.route_to,
                   (julianday(NEW.resolved_at) - julianday(NEW.created_at)) * 86400.0
            FROM runs r WHERE r.run_id = NEW.run_id
            ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
        INSERT INTO counters (name, n)
            SELECT 'handoffs/unnecessary/' || r.policy_id || '/' || NEW.route_to, 1
            FROM runs r WHERE r.run_id = NEW.run_id AND NEW.verdict = 'unnecessary'
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
    END;",
    // 12: a run of a policy in shadow mode ends `shadowed` (it looked at
    // every target and recorded what it would have done). SQLite cannot
    // change a CHECK list in place, so the table is made again with its rows;
    // the references to it (steps, follow-ups, their triggers) name it and
    // hold once it has its name back, which legacy_alter_table keeps the
    // rename from checking too early. Its counting triggers go with the old
    // table and are made again.
    "PRAGMA legacy_alter_table = ON;
    CREATE TABLE runs_v12 (
        run_id        TEXT PRIMARY KEY,
        event_seq     INTEGER NOT NULL UNIQUE REFERENCES events(seq),
        event_id      TEXT NOT NULL,
        policy_id     TEXT NOT NULL,
        policy_sha256 TEXT NOT NULL,
        context       TEXT NOT NULL,
        outcome       TEXT CHECK (outcome IN ('completed', 'completed-with-skips',
                        'partially-completed', 'halted-for-follow-up', 'shadowed')),
        lease_owner   TEXT,
        lease_until   TEXT,
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    );
    INSERT INTO runs_v12 (run_id, event_seq, event_id, policy_id, policy_sha256, context,
                          outcome, lease_owner, lease_until, created_at, updated_at)
        SELECT run_id, event_seq, event_id, policy_id, policy_sha256, context,
               outcome, lease_owner, lease_until, created_at, updated_at
        FROM runs;
    DROP TABLE runs;
    ALTER TABLE runs_v12 RENAME TO runs;
    PRAGMA legacy_alter_table = OFF;
    CREATE INDEX runs_unfinished ON runs(run_id) WHERE outcome IS NULL;
    CREATE TRIGGER count_run_new AFTER INSERT ON runs BEGIN
        INSERT INTO counters (name, n) VALUES ('runs/' || COALESCE(NEW.outcome, 'running'), 1)
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER count_run_outcome AFTER UPDATE OF outcome ON runs
        WHEN OLD.outcome IS NOT NEW.outcome BEGIN
        UPDATE counters SET n = n - 1 WHERE name = 'runs/' || COALESCE(OLD.outcome, 'running');
        INSERT INTO counters (name, n) VALUES ('runs/' || COALESCE(NEW.outcome, 'running'), 1)
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER count_run_gone AFTER DELETE ON runs BEGIN
        UPDATE counters SET n = n - 1 WHERE name = 'runs/' || COALESCE(OLD.outcome, 'running');
    END;",
];

/// Bring the schema up to date, one transaction per migration.
pub fn apply(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: current,
            known,
        });
    }
    // A migration that makes a table again drops the old one, which the
    // tables referring to it would refuse: references are checked once
    // each migration is done instead (SQLite's own procedure), and a
    // migration that leaves one broken is not committed.
    if current < known {
        conn.pragma_update(None, "foreign_keys", "OFF")?;
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()?;
        if let Some(table) = broken {
            return Err(StoreError::Corrupt(format!(
                "migration {} left rows of {table} referring to rows that are gone",
                index + 1
            )));
        }
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

#[cfg(test)]
mod tests;
