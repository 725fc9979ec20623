//! Long-lived API tokens for CI: random, shown once, stored only as a SHA-256 hash.
//!
//! Format: `ltdk_` + 43 characters of URL-safe base64 (32 random bytes). The prefix lets clients
//! and secret scanners recognize the token, and lets keeper tell it from a session token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub const API_TOKEN_PREFIX: &str = "ltdk_";

/// A new random API token (to show once) and the hash to store.
pub fn generate_api_token() -> (SecretString, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("{API_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_api_token(&token);
    (SecretString::from(token), hash)
}

/// The stored form of a token: lowercase hex SHA-256. A fast hash suffices: the token has 256
/// random bits, so there is nothing to brute-force.
pub fn hash_api_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn looks_like_api_token(candidate: &str) -> bool {
    candidate.starts_with(API_TOKEN_PREFIX)
}

/// Convenience for callers holding the secret.
pub fn hash_secret_token(token: &SecretString) -> String {
    hash_api_token(token.expose_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let (first, first_hash) = generate_api_token();
        let (second, _) = generate_api_token();
        assert_ne!(first.expose_secret(), second.expose_secret());
        assert!(looks_like_api_token(first.expose_secret()));
        assert_eq!(first.expose_secret().len(), API_TOKEN_PREFIX.len() + 43);
        assert_eq!(first_hash, hash_secret_token(&first));
        assert_eq!(first_hash.len(), 64);
        assert!(!first_hash.contains(first.expose_secret()));
    }
}
