//! Declarative conditions (`must-match`, `expect`, `done-when`): filled from
//! the event and context, then tested against what a record shows. Equality
//! for `state`, `revision` and `fields.NAME`, membership for `links`,
//! presence for `exists`, and `applied = true`: the record carries this
//! step's own idempotency key (for actions with no end state of their own,
//! such as publishing a message). Nothing else, on purpose.

use super::template::{self, Scope, TemplateError};
use super::{Condition, Expected};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A condition with every template filled: what a run stores and tests.
pub type Rendered = BTreeMap<String, Expected>;

/// Fill a condition's templates.
pub fn render(c: &Condition, scope: Scope<'_>, place: &str) -> Result<Rendered, TemplateError> {
    c.iter()
        .map(|(path, expected)| {
            let value = match expected {
                Expected::Bool(b) => Expected::Bool(*b),
                Expected::Text(t) => {
                    Expected::Text(template::render(t, scope, &format!("{place}.{path}"))?)
                }
            };
            Ok((path.clone(), value))
        })
        .collect()
}

/// What a record shows, whichever call read it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub exists: bool,
    pub state: String,
    pub revision: Option<String>,
    pub fields: BTreeMap<String, String>,
    pub links: Vec<String>,
    /// Idempotency keys the record says it has applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_keys: Vec<String>,
}

impl From<&crate::sandbox::Observed> for View {
    /// What a target record shows.
    fn from(o: &crate::sandbox::Observed) -> View {
        View {
            exists: o.exists,
            state: o.state.clone(),
            revision: o.revision.clone(),
            fields: o.fields.iter().cloned().collect(),
            links: o.links.clone(),
            applied_keys: o.applied_keys.clone(),
        }
    }
}

impl From<&crate::sandbox::Decision> for View {
    /// A decision as the source holds it.
    fn from(d: &crate::sandbox::Decision) -> View {
        View {
            exists: true,
            state: d.state.clone(),
            revision: d.revision.clone(),
            fields: d.fields.iter().cloned().collect(),
            links: d.links.clone(),
            applied_keys: Vec::new(),
        }
    }
}

/// The first part of a condition that does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    pub path: String,
    pub expected: String,
    pub found: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is {}, expected {}",
            self.path, self.found, self.expected
        )
    }
}

fn shown(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{v:?}"),
        None => "absent".into(),
    }
}

/// Whether every part of `condition` holds for `view`; the first part that
/// does not, otherwise. A record that does not exist fails every part but
/// `exists = false`. `key` is the step's idempotency key (for `applied`).
pub fn check(condition: &Rendered, view: &View, key: Option<&str>) -> Result<(), Mismatch> {
    // `exists` first: for a missing record it is the one worth reporting.
    let mut parts: Vec<_> = condition.iter().collect();
    parts.sort_by_key(|(path, _)| path.as_str() != "exists");
    for (path, expected) in parts {
        let mismatch = |expected: String, found: String| Mismatch {
            path: path.clone(),
            expected,
            found,
        };
        match (path.as_str(), expected) {
            ("exists", Expected::Bool(want)) => {
                if view.exists != *want {
                    return Err(mismatch(want.to_string(), view.exists.to_string()));
                }
            }
            ("applied", Expected::Bool(want)) => {
                let applied = key.is_some_and(|k| view.applied_keys.iter().any(|a| a == k));
                if applied != *want {
                    return Err(mismatch(
                        format!("{want} (this step's key on the record)"),
                        applied.to_string(),
                    ));
                }
            }
            (_, Expected::Bool(_)) | ("exists" | "applied", _) => {
                // Policy parsing refuses these; a stored plan cannot hold them.
                return Err(mismatch(
                    format!("{expected:?}"),
                    "a malformed condition".into(),
                ));
            }
            (_, Expected::Text(want)) => {
                let found: Option<&str> = if !view.exists {
                    None
                } else if path == "state" {
                    Some(view.state.as_str())
                } else if path == "revision" {
                    view.revision.as_deref()
                } else if path == "links" {
                    if view.links.iter().any(|l| l == want) {
                        continue;
                    }
                    return Err(mismatch(
                        format!("to contain {want:?}"),
                        format!("{:?}", view.links),
                    ));
                } else {
                    let name = path.strip_prefix("fields.").unwrap_or(path);
                    view.fields.get(name).map(String::as_str)
                };
                if found != Some(want.as_str()) {
                    let found = if view.exists {
                        shown(found)
                    } else {
                        "absent (no such record)".into()
                    };
                    return Err(mismatch(format!("{want:?}"), found));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(parts: &[(&str, Expected)]) -> Rendered {
        parts
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn text(s: &str) -> Expected {
        Expected::Text(s.into())
    }

    fn review() -> View {
        View {
            exists: true,
            state: "accepted".into(),
            revision: Some("7".into()),
            fields: [("review_version".to_string(), "3".to_string())].into(),
            links: vec!["https://a/1".into()],
            applied_keys: vec![],
        }
    }

    #[test]
    fn equality_membership_and_existence() {
        let c = cond(&[
            ("state", text("accepted")),
            ("fields.review_version", text("3")),
            ("links", text("https://a/1")),
            ("exists", Expected::Bool(true)),
        ]);
        assert_eq!(check(&c, &review(), None), Ok(()));
        let c = cond(&[("fields.review_version", text("4"))]);
        let m = check(&c, &review(), None).unwrap_err();
        assert_eq!(
            m.to_string(),
            "fields.review_version is \"3\", expected \"4\""
        );
        let c = cond(&[("links", text("https://b"))]);
        assert!(check(&c, &review(), None).is_err());
    }

    #[test]
    fn applied_means_this_steps_key_is_on_the_record() {
        let c = cond(&[("applied", Expected::Bool(true))]);
        let mut v = review();
        assert!(check(&c, &v, Some("k1")).is_err());
        v.applied_keys = vec!["k0".into(), "k1".into()];
        assert_eq!(check(&c, &v, Some("k1")), Ok(()));
        assert!(check(&c, &v, Some("k2")).is_err());
    }

    #[test]
    fn a_missing_record_reports_existence_first() {
        let c = cond(&[("state", text("closed")), ("exists", Expected::Bool(true))]);
        let m = check(&c, &View::default(), None).unwrap_err();
        assert_eq!(m.path, "exists");
        let c = cond(&[("exists", Expected::Bool(false))]);
        assert_eq!(check(&c, &View::default(), None), Ok(()));
        let c = cond(&[("state", text("cleared"))]);
        assert_eq!(
            check(&c, &View::default(), None).unwrap_err().found,
            "absent (no such record)"
        );
    }

    #[test]
    fn rendering_fills_templates_and_names_the_place_when_it_cannot() {
        let event = serde_json::json!({"data": {"v": "3"}});
        let context = serde_json::json!({});
        let scope = Scope {
            event: &event,
            context: &context,
        };
        let c: Condition = [("fields.v".to_string(), text("{{event.data.v}}"))].into();
        assert_eq!(render(&c, scope, "x").unwrap()["fields.v"], text("3"));
        let c: Condition = [("state".to_string(), text("{{context.nope}}"))].into();
        let err = render(&c, scope, "step a done-when").unwrap_err();
        assert!(err.to_string().contains("step a done-when.state"), "{err}");
    }
}
