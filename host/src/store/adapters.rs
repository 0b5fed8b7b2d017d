//! Adapter approvals: who approved which exact package (component and
//! manifest digests), with which grants, and when; and revocations.

use super::{Store, StoreError, now_rfc3339};
use crate::sandbox::manifest::Grants;
use rusqlite::{OptionalExtension, Row, params};

pub use crate::sandbox::approval::Approval;

/// What an approval records, before it is stored.
#[derive(Debug, Clone)]
pub struct NewApproval<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub component_sha256: &'a str,
    pub manifest_sha256: &'a str,
    pub grants: &'a Grants,
    pub approved_by: &'a str,
}

impl<'a> NewApproval<'a> {
    /// Approve a package exactly as it is: its digests and declared grants.
    pub fn of(package: &'a crate::sandbox::package::Package, approved_by: &'a str) -> Self {
        NewApproval {
            name: &package.manifest.name,
            version: &package.manifest.version,
            component_sha256: &package.component_sha256,
            manifest_sha256: &package.manifest_sha256,
            grants: &package.manifest.grants,
            approved_by,
        }
    }
}

const COLUMNS: &str = "id, name, version, world, component_sha256, manifest_sha256, grants_json, \
                       approved_by, approved_at, revoked_by, revoked_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Approval> {
    let grants_json: String = row.get(6)?;
    let grants = serde_json::from_str(&grants_json).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Approval {
        id: row.get(0)?,
        name: row.get(1)?,
        version: row.get(2)?,
        world: row.get(3)?,
        component_sha256: row.get(4)?,
        manifest_sha256: row.get(5)?,
        grants,
        approved_by: row.get(7)?,
        approved_at: row.get(8)?,
        revoked_by: row.get(9)?,
        revoked_at: row.get(10)?,
    })
}

impl Store {
    /// Record an approval; it supersedes earlier ones for the same name.
    pub fn approve_adapter(&mut self, new: &NewApproval<'_>) -> Result<Approval, StoreError> {
        let grants_json = serde_json::to_string(new.grants)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode grants: {e}")))?;
        let now = now_rfc3339();
        // One turn for the insert and its id: another user of the shared
        // connection could insert in between.
        let conn = self.conn()?;
        conn.prepare_cached(
            "INSERT INTO adapter_approvals (name, version, world, component_sha256,
                     manifest_sha256, grants_json, approved_by, approved_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            new.name,
            new.version,
            new.grants.world.id(),
            new.component_sha256,
            new.manifest_sha256,
            grants_json,
            new.approved_by,
            now
        ])?;
        let id = conn.last_insert_rowid();
        drop(conn);
        self.approval_by_id(id)?
            .ok_or_else(|| StoreError::Corrupt(format!("approval {id} vanished")))
    }

    fn approval_by_id(&self, id: i64) -> Result<Option<Approval>, StoreError> {
        self.conn()?
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM adapter_approvals WHERE id = ?1"
            ))?
            .query_row([id], from_row)
            .optional()
            .map_err(StoreError::from)
    }

    /// The newest approval for an adapter name (possibly revoked).
    pub fn latest_approval(&self, name: &str) -> Result<Option<Approval>, StoreError> {
        self.conn()?
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM adapter_approvals WHERE name = ?1 ORDER BY id DESC LIMIT 1"
            ))?
            .query_row([name], from_row)
            .optional()
            .map_err(StoreError::from)
    }

    /// Where the approvals stand: changed by every approval and every
    /// revocation, so a process can tell that what it loaded may no longer
    /// be approved.
    pub fn approvals_stamp(&self) -> Result<ApprovalsStamp, StoreError> {
        self.conn()?
            .prepare_cached(
                "SELECT COUNT(*), COUNT(revoked_at), COALESCE(MAX(id), 0) FROM adapter_approvals",
            )?
            .query_row([], |r| {
                Ok(ApprovalsStamp {
                    rows: r.get(0)?,
                    revoked: r.get(1)?,
                    newest: r.get(2)?,
                })
            })
            .map_err(StoreError::from)
    }

    /// The newest approval of every adapter name, by name.
    pub fn current_approvals(&self) -> Result<Vec<Approval>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM adapter_approvals a
             WHERE id = (SELECT MAX(id) FROM adapter_approvals b WHERE b.name = a.name)
             ORDER BY name"
        ))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revoke the current approval of `name`. Returns false when there is
    /// no live approval to revoke.
    pub fn revoke_adapter(&mut self, name: &str, by: &str) -> Result<bool, StoreError> {
        let changed = self
            .conn()?
            .prepare_cached(
                "UPDATE adapter_approvals SET revoked_by = ?2, revoked_at = ?3
             WHERE id = (SELECT MAX(id) FROM adapter_approvals WHERE name = ?1)
               AND revoked_at IS NULL",
            )?
            .execute(params![name, by, now_rfc3339()])?;
        Ok(changed == 1)
    }
}

/// Where the approvals stand ([`Store::approvals_stamp`]): approvals are
/// only added and revoked, never deleted or revoked twice, so each change
/// moves one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalsStamp {
    rows: i64,
    revoked: i64,
    newest: i64,
}
