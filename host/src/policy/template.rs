//! Templates in policy values: `{{event.data.release_id}}`, `{{event.id}}`,
//! `{{context.milestone_id}}`. Nothing else: no expressions, no defaults. A
//! reference to a missing value is an error naming the template and the
//! place in the policy, never an empty string.

use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TemplateError {
    #[error("{place}: unclosed `{{{{` in {text:?}")]
    Unclosed { place: String, text: String },
    #[error("{place}: `{{{{{reference}}}}}` must start with event. or context.")]
    UnknownRoot { place: String, reference: String },
    #[error("{place}: `{{{{{reference}}}}}` has no value in the {root}")]
    Missing {
        place: String,
        reference: String,
        root: &'static str,
    },
    #[error("{place}: `{{{{{reference}}}}}` is not a single value (an object or a list)")]
    NotScalar { place: String, reference: String },
    #[error("{place}: {problem}")]
    BadValue { place: String, problem: String },
    #[error(
        "{place}: filled in, it is over {MAX_FILLED_BYTES} bytes (a policy's value names \
         things and links to them; it does not carry them)"
    )]
    TooLarge { place: String },
}

/// The most a filled template may hold: a value from the event, however
/// large, or one used many times, cannot grow a message or a record past it.
pub const MAX_FILLED_BYTES: usize = 64 * 1024;

/// What templates are filled from.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The whole CloudEvent (id, source, type, subject, time, data).
    pub event: &'a Value,
    /// The linked workflow context.
    pub context: &'a Value,
}

/// The references a text makes, checked for syntax only.
pub fn references(text: &str, place: &str) -> Result<Vec<String>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| TemplateError::Unclosed {
            place: place.to_string(),
            text: text.to_string(),
        })?;
        let reference = after[..end].trim().to_string();
        if !(reference.starts_with("event.") || reference.starts_with("context.")) {
            return Err(TemplateError::UnknownRoot {
                place: place.to_string(),
                reference,
            });
        }
        out.push(reference);
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// Fill every reference in `text`.
pub fn render(text: &str, scope: Scope<'_>, place: &str) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| TemplateError::Unclosed {
            place: place.to_string(),
            text: text.to_string(),
        })?;
        let reference = after[..end].trim();
        out.push_str(&lookup(reference, scope, place)?);
        if out.len() > MAX_FILLED_BYTES {
            return Err(TemplateError::TooLarge {
                place: place.to_string(),
            });
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if out.len() > MAX_FILLED_BYTES {
        return Err(TemplateError::TooLarge {
            place: place.to_string(),
        });
    }
    Ok(out)
}

fn lookup(reference: &str, scope: Scope<'_>, place: &str) -> Result<String, TemplateError> {
    let (root, path, value) = if let Some(path) = reference.strip_prefix("event.") {
        ("event", path, scope.event)
    } else if let Some(path) = reference.strip_prefix("context.") {
        ("context", path, scope.context)
    } else {
        return Err(TemplateError::UnknownRoot {
            place: place.to_string(),
            reference: reference.to_string(),
        });
    };
    let missing = || TemplateError::Missing {
        place: place.to_string(),
        reference: reference.to_string(),
        root,
    };
    let mut current = value;
    for key in path.split('.') {
        current = current.get(key).ok_or_else(missing)?;
    }
    match current {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err(missing()),
        Value::Array(_) | Value::Object(_) => Err(TemplateError::NotScalar {
            place: place.to_string(),
            reference: reference.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> (Value, Value) {
        (
            json!({ "id": "evt-1", "data": { "release_id": "R-42", "review_version": 3, "nested": { "a": [1] } } }),
            json!({ "milestone_id": "M-7" }),
        )
    }

    #[test]
    fn references_fill_from_the_event_and_the_context() {
        let (event, context) = scope();
        let s = Scope {
            event: &event,
            context: &context,
        };
        let text = "Release {{event.data.release_id}} v{{ event.data.review_version }} at {{context.milestone_id}}";
        assert_eq!(render(text, s, "step x").unwrap(), "Release R-42 v3 at M-7");
        assert_eq!(render("plain", s, "p").unwrap(), "plain");
    }

    #[test]
    fn a_filled_template_is_bounded_however_often_a_value_is_used() {
        let event = json!({ "data": { "big": "x".repeat(40 * 1024) } });
        let context = json!({});
        let s = Scope {
            event: &event,
            context: &context,
        };
        assert_eq!(
            render("{{event.data.big}}", s, "p").unwrap().len(),
            40 * 1024
        );
        let err = render(
            "{{event.data.big}} {{event.data.big}}",
            s,
            "step notify subject",
        )
        .unwrap_err();
        assert_eq!(
            err,
            TemplateError::TooLarge {
                place: "step notify subject".into()
            }
        );
        assert!(err.to_string().contains("over 65536 bytes"), "{err}");
    }

    #[test]
    fn a_missing_or_structured_value_is_an_error_naming_the_place() {
        let (event, context) = scope();
        let s = Scope {
            event: &event,
            context: &context,
        };
        let err = render("{{event.data.absent}}", s, "step close-checklist record.id").unwrap_err();
        assert_eq!(
            err.to_string(),
            "step close-checklist record.id: `{{event.data.absent}}` has no value in the event"
        );
        assert!(matches!(
            render("{{event.data.nested}}", s, "p"),
            Err(TemplateError::NotScalar { .. })
        ));
        assert!(matches!(
            render("{{env.HOME}}", s, "p"),
            Err(TemplateError::UnknownRoot { .. })
        ));
        assert!(matches!(
            render("{{event.id", s, "p"),
            Err(TemplateError::Unclosed { .. })
        ));
    }
}
