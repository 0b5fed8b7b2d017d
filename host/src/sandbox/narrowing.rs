//! An operator's narrowing of one instance: fewer actions (`actions`) in
//! its `[adapters.X]`, and each surface's own narrowing (`read-only`
//! directories, fewer `http-methods`, ...). Several instances of one
//! approved package (a record store serving as decision source and as
//! target) then each get only what their part needs. Applied after declared
//! ∩ approved ∩ ceiling: it only takes away, and naming an action,
//! directory or method the grant does not hold is refused, since a misspelt
//! name would quietly narrow nothing.

use super::binding::AdapterInstance;
use super::manifest::Grants;
use crate::model::ActionKind;

/// Narrow an effective grant to what the instance's binding allows.
pub fn narrow(grants: &mut Grants, instance: &AdapterInstance) -> Result<(), String> {
    if let Some(actions) = &instance.actions {
        if let Some(extra) = actions.iter().find(|a| !grants.actions.contains(a)) {
            let held: Vec<&str> = grants.actions.iter().map(|a| a.name()).collect();
            return Err(format!(
                "actions: {extra} is not among the actions its grant holds ({}); an instance can \
                 only narrow its grant",
                if held.is_empty() {
                    "none".into()
                } else {
                    held.join(", ")
                }
            ));
        }
        grants.actions = actions.clone();
    }
    grants.capabilities.narrow(&instance.surfaces)
}

/// Narrow a grant to reading, for a shadow run: no action at all, so
/// `apply` is refused before it reaches the guest, and each surface that
/// has a reading form narrowed to it (directories and S3 read-only, HTTP
/// GET and HEAD only).
pub fn to_reading(grants: &mut Grants) {
    grants.actions.clear();
    grants.capabilities.read_only();
}

/// Whether the grant lets the instance apply `action`.
pub fn allows(grants: &Grants, action: ActionKind) -> bool {
    grants.actions.contains(&action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::World;
    use crate::sandbox::manifest::Manifest;
    use crate::sandbox::surfaces::files::FileMode;
    use std::path::Path;

    fn grants() -> Grants {
        let text = format!(
            "[adapter]\nname = \"records\"\nversion = \"0.1.0\"\n\
             world = \"{}\"\n\
             actions = [\"set-state\", \"publish\"]\n\
             [[capabilities.files]]\nname = \"records\"\nmode = \"read-write\"\n",
            World::Target.id()
        );
        Manifest::parse(&text, Path::new("adapter.toml"))
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
        i.surfaces.files.read_only = ["records".to_string()].into();
        narrow(&mut g, &i).unwrap();
        assert!(allows(&g, ActionKind::Publish) && !allows(&g, ActionKind::SetState));
        assert_eq!(g.capabilities.files["records"], FileMode::ReadOnly);

        let mut g = grants();
        narrow(&mut g, &instance()).unwrap();
        assert_eq!(g, grants(), "no narrowing named: the grant as it is");
    }

    #[test]
    fn a_shadow_grant_has_no_action_and_reads_only() {
        let mut g = grants();
        to_reading(&mut g);
        assert!(g.actions.is_empty());
        assert!(!allows(&g, ActionKind::Publish) && !allows(&g, ActionKind::SetState));
        assert_eq!(g.capabilities.files["records"], FileMode::ReadOnly);
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
        i.surfaces.http.http_methods = Some(["GET".to_string()].into());
        let err = narrow(&mut grants(), &i).unwrap_err();
        assert!(
            err.starts_with("http-methods: GET is not a method"),
            "{err}"
        );
    }
}
