//! The contract's closed sets as the host names them: the worlds an adapter
//! can target and the actions it can be asked to apply, and the version of
//! the WIT package they belong to, written here once.

/// The WIT package's version, as `wit/adapter.wit` declares it (a test
/// holds the two together). Every world and interface id is built from it.
#[macro_export]
macro_rules! wit_version {
    () => {
        "0.1.0"
    };
}

/// The WIT package's name.
pub const WIT_PACKAGE: &str = "handoff:adapter";
/// The WIT package's version.
pub const WIT_VERSION: &str = wit_version!();

/// The id of one of the package's interfaces (`handoff:adapter/source@0.1.0`).
pub fn interface_id(interface: &str) -> String {
    format!("{WIT_PACKAGE}/{interface}@{WIT_VERSION}")
}

crate::closed_enum! {
    /// The worlds an adapter can target.
    pub enum World {
        Source = concat!("handoff:adapter/source-adapter@", wit_version!()),
        Target = concat!("handoff:adapter/target-adapter@", wit_version!()),
        Both = concat!("handoff:adapter/adapter@", wit_version!()),
    }
}

impl World {
    /// The world's id (its name).
    pub fn id(self) -> &'static str {
        self.name()
    }

    pub fn exports_source(self) -> bool {
        matches!(self, World::Source | World::Both)
    }

    pub fn exports_target(self) -> bool {
        matches!(self, World::Target | World::Both)
    }

    /// The interfaces a component of this world must export.
    pub fn required_exports(self) -> Vec<String> {
        let mut out = Vec::new();
        if self.exports_source() {
            out.push(interface_id("source"));
        }
        if self.exports_target() {
            out.push(interface_id("target"));
        }
        out
    }
}

crate::closed_enum! {
    /// The closed set of actions (the WIT `action` variant): what cannot be
    /// named here cannot be requested.
    pub enum ActionKind {
        SetState = "set-state",
        AttachLink = "attach-link",
        Annotate = "annotate",
        ClearEntry = "clear-entry",
        Publish = "publish",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_one_the_wit_package_declares() {
        let wit = include_str!("../../../wit/adapter.wit");
        let declared = wit
            .lines()
            .find_map(|l| l.trim().strip_prefix("package "))
            .expect("the WIT declares its package");
        assert_eq!(declared, format!("{WIT_PACKAGE}@{WIT_VERSION};"));
        assert_eq!(World::Target.id(), "handoff:adapter/target-adapter@0.1.0");
        assert_eq!(
            World::Both.required_exports(),
            [
                "handoff:adapter/source@0.1.0",
                "handoff:adapter/target@0.1.0"
            ]
        );
    }
}
