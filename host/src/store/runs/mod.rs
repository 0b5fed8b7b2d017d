//! The `runs` table: one run per accepted event, its policy digest and
//! context, its outcome once it has one, and the lease that keeps two
//! drivers from working on it at once.
//!
//! A run with no outcome is unfinished: `handoff resume` (and a restarted
//! service) picks it up.

use super::Write;
use super::{StoreError, now_rfc3339};
use crate::model::Outcome;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::time::Duration;

/// A stored run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub event_seq: i64,
    pub event_id: String,
    /// The decision's business key, when the policy defines one.
    pub business_key: Option<String>,
    pub event_source: String,
    pub policy_id: String,
    pub policy_sha256: String,
    pub context: serde_json::Value,
    /// The event as received (the template scope `event.*`).
    pub event: serde_json::Value,
    pub outcome: Option<Outcome>,
    pub created_at: String,
    pub updated_at: String,
}

/// What a new run records.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub policy_id: &'a str,
    pub policy_sha256: &'a str,
    pub context: &'a serde_json::Value,
    /// Its steps, planned at admission: stored with it, `planned`.
    pub plan: &'a [crate::policy::plan::PlannedStep],
}

/// The run id of the run for event `seq`.
pub fn run_id_for(event_seq: i64) -> String {
    format!("run-{event_seq}")
}

pub fn insert(
    tx: &Write<'_>,
    event_seq: i64,
    event_id: &str,
    new: &NewRun<'_>,
) -> Result<String, StoreError> {
    let run_id = run_id_for(event_seq);
    let now = now_rfc3339();
    tx.prepare_cached(
        "INSERT INTO runs (run_id, event_seq, event_id, policy_id, policy_sha256, context,
                           created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?
    .execute(params![
        run_id,
        event_seq,
        event_id,
        new.policy_id,
        new.policy_sha256,
        new.context.to_string(),
        now
    ])?;
    Ok(run_id)
}

const SELECT: &str = "SELECT r.run_id, r.event_seq, r.event_id, r.policy_id, r.policy_sha256,
        r.context, e.raw, r.outcome, r.created_at, r.updated_at, e.business_key, e.source
    FROM runs r JOIN events e ON e.seq = r.event_seq";

fn json(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

/// A row as stored, before its JSON columns are decoded.
struct RawRun {
    run_id: String,
    event_seq: i64,
    event_id: String,
    policy_id: String,
    policy_sha256: String,
    context: String,
    event: String,
    outcome: Option<String>,
    created_at: String,
    updated_at: String,
    business_key: Option<String>,
    event_source: String,
}

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRun> {
    Ok(RawRun {
        run_id: r.get(0)?,
        event_seq: r.get(1)?,
        event_id: r.get(2)?,
        policy_id: r.get(3)?,
        policy_sha256: r.get(4)?,
        context: r.get(5)?,
        event: r.get(6)?,
        outcome: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        business_key: r.get(10)?,
        event_source: r.get(11)?,
    })
}

fn parse_outcome(o: &str) -> Result<Outcome, StoreError> {
    Outcome::parse(o).ok_or_else(|| StoreError::Corrupt(format!("unknown outcome {o:?}")))
}

fn decode(raw: RawRun) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        context: json(&raw.context)?,
        event: json(&raw.event)?,
        outcome: raw.outcome.as_deref().map(parse_outcome).transpose()?,
        run_id: raw.run_id,
        event_seq: raw.event_seq,
        event_id: raw.event_id,
        business_key: raw.business_key,
        event_source: raw.event_source,
        policy_id: raw.policy_id,
        policy_sha256: raw.policy_sha256,
        created_at: raw.created_at,
        updated_at: raw.updated_at,
    })
}

pub fn get(conn: &Connection, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
    conn.prepare_cached(&format!("{SELECT} WHERE r.run_id = ?1"))?
        .query_row([run_id], read)
        .optional()?
        .map(decode)
        .transpose()
}

