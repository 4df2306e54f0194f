//! A serde `Deserializer` over a [`Node`]: every error carries the mark and
//! the dotted path of the innermost node that failed (a visitor's own
//! `de::Error::custom` gets them as it travels out through that node).

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};

use super::scalar::{Resolved, resolve};
use super::{Content, Error, Node, Style};

/// Deserializes `T` from `node`; errors name the node's position and its
/// path below `node` (`steps[0].with.port`).
///
/// Plain scalars are read per what `T` asks for: text readers
/// (`String`, `&str`, map keys, identifiers) get the text as written;
/// anything else gets the YAML 1.2 core schema value.
///
/// ```
/// use rebound_init::spec::yaml::{Document, from_node};
/// use std::collections::BTreeMap;
/// let doc = Document::parse("true: 1e3\n123: ~\n")?;
/// let map: BTreeMap<String, Option<f64>> = from_node(doc.root().unwrap())?;
/// assert_eq!(map["true"], Some(1000.0));
/// assert_eq!(map["123"], None);
/// # Ok::<(), rebound_init::spec::yaml::Error>(())
/// ```
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &'de Node) -> Result<T, Error> {
    T::deserialize(NodeDeserializer::new(node))
}

/// Where a node is, below the node deserialization started from.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    Root,
    Seq {
        parent: &'a Path<'a>,
        index: usize,
    },
    Map {
        parent: &'a Path<'a>,
        key: &'a str,
    },
    Unknown {
        parent: &'a Path<'a>,
    },
    /// A fixed prefix (`runtimes.web.start`) given by the caller.
    Named(&'a str),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Parent<'a>(&'a Path<'a>);
        impl fmt::Display for Parent<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    Path::Root | Path::Named("") => Ok(()),
                    path => write!(f, "{path}."),
                }
            }
        }
        match self {
            Path::Root => f.write_str("."),
            Path::Seq { parent, index } => write!(f, "{parent}[{index}]"),
            Path::Map { parent, key } => write!(f, "{}{key}", Parent(parent)),
            Path::Unknown { parent } => write!(f, "{}?", Parent(parent)),
            Path::Named("") => f.write_str("."),
            Path::Named(name) => f.write_str(name),
        }
    }
}

/// The deserializer of one node at one path.
#[derive(Clone, Copy)]
pub(crate) struct NodeDeserializer<'de, 'p> {
    node: &'de Node,
    path: Path<'p>,
}

impl<'de> NodeDeserializer<'de, 'static> {
    pub(crate) fn new(node: &'de Node) -> Self {
        NodeDeserializer {
            node,
            path: Path::Root,
        }
    }
}

impl<'de, 'p> NodeDeserializer<'de, 'p> {
    /// A deserializer whose errors name paths below `prefix` (empty for
    /// the root).
    pub(crate) fn at(node: &'de Node, prefix: &'p str) -> Self {
        NodeDeserializer {
            node,
            path: Path::Named(prefix),
        }
    }

    fn fix<T>(&self, r: Result<T, Error>) -> Result<T, Error> {
        r.map_err(|e| e.fix(self.node.mark, &self.path))
    }

    /// How the node is named in an "invalid type" message.
    fn unexpected(&self) -> Unexpected<'de> {
        match &self.node.content {
            Content::Seq(_) => Unexpected::Seq,
            Content::Map(_) => Unexpected::Map,
            Content::Scalar(text, Style::Plain) => match resolve(text) {
                Resolved::Null => Unexpected::Unit,
                Resolved::Bool(b) => Unexpected::Bool(b),
                Resolved::U64(v) => Unexpected::Unsigned(v),
                Resolved::I64(v) => Unexpected::Signed(v),
                Resolved::U128(_) | Resolved::I128(_) => Unexpected::Other("integer"),
                Resolved::F64(v) => Unexpected::Float(v),
                Resolved::Str(s) => Unexpected::Str(s),
            },
            Content::Scalar(text, _) => Unexpected::Str(text),
        }
    }

    fn invalid_type<T>(&self, exp: &dyn de::Expected) -> Result<T, Error> {
        Err(de::Error::invalid_type(self.unexpected(), exp))
    }

    /// An empty plain scalar, which a collection reader takes as empty
    /// (`steps:` with nothing after it).
    fn is_empty_plain(&self) -> bool {
        matches!(&self.node.content, Content::Scalar(t, Style::Plain) if t.is_empty())
    }

    fn visit_seq<V: Visitor<'de>>(
        &self,
        items: &'de [Node],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut access = SeqAccess {
            items: items.iter(),
            index: 0,
            path: &self.path,
        };
        let value = visitor.visit_seq(&mut access)?;
        if access.items.len() > 0 {
            return Err(de::Error::invalid_length(
                items.len(),
                &"fewer elements in the sequence",
            ));
        }
        Ok(value)
    }

    fn visit_map<V: Visitor<'de>>(
        &self,
        entries: &'de [(Node, Node)],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut access = MapAccess {
            entries: entries.iter(),
            value: None,
            path: &self.path,
        };
        visitor.visit_map(&mut access)
    }
}

