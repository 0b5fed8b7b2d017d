//! Text people write and others read at a terminal (a manifest a reviewer
//! inspects, a policy, a resolution's note): what counts as plain text.

/// The first control character in `text`. With `lines`, line breaks (a
/// file's or a form's: `\n`, `\r\n`) and tabs are text too.
pub fn control_character(text: &str, lines: bool) -> Option<char> {
    text.chars()
        .find(|&c| c.is_control() && !(lines && matches!(c, '\n' | '\r' | '\t')))
}

/// The first key or string in `value` holding a control character, with
/// the dotted path to it. With `lines`, line breaks and tabs are allowed in
/// strings (a message's body), never in keys.
pub fn control_in_toml(value: &toml::Value, at: &str, lines: bool) -> Option<(String, char)> {
    match value {
        toml::Value::String(s) => control_character(s, lines).map(|c| (at.to_string(), c)),
        toml::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| control_in_toml(v, &format!("{at}[{i}]"), lines)),
        toml::Value::Table(table) => table.iter().find_map(|(k, v)| {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            match control_character(k, false) {
                Some(c) => Some((format!("{path:?}"), c)),
                None => control_in_toml(v, &path, lines),
            }
        }),
        _ => None,
    }
}
