//! JSON as it enters from outside (an event, a context, an API body): read
//! as `serde_json` reads it, except that an object naming one member twice
//! is refused. RFC 8259 leaves such an object's meaning to the reader, so a
//! relay, a signer or a person may read `"state": "rejected"` where the last
//! of two would have handoff read `"accepted"`; handoff stops instead of
//! choosing one. A body read as a struct must be an object (serde would
//! take an array by position). Depth and size stay bounded as `serde_json`
//! bounds them (128 levels) and as the caller bounds the bytes.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Parse `bytes` as one JSON value whose objects name each member once. A
/// byte-order mark before it (an editor's, saving a file) is passed over,
/// as RFC 8259 lets a reader do.
pub fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    serde_json::from_slice::<OneReading>(bytes).map(|v| v.0)
}

/// Parse `bytes` as one JSON object (as [`from_slice`] reads it) into `T`.
/// Anything but an object is refused: serde reads a struct from an array
/// too, by position, which would pass over the member names that
/// `deny_unknown_fields` checks.
pub fn object_from_slice<T: de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let value = from_slice(bytes).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err(format!("the body is JSON {}, not an object", kind(&value)));
    }
    crate::by_name::from_json_value(value).map_err(|e| e.to_string())
}

/// What a JSON value is, as a message names it.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value read with every object checked for a member named twice.
struct OneReading(Value);

impl<'de> Deserialize<'de> for OneReading {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Reader)
    }
}

struct Reader;

impl<'de> Visitor<'de> for Reader {
    type Value = OneReading;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<OneReading, E> {
        Ok(OneReading(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<OneReading, E> {
        Ok(OneReading(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<OneReading, E> {
        Ok(OneReading(Value::Number(v.into())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<OneReading, E> {
        Ok(OneReading(
            Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<OneReading, E> {
        Ok(OneReading(Value::String(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<OneReading, E> {
        Ok(OneReading(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<OneReading, E> {
        Ok(OneReading(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneReading, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(OneReading(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(OneReading(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OneReading, A::Error> {
        let mut object = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if object.contains_key(&name) {
                return Err(de::Error::custom(format_args!(
                    "member {:?} is given twice in one object, which could be read either way",
                    crate::kept::render(&name, 64)
                )));
            }
            let OneReading(v) = map.next_value()?;
            object.insert(name, v);
        }
        Ok(OneReading(Value::Object(object)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"a": [1, -2, 3.5, 18446744073709551615, true, null, "x\u00e9"], "b": {"c": {}}}"#,
            "[]",
            "\"s\"",
            "0",
            r#"{"a": {"x": 1}, "b": {"x": 2}}"#,
        ] {
            let ours = from_slice(text.as_bytes()).unwrap();
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn a_member_named_twice_is_refused_at_any_depth_with_where() {
        let e = from_slice(br#"{"state": "rejected", "state": "accepted"}"#).unwrap_err();
        assert!(
            e.to_string().contains("member \"state\" is given twice"),
            "{e}"
        );
        assert_eq!(e.line(), 1, "{e}");
        let e = from_slice(b"{\"data\": [1, {\n\"id\": 1, \"x\": 2, \"id\": 3}]}").unwrap_err();
        assert!(e.to_string().contains("\"id\""), "{e}");
        assert_eq!(e.line(), 2, "{e}");
        let long = "k".repeat(10_000);
        let text = format!(r#"{{"{long}": 1, "{long}": 2}}"#);
        let e = from_slice(text.as_bytes()).unwrap_err().to_string();
        assert!(e.len() < 400 && e.contains("10000 bytes in all"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_before_the_value_is_passed_over_and_nowhere_else() {
        let value = from_slice(b"\xEF\xBB\xBF{\"a\": 1}").unwrap();
        assert_eq!(value["a"], 1);
        assert!(from_slice(b"{\"a\": 1}\xEF\xBB\xBF").is_err());
        assert!(from_slice(b"\xEF\xBB\xBF\xEF\xBB\xBF{}").is_err());
    }

    #[test]
    fn a_struct_is_read_from_an_object_only_never_by_position() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct Body {
            action: String,
            note: Option<String>,
        }
        let body: Body = object_from_slice(br#"{"action": "resume"}"#).unwrap();
        assert_eq!((body.action.as_str(), body.note), ("resume", None));
        // serde_json alone takes the array by position.
        assert!(serde_json::from_slice::<Body>(br#"["resume", "x"]"#).is_ok());
        for (text, says) in [
            (&br#"["resume", "x"]"#[..], "JSON an array, not an object"),
            (b"null", "JSON null, not an object"),
            (br#"{"action": "a", "action": "b"}"#, "given twice"),
            (br#"{"action": "a", "by": "b"}"#, "unknown field `by`"),
        ] {
            let e = object_from_slice::<Body>(text).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn depth_stays_bounded() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = from_slice(deep.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("recursion limit"), "{e}");
    }
}
