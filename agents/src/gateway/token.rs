//! The per-run bearer token a role presents to the gateway. Random, compared in constant time,
//! held only in memory by the gateway: it dies with the run's gateway.

use rand::rngs::OsRng;
use rand::RngCore;

/// A per-run token (64 hex chars, 256 bits).
#[derive(Clone)]
pub struct RunToken(String);

impl RunToken {
    /// A fresh random token from the OS generator.
    pub fn generate() -> Self {
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        Self(hex::encode(raw))
    }

    /// A token the run engine generated and handed to cost-control (64 hex chars); `None` when
    /// it is not one.
    pub fn from_hex(token: &str) -> Option<Self> {
        (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(token.to_ascii_lowercase()))
    }

    /// The token, to hand to the roles allowed to call a model.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token; the time taken does not depend on where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), presented)
    }
}

impl std::fmt::Debug for RunToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunToken(..)")
    }
}

/// Equality whose time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_match_only_themselves() {
        let a = RunToken::generate();
        let b = RunToken::generate();
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.as_str().len(), 64);
        assert!(a.matches(a.as_str().as_bytes()));
        assert!(!a.matches(b.as_str().as_bytes()));
        assert!(!a.matches(&a.as_str().as_bytes()[..63]));
        assert!(!a.matches(b""));
        assert_eq!(format!("{a:?}"), "RunToken(..)");
        let back = RunToken::from_hex(a.as_str()).unwrap();
        assert!(back.matches(a.as_str().as_bytes()));
        assert!(RunToken::from_hex("abc").is_none());
        assert!(RunToken::from_hex(&"g".repeat(64)).is_none());
    }
}
