//! The model: the closed sets and shared records every layer speaks of
//! (outcomes, step states and their transitions, follow-up reasons and
//! resolutions, actions and worlds of the contract, capability verdicts,
//! CloudEvents), defined once and imported from here. It depends on no other
//! module of the crate, so the store, the sandbox, the policy and the
//! pipeline can all use it without importing one another.
//!
//! A closed set is declared with [`closed_enum!`]: each variant's name is
//! written once, and `ALL`, `name()`, `parse()`, `Display` and serde all
//! follow from it. The store's SQL `CHECK` lists are tested against these
//! sets (`store::migrations`).

pub mod contract;
pub mod event;
pub mod json;
pub mod notice;
pub mod outcome;
pub mod reason;
pub mod step;
pub mod time;

pub use contract::{ActionKind, WIT_VERSION, World};
pub use event::{CloudEvent, DuplicateOf, EventError};
pub use notice::{NoticeKind, NoticeState};
pub use outcome::Outcome;
pub use reason::{Reason, Resolution, ResolutionVerdict, Verdict};
pub use step::{IllegalTransition, StepEvent, StepState};

/// Declares a closed set: a fieldless enum whose every variant has one name,
/// the one the CLI, the store, the audit chain and JSON use. Generates
/// `ALL` (in declaration order), `name()`, `parse()`, `Display`, `FromStr`
/// and serde (as the name).
#[macro_export]
macro_rules! closed_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every member, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Its one name.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The member with this name.
            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|m| m.name() == text)
            }

            /// Every name, in declaration order, joined with ", ".
            pub fn names() -> String {
                $name::ALL
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<$name, String> {
                $name::parse(text).ok_or_else(|| {
                    format!("{text:?} is not one of: {}", $name::names())
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::closed_enum! {
        enum Colour {
            Red = "red",
            DarkBlue = "dark-blue",
        }
    }

    #[test]
    fn a_closed_set_has_one_name_per_member_everywhere() {
        assert_eq!(Colour::ALL, [Colour::Red, Colour::DarkBlue]);
        assert_eq!(Colour::DarkBlue.name(), "dark-blue");
        assert_eq!(Colour::parse("dark-blue"), Some(Colour::DarkBlue));
        assert_eq!(Colour::parse("DarkBlue"), None);
        assert_eq!(Colour::Red.to_string(), "red");
        assert_eq!(
            serde_json::to_string(&Colour::DarkBlue).unwrap(),
            "\"dark-blue\""
        );
        assert_eq!(
            serde_json::from_str::<Colour>("\"red\"").unwrap(),
            Colour::Red
        );
        let err = serde_json::from_str::<Colour>("\"green\"").unwrap_err();
        assert!(err.to_string().contains("red, dark-blue"), "{err}");
    }
}