/// The run started by event `seq`, if any.
pub fn for_event(conn: &Connection, event_seq: i64) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT run_id FROM runs WHERE event_seq = ?1")?
        .query_row([event_seq], |r| r.get(0))
        .optional()?)
}

/// Runs, newest first.
pub fn list(conn: &Connection, limit: usize, which: Which) -> Result<Vec<RunRecord>, StoreError> {
    let (filter, outcome) = match which {
        Which::All => ("", None),
        Which::Unfinished => ("WHERE r.outcome IS NULL", None),
        Which::Ended(o) => ("WHERE r.outcome = ?2", Some(o.name())),
    };
    let mut stmt = conn.prepare(&format!(
        "{SELECT} {filter} ORDER BY r.event_seq DESC LIMIT ?1"
    ))?;
    let rows = match outcome {
        Some(o) => stmt.query_map(params![limit as i64, o], read)?,
        None => stmt.query_map(params![limit as i64], read)?,
    };
    rows.map(|r| decode(r?)).collect()
}

/// Which runs [`list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    All,
    /// Not ended yet: running, waiting to be resumed, or stopped by a crash.
    Unfinished,
    /// Ended with this outcome.
    Ended(Outcome),
}

impl Which {
    /// A filter as the API and the console take it: empty for all,
    /// `unfinished`, or an outcome a run can end with (a duplicate ends no
    /// run: its event is recorded against the first one's).
    pub fn parse(outcome: &str) -> Result<Which, String> {
        match outcome {
            "" => Ok(Which::All),
            "unfinished" => Ok(Which::Unfinished),
            o => Outcome::parse(o)
                .filter(|o| o.ends_a_run())
                .map(Which::Ended)
                .ok_or_else(|| {
                    let ends: Vec<&str> = Outcome::ALL
                        .iter()
                        .filter(|o| o.ends_a_run())
                        .map(|o| o.name())
                        .collect();
                    format!(
                        "outcome {o:?}: one of {}, or unfinished (a duplicate ends no run)",
                        ends.join(", ")
                    )
                }),
        }
    }
}

/// Runs without an outcome, oldest first.
pub fn unfinished(conn: &Connection) -> Result<Vec<String>, StoreError> {
    Ok(unfinished_with_events(conn)?
        .into_iter()
        .map(|(run_id, _)| run_id)
        .collect())
}

/// Runs without an outcome, oldest first, each with its event's id.
pub fn unfinished_with_events(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT run_id, event_id FROM runs WHERE outcome IS NULL ORDER BY event_seq")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Set (or, for a resumed run, clear) the outcome, ending the lease.
pub fn set_outcome(
    tx: &Write<'_>,
    run_id: &str,
    outcome: Option<Outcome>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE runs SET outcome = ?1, updated_at = ?2, lease_owner = NULL, lease_until = NULL
         WHERE run_id = ?3",
    )?
    .execute(params![outcome.map(Outcome::name), now_rfc3339(), run_id])?;
    Ok(())
}

/// Who holds a lease: `HOST/BOOT/PIDNS:PID`, this process as its machine
/// boot and PID namespace see it. A pid alone names a process only inside
/// one PID namespace of one boot: two containers on one shared volume can
/// both be pid 1. Where the boot id or the namespace cannot be read, a
/// random token stands in for them, so the owner is still this process's
/// alone (and no other process ever takes its lease early).
pub fn lease_owner() -> String {
    static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OWNER
        .get_or_init(|| {
            let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_string());
            let host = read("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
            let boot = read("/proc/sys/kernel/random/boot_id").ok();
            let pidns = std::fs::read_link("/proc/self/ns/pid").ok().map(|l| {
                l.to_string_lossy()
                    .trim_start_matches("pid:")
                    .trim_matches(['[', ']'])
                    .to_string()
            });
            let place = match (boot, pidns) {
                (Some(boot), Some(ns)) => format!("{boot}/{ns}"),
                _ => {
                    // Unique enough to be no one else's: the moment this
                    // process first asked, to the nanosecond.
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default();
                    format!("unknown-{}", now.as_nanos())
                }
            };
            format!("{host}/{place}:{}", std::process::id())
        })
        .clone()
}

