//! The registered capability surfaces, each a folder implementing
//! [`Surface`]. Adding a surface is its folder and one line in
//! [`registered!`]'s list below; everything that deals with capabilities as
//! a whole (a manifest's `[capabilities]`, approvals, the effective grant,
//! import coverage, the reviewer's lines, an instance's bindings, loading,
//! the per-instance gates, the linker) is generated from that list.

pub mod files;
pub mod http;
pub mod limits;
pub mod nats;
pub mod s3;
pub mod smtp;
pub mod sockets;

use super::ceiling::HostCeiling;
use super::decision::DecisionLog;
use super::surface::{Change, HasGate, LoadContext, Surface, SurfaceId};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi::{WasiCtxBuilder, WasiView};
use wasmtime_wasi_http::WasiHttpView;

/// Generates, from the one list of surfaces, every type and loop that
/// spans them all.
macro_rules! registered {
    ($($field:ident: $surface:ty),+ $(,)?) => {
        /// The names of the registered surfaces, in order.
        pub const NAMES: &[&str] = &[$(<$surface as Surface>::ID.name),+];

        /// Declared capabilities, normalized so that they compare and
        /// intersect: one grant per surface.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Capabilities {
            $( #[serde(default)] pub $field: <$surface as Surface>::Grant, )+
        }

        /// `[capabilities]` as written: a list of entries per surface.
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        pub struct RawCapabilities {
            $( #[serde(default)] $field: Vec<<$surface as Surface>::Entry>, )+
        }

        /// Each surface's keys of an instance's `[adapters.X]` table.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Bindings {
            $( pub $field: <$surface as Surface>::Binding, )+
        }

        /// What every instance of the process shares, per surface.
        #[derive(Default)]
        pub struct Shared {
            $( pub $field: Arc<<$surface as Surface>::Shared>, )+
        }

        /// What loading an instance made, per surface.
        pub struct Policies {
            $( pub $field: Arc<<$surface as Surface>::Policy>, )+
        }

        /// One live instance's choke points, one per surface.
        pub struct Gates {
            $( pub $field: <$surface as Surface>::Gate, )+
        }

        /// An instance's state that holds its gates.
        pub trait HasGates {
            fn gates(&mut self) -> &mut Gates;
        }

        $(
            impl<T: HasGates> HasGate<$surface> for T {
                fn gate(&mut self) -> &mut <$surface as Surface>::Gate {
                    &mut self.gates().$field
                }
            }
        )+

        impl RawCapabilities {
            /// Parse every surface's entries; a problem names the entry.
            pub fn parse(self) -> Result<Capabilities, String> {
                Ok(Capabilities {
                    $( $field: <$surface as Surface>::parse(self.$field).map_err(|p| {
                        format!("capabilities.{}{p}", <$surface as Surface>::ID.name)
                    })?, )+
                })
            }
        }

        impl Capabilities {
            /// Every difference between an approval and a declaration.
            pub fn compare(approved: &Capabilities, declared: &Capabilities, out: &mut Vec<Change>) {
                $( <$surface as Surface>::compare(&approved.$field, &declared.$field, out); )+
            }

            /// declared ∩ approved ∩ ceiling, surface by surface.
            pub fn intersect(
                declared: &Capabilities,
                approved: &Capabilities,
                ceiling: &HostCeiling,
            ) -> Capabilities {
                Capabilities {
                    $( $field: <$surface as Surface>::intersect(
                        &declared.$field, &approved.$field, ceiling,
                    ), )+
                }
            }

            /// The surface whose grant covers an import (`package`,
            /// `interface`): its name, and whether anything is granted.
            pub fn covering(&self, package: &str, interface: &str) -> Option<(&'static str, bool, &'static str)> {
                $(
                    if covers(<$surface as Surface>::IMPORTS, package, interface) {
                        return Some((
                            <$surface as Surface>::ID.name,
                            !<$surface as Surface>::is_empty(&self.$field),
                            <$surface as Surface>::UNDECLARED,
                        ));
                    }
                )+
                None
            }

            /// The grant as a reviewer reads it, `surface  what` per line;
            /// a surface with nothing granted says `(none)`.
            pub fn lines(&self, bindings: Option<&Bindings>) -> Vec<(&'static str, Vec<String>)> {
                vec![$(
                    (
                        <$surface as Surface>::ID.name,
                        <$surface as Surface>::lines(&self.$field, bindings.map(|b| &b.$field)),
                    ),
                )+]
            }

            /// What one call may write, per surface whose grant writes.
            pub fn per_call(&self) -> Vec<String> {
                let mut out = Vec::new();
                $(
                    if let Some(most) = <$surface as Surface>::per_call(&self.$field) {
                        out.push(format!("{} {most}", <$surface as Surface>::ID.name));
                    }
                )+
                out
            }

            /// Every surface narrowed to reading (a shadow run's grant).
            pub fn read_only(&mut self) {
                $( <$surface as Surface>::read_only(&mut self.$field); )+
            }

            /// Each surface's narrowing by an instance's bindings.
            pub fn narrow(&mut self, bindings: &Bindings) -> Result<(), String> {
                $( <$surface as Surface>::narrow(&mut self.$field, &bindings.$field)?; )+
                Ok(())
            }

            /// Load every surface's policy for an instance.
            pub fn load(
                &self,
                bindings: &Bindings,
                shared: &Shared,
                cx: &LoadContext<'_>,
            ) -> Result<Policies, String> {
                Ok(Policies {
                    $( $field: Arc::new(<$surface as Surface>::load(
                        &self.$field, &bindings.$field, &shared.$field, cx,
                    )?), )+
                })
            }
        }

        impl Bindings {
            /// Take each surface's keys out of an instance's table (what is
            /// left is not any surface's), relative paths resolved.
            pub fn take(
                table: &mut toml::Table,
                resolve: &dyn Fn(&Path) -> PathBuf,
            ) -> Result<Bindings, String> {
                Ok(Bindings {
                    $( $field: take::<$surface>(table, resolve)?, )+
                })
            }

            /// Every key any surface reads.
            pub fn keys() -> Vec<&'static str> {
                let mut keys = Vec::new();
                $( keys.extend_from_slice(<$surface as Surface>::BINDING_KEYS); )+
                keys
            }
        }

        impl Gates {
            /// A call begins: every gate's per-call bounds start again.
            pub fn begin_call(&mut self) {
                $( <$surface as Surface>::begin_call(&mut self.$field); )+
            }
        }

        /// The surface whose gate stopped a trapped call, and why.
        pub fn stopped_call(trap: &wasmtime::Error) -> Option<(SurfaceId, String)> {
            $(
                if let Some(stopped) = <$surface as Surface>::stopped_call(trap) {
                    return Some(stopped);
                }
            )+
            None
        }

        impl Policies {
            /// An instance's gates.
            pub fn gates(&self, wasi: &mut WasiCtxBuilder, log: &DecisionLog) -> wasmtime::Result<Gates> {
                Ok(Gates {
                    $( $field: <$surface as Surface>::gate(&self.$field, wasi, log)?, )+
                })
            }
        }

        /// Link every surface's interfaces.
        pub fn add_to_linker<T: HasGates + WasiView + WasiHttpView + Send + 'static>(
            linker: &mut Linker<T>,
        ) -> wasmtime::Result<()> {
            $( <$surface as Surface>::add_to_linker(linker)?; )+
            Ok(())
        }
    };
}

