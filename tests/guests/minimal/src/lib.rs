//! A target adapter with no capabilities at all: `observe` reports the
//! record as open, `apply` reports the requested state and echoes the key.

use handoff_sdk::{Action, AdapterError, Observed, RecordRef, Target, export};

struct Minimal;

impl Target for Minimal {
    fn observe(record: RecordRef) -> Result<Observed, AdapterError> {
        Ok(Observed {
            exists: true,
            state: "open".into(),
            revision: Some(record.id),
            fields: Vec::new(),
            links: Vec::new(),
            applied_keys: Vec::new(),
        })
    }

    fn apply(record: RecordRef, action: Action, key: String) -> Result<Observed, AdapterError> {
        let state = match action {
            Action::SetState(s) => s,
            other => handoff_sdk::action_name(&other).to_string(),
        };
        Ok(Observed {
            exists: true,
            state,
            revision: Some(record.id),
            fields: Vec::new(),
            links: Vec::new(),
            applied_keys: vec![key],
        })
    }
}

export!(Minimal: target);
