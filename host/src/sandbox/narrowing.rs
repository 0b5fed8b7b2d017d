//! An operator's narrowing of one instance: fewer actions (`actions`),
//! granted directories mounted read-only (`read-only`) and fewer HTTP
//! methods on its granted origins (`http-methods`), in its `[adapters.X]`. Several instances of one approved package (a record
//! store serving as decision source and as target) then each get only what
//! their part needs. Applied after declared ∩ approved ∩ ceiling: it only
//! takes away, and naming an action, directory or method the grant does
//! not hold is refused, since a misspelt name would quietly narrow nothing.

use super::manifest::{ActionKind, FileMode, Grants};
use crate::config::AdapterInstance;

/// Narrow an effective grant to what the instance's binding allows.
pub fn narrow(grants: &mut Grants, instance: &AdapterInstance) -> Result<(), String> {
    if let Some(actions) = &instance.actions {
        if let Some(extra) = actions.iter().find(|a| !grants.actions.contains(a)) {
            return Err(format!(
                "actions: {} is not among the actions its grant holds ({}); an instance can \
                 only narrow its grant",
                extra.name(),
                names(grants.actions.iter().map(|a| a.name()))
            ));
        }
        grants.actions = actions.clone();
    }
    for name in &instance.read_only {
        let Some(mode) = grants.capabilities.files.get_mut(name) else {
            return Err(format!(
                "read-only: {name:?} is not a directory its grant holds ({})",
                names(grants.capabilities.files.keys().map(String::as_str))
            ));
        };
        *mode = FileMode::ReadOnly;
    }
    if let Some(methods) = &instance.http_methods {
        let granted: std::collections::BTreeSet<&String> = grants
            .capabilities
            .http
            .values()
            .flat_map(|g| &g.methods)
            .collect();
        if let Some(extra) = methods.iter().find(|m| !granted.contains(m)) {
            return Err(format!(
                "http-methods: {extra} is not a method its grant holds on any origin ({}); \
                 write methods in upper case",
                names(granted.iter().map(|m| m.as_str()))
            ));
        }
        for grant in grants.capabilities.http.values_mut() {
            grant.methods.retain(|m| methods.contains(m));
        }
    }
    Ok(())
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Whether the grant lets the instance apply `action`.
pub fn allows(grants: &Grants, action: ActionKind) -> bool {
    grants.actions.contains(&action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::manifest::Manifest;
    use std::path::Path;

    fn grants() -> Grants {
        let text = "[adapter]\nname = \"records\"\nversion = \"0.1.0\"\n\
                    world = \"handoff:adapter/target-adapter@0.1.0\"\n\
                    actions = [\"set-state\", \"publish\"]\n\
                    [[capabilities.files]]\nname = \"records\"\nmode = \"read-write\"\n";
        Manifest::parse(text, Path::new("adapter.toml"))
            .unwrap()
            .grants
    }

    fn instance() -> AdapterInstance {
        AdapterInstance::new("governance", Path::new("pkg"))
    }

    #[test]
    fn an_instance_keeps_only_the_actions_and_modes_it_names() {
        let mut g = grants();
        let mut i = instance();
        i.actions = Some([ActionKind::Publish].into());
        i.read_only = ["records".to_string()].into();
        narrow(&mut g, &i).unwrap();
        assert!(allows(&g, ActionKind::Publish) && !allows(&g, ActionKind::SetState));
        assert_eq!(g.capabilities.files["records"], FileMode::ReadOnly);

        let mut g = grants();
        narrow(&mut g, &instance()).unwrap();
        assert_eq!(g, grants(), "no narrowing named: the grant as it is");
    }

    #[test]
    fn naming_what_the_grant_does_not_hold_is_refused() {
        let mut i = instance();
        i.actions = Some([ActionKind::ClearEntry].into());
        let err = narrow(&mut grants(), &i).unwrap_err();
        assert_eq!(
            err,
            "actions: clear-entry is not among the actions its grant holds (set-state, publish); \
             an instance can only narrow its grant"
        );
        let mut i = instance();
        i.http_methods = Some(["GET".to_string()].into());
        let err = narrow(&mut grants(), &i).unwrap_err();
        assert!(
            err.starts_with("http-methods: GET is not a method"),
            "{err}"
        );
        let mut i = instance();
        i.read_only = ["evidence".to_string()].into();
        let err = narrow(&mut grants(), &i).unwrap_err();
        assert_eq!(
            err,
            "read-only: \"evidence\" is not a directory its grant holds (records)"
        );
    }
}
