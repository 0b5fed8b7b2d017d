//! Structs read by their members' names only. serde's derived `Deserialize`
//! for a struct also takes an array and fills the fields in order, so
//! `retry = [5, 10, 1000]` in `handoff.toml` would be read as attempts, base
//! delay and maximum delay. That passes over the names `deny_unknown_fields`
//! checks, and leaves whoever reviews the file (a manifest's grants, a
//! policy's steps) to guess which value is which. [`Named`] wraps any
//! deserializer and refuses a struct given by position, at every depth. A
//! value of another kind where a struct belongs is refused as serde refuses
//! it, but naming "a table of named keys" rather than the Rust type
//! (`expected struct RawServe`); so is a plain value ("a whole number from
//! 0 to 65535", not `expected u16`). Everything else passes through
//! unchanged.
//!
//! (The fields of a struct with a `#[serde(flatten)]` field, and an
//! untagged enum's value, are read from serde's buffered copy, not through
//! this wrapper; such values are parsed again on their own, as each sandbox
//! surface does with the keys flattened into an instance's table.)

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};
use std::fmt;

/// What a refusal says; the format's own error adds where (a TOML file's
/// line and column, a JSON path's key).
const BY_POSITION: &str = "values given by position (an array) where named keys belong; name \
                           each value (`key = value`), so that none is read by where it stands";

/// `text` as TOML, read into `T` with every struct by name.
pub fn from_toml<T: DeserializeOwned>(text: &str) -> Result<T, toml::de::Error> {
    T::deserialize(Named(toml::de::Deserializer::parse(text)?))
}

/// A TOML value read into `T` with every struct by name.
pub fn from_toml_value<T: DeserializeOwned>(value: toml::Value) -> Result<T, toml::de::Error> {
    T::deserialize(Named(value))
}

/// A JSON value read into `T` with every struct by name.
pub fn from_json_value<T: DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, serde_json::Error> {
    T::deserialize(Named(value))
}

/// A deserializer whose structs must be given by name.
pub struct Named<D>(pub D);

/// A visitor, or a seed, whose nested values are read through [`Named`].
struct Guard<V> {
    inner: V,
    reads: Reads,
}

/// What a [`Guard`]'s visitor reads, as far as refusals go.
#[derive(Clone, Copy)]
enum Reads {
    /// Anything; refused, if at all, in the visitor's own words.
    Any,
    /// A struct or a map: by name only, and named a table when refused.
    Table,
    /// A plain value, named in these words when refused: serde's own
    /// would be the Rust type's (`expected u32`, `expected struct
    /// RawServe`).
    Words(&'static str),
}

fn guard<V>(inner: V) -> Guard<V> {
    Guard {
        inner,
        reads: Reads::Any,
    }
}

/// A guard on a visitor of a struct or a map.
fn table<V>(inner: V) -> Guard<V> {
    Guard {
        inner,
        reads: Reads::Table,
    }
}

const A_TABLE: &str = "a table of named keys";

impl Reads {
    fn words(self) -> Option<&'static str> {
        match self {
            Reads::Any => None,
            Reads::Table => Some(A_TABLE),
            Reads::Words(words) => Some(words),
        }
    }

    /// `result`, except that serde's "invalid type" or "invalid value"
    /// refusal names what belongs here in words. Any other refusal (a
    /// custom type's own) is kept as it is.
    fn told<T, E: de::Error>(self, result: Result<T, E>, unexpected: Unexpected) -> Result<T, E> {
        let Some(words) = self.words() else {
            return result;
        };
        result.map_err(|e| {
            let said = e.to_string();
            if said.starts_with("invalid type: ") {
                E::invalid_type(unexpected, &words)
            } else if said.starts_with("invalid value: ") {
                E::invalid_value(unexpected, &words)
            } else {
                e
            }
        })
    }
}

