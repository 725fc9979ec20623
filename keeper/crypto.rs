//! Secrets at rest (DESIGN.md section 6): Fernet tokens under `KEEPER_ENCRYPTION_KEYS`
//! (`new;old;...`). The first key encrypts; every key decrypts, so keys rotate without downtime:
//! prepend a new key, run `keeper secrets rotate` (re-encrypts everything with it), then drop
//! the old key.

use fernet::Fernet;
use secrecy::SecretString;

/// Why keys could not be read or a secret could not be decrypted. Never carries a key or a
/// secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("KEEPER_ENCRYPTION_KEYS holds no key")]
    NoKeys,
    #[error(
        "key {position} of KEEPER_ENCRYPTION_KEYS is not a Fernet key (32 bytes in URL-safe \
         base64, as `keeper secrets generate-key` prints)"
    )]
    InvalidKey { position: usize },
    #[error(
        "a stored secret could not be decrypted with any key of KEEPER_ENCRYPTION_KEYS (was the \
         key that encrypted it removed?)"
    )]
    Undecryptable,
}

/// The keys of `KEEPER_ENCRYPTION_KEYS`, newest first.
#[derive(Clone)]
pub struct EncryptionKeys {
    keys: Vec<Fernet>,
}

impl std::fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptionKeys({} keys)", self.keys.len())
    }
}

impl EncryptionKeys {
    /// Parses `new;old;...`; blanks around keys are ignored, empty entries refused.
    pub fn parse(spec: &str) -> Result<Self, CryptoError> {
        if spec.trim().is_empty() {
            return Err(CryptoError::NoKeys);
        }
        let keys = spec
            .split(';')
            .enumerate()
            .map(|(index, key)| {
                Fernet::new(key.trim()).ok_or(CryptoError::InvalidKey {
                    position: index + 1,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys })
    }

    /// The keys of `KEEPER_ENCRYPTION_KEYS`, if it is set.
    pub fn from_config(
        config: &crate::config::OrganizationsConfig,
    ) -> Result<Option<Self>, CryptoError> {
        config
            .encryption_keys
            .as_ref()
            .map(|spec| Self::parse(secrecy::ExposeSecret::expose_secret(spec)))
            .transpose()
    }

    /// A new random key.
    pub fn generate_key() -> String {
        Fernet::generate_key()
    }

    /// Encrypts with the first (newest) key.
    pub fn encrypt(&self, plaintext: &str) -> String {
        self.keys[0].encrypt(plaintext.as_bytes())
    }

    /// Decrypts with whichever key encrypted `token`.
    pub fn decrypt(&self, token: &str) -> Result<SecretString, CryptoError> {
        self.keys
            .iter()
            .find_map(|key| key.decrypt(token).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(SecretString::from)
            .ok_or(CryptoError::Undecryptable)
    }

    /// Whether `token` is already encrypted with the first key (rotation leaves it alone).
    pub fn is_current(&self, token: &str) -> bool {
        self.keys[0].decrypt(token).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn the_first_key_encrypts_and_every_key_decrypts() {
        let (old, new) = (
            EncryptionKeys::generate_key(),
            EncryptionKeys::generate_key(),
        );
        let before = EncryptionKeys::parse(&old).unwrap();
        let token = before.encrypt("s3cr3t");
        assert!(!token.contains("s3cr3t"));
        let rotated = EncryptionKeys::parse(&format!("{new} ; {old}")).unwrap();
        assert_eq!(rotated.decrypt(&token).unwrap().expose_secret(), "s3cr3t");
        assert!(!rotated.is_current(&token));
        let again = rotated.encrypt("s3cr3t");
        assert!(rotated.is_current(&again));
        // Once the old key is dropped, only what was re-encrypted can be read.
        let only_new = EncryptionKeys::parse(&new).unwrap();
        assert_eq!(only_new.decrypt(&again).unwrap().expose_secret(), "s3cr3t");
        assert_eq!(
            only_new.decrypt(&token).unwrap_err(),
            CryptoError::Undecryptable
        );
    }

    #[test]
    fn bad_key_lists_are_refused_by_position_without_echoing_them() {
        let good = EncryptionKeys::generate_key();
        assert_eq!(EncryptionKeys::parse("").unwrap_err(), CryptoError::NoKeys);
        assert_eq!(
            EncryptionKeys::parse("  ").unwrap_err(),
            CryptoError::NoKeys
        );
        let err = EncryptionKeys::parse(&format!("{good};not-a-key")).unwrap_err();
        assert_eq!(err, CryptoError::InvalidKey { position: 2 });
        assert!(!err.to_string().contains("not-a-key"));
        assert_eq!(
            EncryptionKeys::parse(&format!("{good};;{good}")).unwrap_err(),
            CryptoError::InvalidKey { position: 2 }
        );
        let debug = format!("{:?}", EncryptionKeys::parse(&good).unwrap());
        assert!(!debug.contains(&good), "{debug}");
    }

    #[test]
    fn tampered_tokens_are_not_decrypted() {
        let keys = EncryptionKeys::parse(&EncryptionKeys::generate_key()).unwrap();
        let mut token = keys.encrypt("value").into_bytes();
        let last = token.len() - 5;
        token[last] = if token[last] == b'A' { b'B' } else { b'A' };
        let token = String::from_utf8(token).unwrap();
        assert_eq!(
            keys.decrypt(&token).unwrap_err(),
            CryptoError::Undecryptable
        );
    }
}
