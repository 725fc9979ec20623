//! Password hashing with argon2 (the crate's recommended parameters, a random salt per hash).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use secrecy::{ExposeSecret, SecretString};

pub const MIN_PASSWORD_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_PASSWORD_LEN} characters long")]
    TooShort,
    #[error("hashing the password failed: {0}")]
    Hash(argon2::password_hash::Error),
}

/// Hashes `password` into a PHC string (algorithm, parameters, salt and hash).
pub fn hash_password(password: &SecretString) -> Result<String, PasswordError> {
    if password.expose_secret().chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    rehash_password(password)
}

/// [`hash_password`] without the length rule: for a password already accepted elsewhere (an
/// adopted user's, checked against its old hash), which the user did not choose under keeper's
/// rules and must not be locked out for.
pub fn rehash_password(password: &SecretString) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(PasswordError::Hash)
}

/// Whether `password` matches the stored PHC string (or an adopted user's werkzeug hash). A
/// malformed hash never matches.
pub fn verify_password(password: &SecretString, stored_hash: &str) -> bool {
    if crate::auth::werkzeug::is_legacy_hash(stored_hash) {
        return crate::auth::werkzeug::WerkzeugHash::parse(stored_hash)
            .is_some_and(|legacy| legacy.verify(password));
    }
    PasswordHash::new(stored_hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Working memory for [`verify_password_in`]: argon2's blocks, kept between checks so that a
/// process that checks many passwords allocates them once (the allocator would otherwise keep
/// every 19 MiB it ever handed out: 1.3 GB after a flood of 136 checks).
#[derive(Default)]
pub struct HashMemory(Vec<argon2::Block>);

/// The most working memory a stored hash may ask for (64 MiB); a larger one never matches.
const MAX_HASH_BLOCKS: usize = 64 * 1024;

/// [`verify_password`] computing in `memory`, which grows to the hash's memory cost once.
pub fn verify_password_in(
    password: &SecretString,
    stored_hash: &str,
    memory: &mut HashMemory,
) -> bool {
    use argon2::password_hash::{Error, Output};
    use argon2::{Algorithm, Params, Version};
    if crate::auth::werkzeug::is_legacy_hash(stored_hash) {
        return crate::auth::werkzeug::WerkzeugHash::parse(stored_hash)
            .is_some_and(|legacy| legacy.verify(password));
    }
    let Ok(parsed) = PasswordHash::new(stored_hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let Ok(version) = parsed.version.map(Version::try_from).transpose() else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_HASH_BLOCKS {
        return false;
    }
    if memory.0.len() < blocks {
        memory.0.resize(blocks, argon2::Block::default());
    }
    let argon = Argon2::new(algorithm, version.unwrap_or_default(), params);
    Output::init_with(expected.len(), |out| {
        argon
            .hash_password_into_with_memory(
                password.expose_secret().as_bytes(),
                salt,
                out,
                &mut memory.0[..blocks],
            )
            .map_err(|_| Error::Password)
    })
    // `Output`'s equality is constant-time.
    .is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_salts_differ() {
        let password = SecretString::from("correct horse battery");
        let first = hash_password(&password).unwrap();
        let second = hash_password(&password).unwrap();
        assert_ne!(first, second);
        assert!(first.starts_with("$argon2id$"));
        assert!(!first.contains("correct horse"));
        assert!(verify_password(&password, &first));
        assert!(!verify_password(
            &SecretString::from("wrong horse battery"),
            &first
        ));
        assert!(!verify_password(&password, "not a hash"));
    }

    #[test]
    fn checks_in_kept_memory_agree_with_plain_checks() {
        let password = SecretString::from("correct horse battery");
        let stored = hash_password(&password).unwrap();
        let mut memory = HashMemory::default();
        for _ in 0..2 {
            assert!(verify_password_in(&password, &stored, &mut memory));
            assert!(!verify_password_in(
                &SecretString::from("wrong horse battery"),
                &stored,
                &mut memory
            ));
        }
        assert!(!verify_password_in(&password, "not a hash", &mut memory));
        // A hash asking for more memory than allowed never matches (and allocates nothing).
        let greedy = stored.replace("m=19456", "m=1048576");
        assert!(!verify_password_in(
            &password,
            &greedy,
            &mut HashMemory::default()
        ));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(matches!(
            hash_password(&SecretString::from("short")),
            Err(PasswordError::TooShort)
        ));
    }
}