macro_rules! forward_to_any {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.deserialize_any(visitor)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = match &self.node.content {
            Content::Scalar(text, Style::Plain) => match resolve(text) {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::U64(v) => visitor.visit_u64(v),
                Resolved::I64(v) => visitor.visit_i64(v),
                Resolved::U128(v) => visitor.visit_u128(v),
                Resolved::I128(v) => visitor.visit_i128(v),
                Resolved::F64(v) => visitor.visit_f64(v),
                Resolved::Str(s) => visitor.visit_borrowed_str(s),
            },
            Content::Scalar(text, _) => visitor.visit_borrowed_str(text),
            Content::Seq(items) => self.visit_seq(items, visitor),
            Content::Map(entries) => self.visit_map(entries, visitor),
        };
        self.fix(r)
    }

    forward_to_any! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = match &self.node.content {
            Content::Scalar(text, _) => visitor.visit_borrowed_str(text),
            _ => self.invalid_type(&visitor),
        };
        self.fix(r)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        };
        self.fix(r)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = if self.node.is_null() {
            visitor.visit_unit()
        } else {
            self.invalid_type(&visitor)
        };
        self.fix(r)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let r = visitor.visit_newtype_struct(self);
        self.fix(r)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = match &self.node.content {
            Content::Seq(items) => self.visit_seq(items, visitor),
            _ if self.is_empty_plain() => self.visit_seq(&[], visitor),
            _ => self.invalid_type(&visitor),
        };
        self.fix(r)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = match &self.node.content {
            Content::Map(entries) => self.visit_map(entries, visitor),
            _ if self.is_empty_plain() => self.visit_map(&[], visitor),
            _ => self.invalid_type(&visitor),
        };
        self.fix(r)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    /// A unit variant written as its name (`on_failure: warn`), or a
    /// variant with content as a one-entry mapping (`{ name: content }`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let r = match &self.node.content {
            Content::Scalar(text, _) => visitor.visit_enum(text.as_str().into_deserializer()),
            Content::Map(entries) if entries.len() == 1 => visitor.visit_enum(EnumAccess {
                entry: &entries[0],
                path: &self.path,
            }),
            _ => self.invalid_type(&visitor),
        };
        self.fix(r)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct SeqAccess<'de, 'p> {
    items: std::slice::Iter<'de, Node>,
    index: usize,
    path: &'p Path<'p>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'de, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = Path::Seq {
            parent: self.path,
            index: self.index,
        };
        self.index += 1;
        seed.deserialize(NodeDeserializer { node, path }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAccess<'de, 'p> {
    entries: std::slice::Iter<'de, (Node, Node)>,
    value: Option<&'de (Node, Node)>,
    path: &'p Path<'p>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'de, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        // A key is read at the mapping's path and its own mark.
        seed.deserialize(NodeDeserializer {
            node: &entry.0,
            path: *self.path,
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((key, value)) = self.value.take() else {
            return Err(de::Error::custom("a mapping value was read before its key"));
        };
        let path = match key.as_str() {
            Some(key) => Path::Map {
                parent: self.path,
                key,
            },
            None => Path::Unknown { parent: self.path },
        };
        seed.deserialize(NodeDeserializer { node: value, path })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct EnumAccess<'de, 'p> {
    entry: &'de (Node, Node),
    path: &'p Path<'p>,
}

impl<'de, 'p> de::EnumAccess<'de> for EnumAccess<'de, 'p> {
    type Error = Error;
    type Variant = NodeDeserializer<'de, 'p>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Error> {
        let (key, value) = self.entry;
        let variant = seed.deserialize(NodeDeserializer {
            node: key,
            path: *self.path,
        })?;
        // The content is read at its own node; its path is the variant's.
        Ok((
            variant,
            NodeDeserializer {
                node: value,
                path: *self.path,
            },
        ))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDeserializer<'de, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}
