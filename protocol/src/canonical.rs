//! Canonical JSON and domain-separated SHA-256.
//!
//! Canonical form: object keys sorted by byte order, no insignificant whitespace, numbers as
//! serde_json prints them. Every hash in orchestrate is taken over this form, prefixed with a
//! domain tag, so a hash computed for one purpose (an audit row) can never be replayed as a hash
//! for another (an artifact).

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Errors from canonicalisation.
#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    /// The value could not be represented as JSON (a map with non-string keys, for instance).
    #[error("value cannot be written as canonical JSON: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Serialises `value` to canonical JSON bytes.
///
/// Going through `serde_json::Value` sorts object keys: the workspace must never enable
/// serde_json's `preserve_order` feature (a test below fails if it does).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let v = serde_json::to_value(value)?;
    Ok(serde_json::to_vec(&v)?)
}

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest32(pub [u8; 32]);

impl Digest32 {
    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }
}

impl std::fmt::Debug for Digest32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl std::fmt::Display for Digest32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// SHA-256 over `domain || 0x00 || parts...`, each part prefixed by its length (u64 BE) so that
/// no two different part lists hash the same.
pub fn tagged_hash(domain: &str, parts: &[&[u8]]) -> Digest32 {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    h.update([0u8]);
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    Digest32(h.finalize().into())
}

/// Plain SHA-256 of bytes (for file contents and evidence, where tools outside orchestrate must be
/// able to recompute the digest with `sha256sum`).
pub fn sha256(bytes: &[u8]) -> Digest32 {
    Digest32(Sha256::digest(bytes).into())
}

impl serde::Serialize for Digest32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Digest32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest32::from_hex(&s).ok_or_else(|| {
            serde::de::Error::custom("expected 64 hex characters (a SHA-256 digest)")
        })
    }
}

impl schemars::JsonSchema for Digest32 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Digest32".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9a-f]{64}$",
            "description": "SHA-256 digest, 64 lower-case hex characters"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn keys_are_sorted_whatever_the_insertion_order() {
        let mut m = HashMap::new();
        m.insert("zeta", 1);
        m.insert("alpha", 2);
        m.insert("mid", 3);
        let bytes = to_vec(&m).unwrap_or_default();
        assert_eq!(bytes, br#"{"alpha":2,"mid":3,"zeta":1}"#.to_vec());
    }

    #[test]
    fn nested_struct_fields_are_sorted_too() {
        #[derive(Serialize)]
        struct Inner {
            b: u8,
            a: u8,
        }
        #[derive(Serialize)]
        struct Outer {
            z: Inner,
            y: Vec<u8>,
        }
        let bytes = to_vec(&Outer {
            z: Inner { b: 1, a: 2 },
            y: vec![3],
        })
        .unwrap_or_default();
        assert_eq!(bytes, br#"{"y":[3],"z":{"a":2,"b":1}}"#.to_vec());
    }

    #[test]
    fn domain_tag_separates_contexts() {
        let a = tagged_hash("orchestrate/audit/v1", &[b"x"]);
        let b = tagged_hash("orchestrate/artifact/v1", &[b"x"]);
        assert_ne!(a, b);
    }

    #[test]
    fn length_prefix_prevents_part_shifting() {
        assert_ne!(
            tagged_hash("d", &[b"ab", b"c"]),
            tagged_hash("d", &[b"a", b"bc"])
        );
    }

    #[test]
    fn hex_round_trips() {
        let d = sha256(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest32::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest32::from_hex("zz"), None);
    }
}

// Digest32 travels as 64 lower-case hex characters in every JSON document.

#[cfg(test)]
mod float_tests {
    /// A signed body is re-canonicalised after parsing: every f64 must survive print → parse →
    /// print unchanged, or a valid signature fails to verify (seen with a ledger's spend).
    #[test]
    fn floats_survive_a_parse_and_print_round_trip() {
        let mut x: f64 = 0.0;
        for i in 0..20_000u32 {
            x += 0.000_123_457 * f64::from(i % 97);
            let first = super::to_vec(&x).unwrap();
            let back: f64 = serde_json::from_slice(&first).unwrap();
            assert_eq!(
                back.to_bits(),
                x.to_bits(),
                "{}",
                String::from_utf8_lossy(&first)
            );
            assert_eq!(super::to_vec(&back).unwrap(), first);
        }
        let seen = 1.440_410_000_000_000_1_f64;
        let back: f64 = serde_json::from_slice(&super::to_vec(&seen).unwrap()).unwrap();
        assert_eq!(back.to_bits(), seen.to_bits());
    }
}