registered! {
    http: http::Http,
    files: files::Files,
    sockets: sockets::Sockets,
    nats: nats::Nats,
    smtp: smtp::Smtp,
    s3: s3::S3,
}

/// Whether `imports` (`package/interface` or `package/*`) names this import.
fn covers(imports: &[&str], package: &str, interface: &str) -> bool {
    imports.iter().any(|i| match i.split_once('/') {
        Some((p, "*")) => p == package,
        Some((p, iface)) => p == package && iface == interface,
        None => false,
    })
}

/// One surface's keys of an instance's table, as its binding.
fn take<S: Surface>(
    table: &mut toml::Table,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<S::Binding, String> {
    let mut own = toml::Table::new();
    for key in S::BINDING_KEYS {
        if let Some(value) = table.remove(*key) {
            own.insert((*key).to_string(), value);
        }
    }
    let parse = |table: toml::Table| {
        crate::by_name::from_toml_value::<S::Binding>(toml::Value::Table(table))
    };
    let mut binding = parse(own.clone()).map_err(|e| {
        // Named by the key that does not parse on its own.
        let key = own.iter().find_map(|(key, value)| {
            let alone = toml::Table::from_iter([(key.clone(), value.clone())]);
            parse(alone).is_err().then_some(key.as_str())
        });
        match key {
            Some(key) => format!("{key}: {}", e.message()),
            None => e.message().to_string(),
        }
    })?;
    S::resolve_paths(&mut binding, resolve);
    Ok(binding)
}