/// Whether a lease holder is a process that no longer exists (killed), so
/// its lease need not run out before another takes the run. Said only of a
/// holder in this boot and PID namespace, and only when `/proc` is this
/// namespace's (its `self` is this process's pid); anyone else's lease is
/// judged by its expiry alone.
pub(crate) fn holder_is_gone(owner: &str, mine: &str) -> bool {
    let (Some((place, pid)), Some((my_place, _))) = (owner.rsplit_once(':'), mine.rsplit_once(':'))
    else {
        return false;
    };
    let own_proc = std::fs::read_link("/proc/self")
        .is_ok_and(|p| p.to_string_lossy() == std::process::id().to_string());
    place == my_place
        && !place.contains("/unknown-")
        && own_proc
        && pid.parse::<u32>().is_ok()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Why a run could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Taken,
    /// It already has an outcome.
    Finished(Outcome),
    /// Another live driver holds it until the given time.
    Held {
        owner: String,
        until: String,
    },
    Missing,
}

/// Take a run for driving, or say why not. A lease runs out after `ttl`
/// unless renewed; a lease held by a dead process on this host is taken
/// over at once.
pub fn claim(
    store: &mut super::Store,
    run_id: &str,
    owner: &str,
    ttl: Duration,
) -> Result<Claim, StoreError> {
    let tx = store.write()?;
    let row: Option<(Option<String>, Option<String>, Option<String>)> = tx
        .prepare_cached("SELECT outcome, lease_owner, lease_until FROM runs WHERE run_id = ?1")?
        .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((outcome, holder, until)) = row else {
        return Ok(Claim::Missing);
    };
    if let Some(o) = outcome {
        return Ok(Claim::Finished(parse_outcome(&o)?));
    }
    let now = now_rfc3339();
    if let (Some(holder), Some(until)) = (holder, until)
        && holder != owner
        && until > now
        && !holder_is_gone(&holder, owner)
    {
        return Ok(Claim::Held {
            owner: holder,
            until,
        });
    }
    take(&tx, run_id, owner, ttl)?;
    tx.commit()?;
    Ok(Claim::Taken)
}

/// Extend the lease (inside a step's transaction) if `owner` still holds
/// it. A driver paused or cut off past its lease may find the run taken
/// over: it must not write a transition, let alone reach a target, for a
/// run another driver now drives.
pub fn renew(tx: &Write<'_>, run_id: &str, owner: &str, ttl: Duration) -> Result<(), StoreError> {
    let renewed = tx
        .prepare_cached(
            "UPDATE runs SET lease_until = ?1, updated_at = ?2
             WHERE run_id = ?3 AND lease_owner = ?4",
        )?
        .execute(params![
            super::rfc3339_in(ttl),
            now_rfc3339(),
            run_id,
            owner
        ])?;
    if renewed == 0 {
        let holder: Option<String> = tx
            .prepare_cached("SELECT lease_owner FROM runs WHERE run_id = ?1")?
            .query_row([run_id], |r| r.get(0))
            .optional()?
            .flatten();
        return Err(StoreError::LeaseLost {
            run_id: run_id.to_string(),
            holder: holder.unwrap_or_else(|| "nobody".into()),
        });
    }
    Ok(())
}

/// Take the lease (a claim that found it free, expired or abandoned).
fn take(tx: &Write<'_>, run_id: &str, owner: &str, ttl: Duration) -> Result<(), StoreError> {
    let until = super::rfc3339_in(ttl);
    tx.prepare_cached(
        "UPDATE runs SET lease_owner = ?1, lease_until = ?2, updated_at = ?3 WHERE run_id = ?4",
    )?
    .execute(params![owner, until, now_rfc3339(), run_id])?;
    Ok(())
}

/// Give a lease back without finishing (the run stays unfinished).
pub fn release(conn: &Connection, run_id: &str, owner: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE runs SET lease_owner = NULL, lease_until = NULL
         WHERE run_id = ?1 AND lease_owner = ?2",
    )?
    .execute(params![run_id, owner])?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
