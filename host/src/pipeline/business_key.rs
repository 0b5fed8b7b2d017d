//! A decision's business key: the policy's id and the parts its
//! `business-key` names, filled from the event, encoded so that two
//! different part lists never share a key. A decision delivered again under
//! another event id carries the same key, and intake knows it.

use crate::policy::Policy;
use crate::policy::template::{Scope, TemplateError};

/// The business key of a decision under `policy`, or none when the policy
/// names no parts.
pub fn business_key(policy: &Policy, scope: Scope<'_>) -> Result<Option<String>, TemplateError> {
    if policy.source.business_key.is_empty() {
        return Ok(None);
    }
    let parts = policy
        .source
        .business_key
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let place = format!("source.business-key[{i}]");
            let part = crate::policy::template::render(t, scope, &place)?;
            crate::policy::name(&part)
                .map_err(|problem| TemplateError::BadValue { place, problem })?;
            Ok(part)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(encode_business_key(&policy.id, &parts)))
}

/// `ID:PART/PART/...`, with `\` escaping a `\` or `:` in the id and a `\`
/// or `/` in a part, so that two different part lists never share a key
/// (`RV-77/1` + `2` is `RV-77\/1/2`, `RV-77` + `1/2` is `RV-77/1\/2`). A key
/// without any of those characters reads as it always did, so keys stored
/// before the escaping still match their decisions.
pub fn encode_business_key(policy_id: &str, parts: &[String]) -> String {
    fn escaped(out: &mut String, text: &str, special: char) {
        for c in text.chars() {
            if c == '\\' || c == special {
                out.push('\\');
            }
            out.push(c);
        }
    }
    let mut key = String::with_capacity(
        policy_id.len() + 1 + parts.iter().map(String::len).sum::<usize>() + parts.len(),
    );
    escaped(&mut key, policy_id, ':');
    key.push(':');
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push('/');
        }
        escaped(&mut key, part, '/');
    }
    key
}

#[cfg(test)]
mod tests {
    use super::encode_business_key;
    use proptest::prelude::*;

    /// Read a key back into its id and parts (the test's proof that the
    /// encoding loses nothing, so no two inputs share a key).
    fn decode(key: &str) -> (String, Vec<String>) {
        let (mut id, mut parts, mut part) = (String::new(), Vec::new(), String::new());
        let mut in_id = true;
        let mut chars = key.chars();
        while let Some(c) = chars.next() {
            let target = if in_id { &mut id } else { &mut part };
            match c {
                '\\' => target.push(chars.next().expect("an escape is followed")),
                ':' if in_id => in_id = false,
                '/' if !in_id => parts.push(std::mem::take(&mut part)),
                c => target.push(c),
            }
        }
        parts.push(part);
        (id, parts)
    }

    #[test]
    fn parts_holding_the_separator_no_longer_collide() {
        let a = encode_business_key("p", &["RV-77/1".into(), "2".into()]);
        let b = encode_business_key("p", &["RV-77".into(), "1/2".into()]);
        assert_ne!(a, b);
        assert_eq!(a, r"p:RV-77\/1/2");
        // A key of plain parts is what it was before the escaping.
        assert_eq!(
            encode_business_key("p", &["RV-77".into(), "3".into()]),
            "p:RV-77/3"
        );
        let c = encode_business_key("a:b", &["c".into()]);
        let d = encode_business_key("a", &["b:c".into()]);
        assert_ne!(c, d);
    }

    proptest! {
        #[test]
        fn distinct_part_lists_never_share_a_key(
            id in "[a-z:/\\\\]{0,6}",
            parts in proptest::collection::vec("[a-z0-9:/\\\\]{0,6}", 1..5),
            other in proptest::collection::vec("[a-z0-9:/\\\\]{0,6}", 1..5),
        ) {
            let key = encode_business_key(&id, &parts);
            prop_assert_eq!(decode(&key), (id.clone(), parts.clone()));
            if parts != other {
                prop_assert_ne!(key, encode_business_key(&id, &other));
            }
        }
    }
}
