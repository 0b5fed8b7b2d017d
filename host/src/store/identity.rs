//! Whose database a store file is. handoff marks its own with SQLite's
//! `application_id`; a new, empty database becomes one, and a store made
//! before the mark (handoff's schema, no mark) is marked when opened. Any
//! other database (another program's, or the wrong file given to
//! `--store`) is refused before anything is written to it: not its tables,
//! not even its journal mode.

use super::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// `HNDF`: a handoff store.
pub const APPLICATION_ID: i32 = 0x484E_4446;

/// Tables that only a handoff store has together.
const OWN_TABLES: [&str; 3] = ["audit", "runs", "events"];

/// Refuse `conn` unless it is a handoff store or an empty database.
pub fn check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    if id == APPLICATION_ID {
        return Ok(());
    }
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let ours = version > 0 && OWN_TABLES.iter().all(|t| tables.iter().any(|n| n == t));
    if id == 0 && (tables.is_empty() || ours) {
        return Ok(());
    }
    let what = if id != 0 {
        format!("another program's (its application_id is {id:#010x})")
    } else {
        let more = tables.len().saturating_sub(5);
        tables.truncate(5);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("another program's (tables {}{more})", tables.join(", "))
    };
    Err(StoreError::NotAStore {
        path: path.to_path_buf(),
        what,
    })
}

/// Mark a store as handoff's (once its schema is in place).
pub fn mark(conn: &Connection) -> Result<(), StoreError> {
    let id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    if id != APPLICATION_ID {
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_programs_database_is_refused_untouched_and_ours_is_marked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("CREATE TABLE issues (id INTEGER); PRAGMA user_version = 3;")
            .unwrap();
        drop(other);
        let before = std::fs::read(&path).unwrap();
        let err = crate::store::Store::open(&path).err().unwrap().to_string();
        assert!(
            err.contains("is not a handoff store") && err.contains("tables issues"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "not written to");
        assert!(!dir.path().join("other.db-wal").exists());

        let marked = Connection::open(dir.path().join("marked.db")).unwrap();
        marked.pragma_update(None, "application_id", 7).unwrap();
        drop(marked);
        let err = crate::store::Store::open(&dir.path().join("marked.db"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("application_id is 0x00000007"), "{err}");

        // A new store is marked; a store of before the mark is marked when
        // opened.
        let ours = dir.path().join("ours.db");
        drop(crate::store::Store::open(&ours).unwrap());
        let conn = Connection::open(&ours).unwrap();
        let id: i32 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .unwrap();
        assert_eq!(id, APPLICATION_ID);
        conn.pragma_update(None, "application_id", 0).unwrap();
        drop(conn);
        drop(crate::store::Store::open(&ours).unwrap());
        let id: i32 = Connection::open(&ours)
            .unwrap()
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .unwrap();
        assert_eq!(id, APPLICATION_ID);
    }
}
