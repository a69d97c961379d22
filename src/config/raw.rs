//! The profile exactly as written: serde structs whose leaves keep their
//! source position, so validation can point at the offending node.
//!
//! Leaves are mostly strings: keywords, addresses and durations are parsed by
//! the validator, which lets it report every bad value in one pass instead of
//! stopping at the first one as serde would.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

pub(super) type S<T> = Spanned<T>;
pub(super) type SpannedList<T> = Option<S<Vec<S<T>>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    pub realm: Option<S<String>>,
    pub listeners: SpannedList<RawListener>,
    pub users: SpannedList<RawUser>,
    pub trunks: SpannedList<RawTrunk>,
    pub routes: SpannedList<RawRoute>,
    pub timers: Option<S<RawTimers>>,
    pub limits: Option<S<RawLimits>>,
    pub registrar: Option<S<RawRegistrar>>,
    pub media: Option<S<RawMedia>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMedia {
    pub address: Option<S<String>>,
    pub advertised: Option<S<String>>,
    pub rtp_ports: Option<S<String>>,
    pub codecs: SpannedList<String>,
    pub ptime: Option<S<String>>,
    pub rtp_timeout: Option<S<String>>,
    pub io: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListener {
    pub transport: Option<S<String>>,
    pub address: Option<S<String>>,
    pub advertised: Option<S<String>>,
    pub cert: Option<S<String>>,
    pub key: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub extension: Option<S<String>>,
    pub password: Option<S<String>>,
    pub ha1: Option<S<RawHa1>>,
    pub name: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHa1 {
    pub md5: Option<S<String>>,
    pub sha256: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrunk {
    pub name: Option<S<String>>,
    pub inbound: Option<S<RawInbound>>,
    pub outbound: Option<S<RawOutbound>>,
    pub max_calls: Option<S<u32>>,
    pub max_cps: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInbound {
    pub allow: SpannedList<String>,
    pub digest: Option<S<RawCredentials>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutbound {
    pub host: Option<S<String>>,
    pub port: Option<S<u16>>,
    pub transport: Option<S<String>>,
    pub auth: Option<S<RawCredentials>>,
    pub register: Option<S<bool>>,
    pub register_expires: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredentials {
    pub username: Option<S<String>>,
    pub password: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub number: Option<S<String>>,
    pub prefix: Option<S<String>>,
    pub range: Option<S<String>>,
    pub regex: Option<S<String>>,
    pub from: Option<S<Node>>,
    pub to: Option<S<Node>>,
    pub record: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimers {
    pub t1: Option<S<String>>,
    pub t2: Option<S<String>>,
    pub t4: Option<S<String>>,
    pub session_expires: Option<S<String>>,
    pub min_se: Option<S<String>>,
    pub ring_timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_message_size: Option<S<u64>>,
    pub max_dialogs: Option<S<u64>>,
    pub per_source_rate: Option<S<u32>>,
    pub tcp_idle_timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistrar {
    pub min_expires: Option<S<u32>>,
    pub max_expires: Option<S<u32>>,
    pub default_expires: Option<S<u32>>,
    pub nonce_lifetime: Option<S<String>>,
    pub algorithms: SpannedList<String>,
}

/// A generic YAML node with positions, for the small polymorphic parts of
/// the format (`to: echo` vs `to: { trunk: NAME }`). Scalars keep their text.
///
/// Nesting is bounded by construction: mapping values are read as
/// [`Level1`], whose values are [`Level2`], whose values are leaves. Anything
/// nested deeper (never valid in a profile) becomes [`Node::Other`] without
/// being recursed into, so hostile input cannot exhaust the stack.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Null,
    Scalar(String),
    Map(Vec<(S<String>, S<Node>)>),
    /// A sequence, or a container nested too deep to matter: only its
    /// position is kept, for error messages.
    Other,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor::<Level1>(PhantomData))
    }
}

/// A mapping value one level below a [`Node`].
pub(super) struct Level1(Node);

/// A mapping value two levels below a [`Node`].
pub(super) struct Level2(Node);

/// A value whose containers are skipped.
pub(super) struct Leaf(Node);

impl<'de> Deserialize<'de> for Level1 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(NodeVisitor::<Level2>(PhantomData))
            .map(Level1)
    }
}

impl<'de> Deserialize<'de> for Level2 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(NodeVisitor::<Leaf>(PhantomData))
            .map(Level2)
    }
}

impl<'de> Deserialize<'de> for Leaf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(NodeVisitor::<()>(PhantomData))
            .map(Leaf)
    }
}

/// How a visitor reads the values of a mapping.
trait Child<'de>: Sized {
    /// Whether to descend into mappings at all (leaves do not).
    const DESCEND: bool;
    fn read<A: MapAccess<'de>>(map: &mut A) -> Result<S<Node>, A::Error>;
}

fn respan<T>(s: S<T>, f: impl FnOnce(T) -> Node) -> S<Node> {
    S::new(f(s.value), s.referenced, s.defined)
}

impl<'de> Child<'de> for Level1 {
    const DESCEND: bool = true;
    fn read<A: MapAccess<'de>>(map: &mut A) -> Result<S<Node>, A::Error> {
        map.next_value::<S<Level1>>().map(|s| respan(s, |l| l.0))
    }
}

impl<'de> Child<'de> for Level2 {
    const DESCEND: bool = true;
    fn read<A: MapAccess<'de>>(map: &mut A) -> Result<S<Node>, A::Error> {
        map.next_value::<S<Level2>>().map(|s| respan(s, |l| l.0))
    }
}

impl<'de> Child<'de> for Leaf {
    const DESCEND: bool = true;
    fn read<A: MapAccess<'de>>(map: &mut A) -> Result<S<Node>, A::Error> {
        map.next_value::<S<Leaf>>().map(|s| respan(s, |l| l.0))
    }
}

impl<'de> Child<'de> for () {
    const DESCEND: bool = false;
    fn read<A: MapAccess<'de>>(_map: &mut A) -> Result<S<Node>, A::Error> {
        Err(de::Error::custom("internal: leaves have no children"))
    }
}

struct NodeVisitor<C>(PhantomData<C>);

impl<'de, C: Child<'de>> Visitor<'de> for NodeVisitor<C> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_char<E: de::Error>(self, v: char) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Scalar(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Node::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        if !C::DESCEND {
            while map
                .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                .is_some()
            {}
            return Ok(Node::Other);
        }
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<S<String>>()? {
            entries.push((key, C::read(&mut map)?));
        }
        Ok(Node::Map(entries))
    }
}
