//! Policy approvals: who approved which exact policy text (by sha256), with
//! which reach, and when. The text is kept, so a run always resumes under
//! the policy it started with, even after the file on disk has changed.

use super::{Store, StoreError, now_rfc3339};
use crate::audit::Entry;
use crate::policy::Policy;
use rusqlite::{OptionalExtension, Row, params};
use std::path::Path;

/// One policy approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyApproval {
    pub policy_id: String,
    pub version: String,
    pub sha256: String,
    /// `adapter: action` lines (see [`Policy::reach_lines`]).
    pub reach: Vec<String>,
    pub text: String,
    pub approved_by: String,
    pub approved_at: String,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<String>,
}

/// Where a policy stands against its approvals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyStatus {
    /// This exact text is approved.
    Approved(PolicyApproval),
    /// Never approved under this id.
    NotApproved,
    /// This exact text was approved, then revoked.
    Revoked { by: String, at: String },
    /// The text differs from the latest approval; `widened` lists the
    /// `adapter: action` pairs it adds (empty when it only narrows or
    /// rewords: still a change a person must approve).
    Changed {
        approved_sha256: String,
        widened: Vec<String>,
    },
}

const COLUMNS: &str = "policy_id, version, sha256, reach_json, text, approved_by, approved_at, \
                       revoked_by, revoked_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<PolicyApproval> {
    let reach_json: String = row.get(3)?;
    let reach = serde_json::from_str(&reach_json).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(PolicyApproval {
        policy_id: row.get(0)?,
        version: row.get(1)?,
        sha256: row.get(2)?,
        reach,
        text: row.get(4)?,
        approved_by: row.get(5)?,
        approved_at: row.get(6)?,
        revoked_by: row.get(7)?,
        revoked_at: row.get(8)?,
    })
}

impl Store {
    /// Approve a policy exactly as it is; the approval is audited in the
    /// same transaction.
    pub fn approve_policy(&mut self, policy: &Policy, by: &str) -> Result<(), StoreError> {
        let reach = policy.reach_lines();
        let tx = self.write()?;
        tx.prepare_cached(
            "INSERT INTO policy_approvals (policy_id, version, sha256, reach_json, text,
                 approved_by, approved_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            policy.id,
            policy.version,
            policy.sha256,
            serde_json::to_string(&reach).expect("strings encode"),
            policy.text,
            by,
            now_rfc3339()
        ])?;
        super::audit::append(
            &tx,
            &Entry {
                kind: "policy-approved".into(),
                payload: serde_json::json!({
                    "policy": policy.id, "version": policy.version,
                    "reach": reach, "by": by,
                }),
                policy_sha256: Some(policy.sha256.clone()),
                ..Default::default()
            },
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Revoke the latest approval of a policy id. Runs under it stop at
    /// their next revalidation.
    pub fn revoke_policy(&mut self, policy_id: &str, by: &str) -> Result<bool, StoreError> {
        let tx = self.write()?;
        let sha: Option<String> = tx
            .prepare_cached(
                "SELECT sha256 FROM policy_approvals WHERE policy_id = ?1 AND revoked_at IS NULL
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row([policy_id], |r| r.get(0))
            .optional()?;
        let Some(sha) = sha else { return Ok(false) };
        tx.prepare_cached(
            "UPDATE policy_approvals SET revoked_by = ?1, revoked_at = ?2
             WHERE policy_id = ?3 AND revoked_at IS NULL",
        )?
        .execute(params![by, now_rfc3339(), policy_id])?;
        super::audit::append(
            &tx,
            &Entry {
                kind: "policy-revoked".into(),
                payload: serde_json::json!({ "policy": policy_id, "by": by }),
                policy_sha256: Some(sha),
                ..Default::default()
            },
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// The latest approval under a policy id.
    pub fn latest_policy_approval(
        &self,
        policy_id: &str,
    ) -> Result<Option<PolicyApproval>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM policy_approvals WHERE policy_id = ?1
                     ORDER BY id DESC LIMIT 1"
            ))?
            .query_row([policy_id], from_row)
            .optional()?)
    }

    /// The approved text with this digest (approved at some point; whether
    /// still in force is [`Store::policy_status`]'s question).
    pub fn approved_policy(&self, sha256: &str) -> Result<Option<Policy>, StoreError> {
        let found: Option<PolicyApproval> = self
            .conn()?
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM policy_approvals WHERE sha256 = ?1
                     ORDER BY id DESC LIMIT 1"
            ))?
            .query_row([sha256], from_row)
            .optional()?;
        found
            .map(|a| {
                Policy::parse(
                    &a.text,
                    Path::new(&format!("approved policy {}", a.policy_id)),
                )
                .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .transpose()
    }

    /// Who revoked the approval of this exact text, when no approval of it
    /// is still in force (a run under it must stop).
    pub fn policy_revoked_by(&self, sha256: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT MAX(revoked_by) FROM policy_approvals WHERE sha256 = ?1
                   AND NOT EXISTS (SELECT 1 FROM policy_approvals
                                   WHERE sha256 = ?1 AND revoked_at IS NULL)",
            )?
            .query_row([sha256], |r| r.get(0))?)
    }

    /// Every policy id's latest approval.
    pub fn current_policy_approvals(&self) -> Result<Vec<PolicyApproval>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM policy_approvals p WHERE id =
                 (SELECT MAX(id) FROM policy_approvals q WHERE q.policy_id = p.policy_id)
             ORDER BY policy_id"
        ))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Where `policy` stands: approved, never approved, revoked, or changed
    /// since its approval (and what the change widens).
    pub fn policy_status(&self, policy: &Policy) -> Result<PolicyStatus, StoreError> {
        let Some(latest) = self.latest_policy_approval(&policy.id)? else {
            return Ok(PolicyStatus::NotApproved);
        };
        if latest.sha256 != policy.sha256 {
            let widened = policy
                .reach_lines()
                .into_iter()
                .filter(|line| !latest.reach.contains(line))
                .collect();
            return Ok(PolicyStatus::Changed {
                approved_sha256: latest.sha256,
                widened,
            });
        }
        match (latest.revoked_by.clone(), latest.revoked_at.clone()) {
            (Some(by), Some(at)) => Ok(PolicyStatus::Revoked { by, at }),
            _ => Ok(PolicyStatus::Approved(latest)),
        }
    }
}