macro_rules! forward_plain {
    ($($method:ident => $reads:expr),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.0.$method(Guard { inner: visitor, reads: $reads })
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Named<D> {
    type Error = D::Error;

    forward_plain!(
        deserialize_any => Reads::Any,
        deserialize_bool => Reads::Words("true or false"),
        deserialize_i8 => Reads::Words("a whole number from -128 to 127"),
        deserialize_i16 => Reads::Words("a whole number from -32768 to 32767"),
        deserialize_i32 => Reads::Words("a whole number from -2147483648 to 2147483647"),
        deserialize_i64 => Reads::Words("a whole number"),
        deserialize_i128 => Reads::Words("a whole number"),
        deserialize_u8 => Reads::Words("a whole number from 0 to 255"),
        deserialize_u16 => Reads::Words("a whole number from 0 to 65535"),
        deserialize_u32 => Reads::Words("a whole number from 0 to 4294967295"),
        deserialize_u64 => Reads::Words("a whole number, 0 or more"),
        deserialize_u128 => Reads::Words("a whole number, 0 or more"),
        deserialize_f32 => Reads::Words("a number"),
        deserialize_f64 => Reads::Words("a number"),
        deserialize_char => Reads::Words("one character"),
        deserialize_str => Reads::Any,
        deserialize_string => Reads::Any,
        deserialize_bytes => Reads::Any,
        deserialize_byte_buf => Reads::Any,
        deserialize_option => Reads::Any,
        deserialize_unit => Reads::Any,
        deserialize_seq => Reads::Words("an array"),
        deserialize_identifier => Reads::Any,
        deserialize_ignored_any => Reads::Any,
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, guard(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, guard(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, guard(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, guard(visitor))
    }

    /// A map, or a struct with a flattened field (which serde reads as
    /// a map): by name too.
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(table(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct(name, fields, table(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, guard(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Guard<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Named(d))
    }
}

macro_rules! forward_visits {
    ($($method:ident: $ty:ty => $unexpected:expr),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.reads.told(self.inner.$method(v), $unexpected(v))
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Guard<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visits!(
        visit_bool: bool => Unexpected::Bool,
        visit_i8: i8 => |v| Unexpected::Signed(v as i64),
        visit_i16: i16 => |v| Unexpected::Signed(v as i64),
        visit_i32: i32 => |v| Unexpected::Signed(v as i64),
        visit_i64: i64 => Unexpected::Signed,
        visit_i128: i128 => |_| Unexpected::Other("an integer"),
        visit_u8: u8 => |v| Unexpected::Unsigned(v as u64),
        visit_u16: u16 => |v| Unexpected::Unsigned(v as u64),
        visit_u32: u32 => |v| Unexpected::Unsigned(v as u64),
        visit_u64: u64 => Unexpected::Unsigned,
        visit_u128: u128 => |_| Unexpected::Other("an integer"),
        visit_f32: f32 => |v| Unexpected::Float(v as f64),
        visit_f64: f64 => Unexpected::Float,
        visit_char: char => Unexpected::Char,
        visit_str: &str => Unexpected::Str,
        visit_borrowed_str: &'de str => Unexpected::Str,
        visit_bytes: &[u8] => Unexpected::Bytes,
        visit_borrowed_bytes: &'de [u8] => Unexpected::Bytes,
    );

    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        if matches!(self.reads, Reads::Any) {
            return self.inner.visit_string(v);
        }
        self.reads
            .told(self.inner.visit_str(&v), Unexpected::Str(&v))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<V::Value, E> {
        if matches!(self.reads, Reads::Any) {
            return self.inner.visit_byte_buf(v);
        }
        self.reads
            .told(self.inner.visit_bytes(&v), Unexpected::Bytes(&v))
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.reads.told(self.inner.visit_none(), Unexpected::Option)
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.reads.told(self.inner.visit_unit(), Unexpected::Unit)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(Named(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_newtype_struct(Named(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        if matches!(self.reads, Reads::Table) {
            return Err(de::Error::custom(BY_POSITION));
        }
        // What went wrong inside (an element's own refusal) stands as
        // said: only a plain value's refusal is put in words.
        self.inner.visit_seq(guard(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(guard(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(guard(data))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Guard<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(guard(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Guard<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.inner.next_key_seed(guard(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(guard(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Guard<A> {
    type Error = A::Error;
    type Variant = Guard<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Guard<A::Variant>), A::Error> {
        let (value, variant) = self.inner.variant_seed(guard(seed))?;
        Ok((value, guard(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Guard<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.newtype_variant_seed(guard(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(len, guard(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner.struct_variant(fields, table(visitor))
    }
}

#[cfg(test)]
mod tests;
