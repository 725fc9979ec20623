//! The password hashes of LTD Keeper, the Python original: werkzeug's
//! `pbkdf2:<digest>:<iterations>$<salt>$<hex>` (`generate_password_hash`), so that users adopted
//! from it log in with their old passwords. keeper never writes this format: a successful login
//! replaces the hash with an argon2 one (`api::token`).

use pbkdf2::pbkdf2_hmac;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Sha256, Sha512};

/// The most PBKDF2 iterations a stored hash may ask for (werkzeug 3 writes 600,000 for
/// SHA-256); a hash asking for more never matches, so no row can make a login cost minutes.
const MAX_ITERATIONS: u32 = 5_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Digest {
    Sha256,
    Sha512,
}

/// A parsed werkzeug PBKDF2 hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WerkzeugHash<'a> {
    digest: Digest,
    iterations: u32,
    salt: &'a str,
    expected: Vec<u8>,
}

impl<'a> WerkzeugHash<'a> {
    /// `None` unless `stored` is a werkzeug PBKDF2 hash keeper can check (SHA-256 or SHA-512,
    /// iterations written out, as every werkzeug release since 0.9 writes them).
    pub fn parse(stored: &'a str) -> Option<Self> {
        let mut parts = stored.splitn(3, '$');
        let (method, salt, hex_hash) = (parts.next()?, parts.next()?, parts.next()?);
        let mut method = method.split(':');
        if method.next()? != "pbkdf2" {
            return None;
        }
        let digest = match method.next()? {
            "sha256" => Digest::Sha256,
            "sha512" => Digest::Sha512,
            _ => return None,
        };
        let iterations: u32 = method.next()?.parse().ok()?;
        if method.next().is_some() || salt.is_empty() || !(1..=MAX_ITERATIONS).contains(&iterations)
        {
            return None;
        }
        let expected = hex::decode(hex_hash).ok()?;
        let length = match digest {
            Digest::Sha256 => 32,
            Digest::Sha512 => 64,
        };
        (expected.len() == length).then_some(Self {
            digest,
            iterations,
            salt,
            expected,
        })
    }

    /// Whether `password` is the one hashed. werkzeug derives from the UTF-8 bytes of the
    /// password and of the salt text; the comparison takes the same time wherever it differs.
    pub fn verify(&self, password: &SecretString) -> bool {
        let mut computed = vec![0u8; self.expected.len()];
        let (password, salt) = (password.expose_secret().as_bytes(), self.salt.as_bytes());
        match self.digest {
            Digest::Sha256 => pbkdf2_hmac::<Sha256>(password, salt, self.iterations, &mut computed),
            Digest::Sha512 => pbkdf2_hmac::<Sha512>(password, salt, self.iterations, &mut computed),
        }
        computed
            .iter()
            .zip(&self.expected)
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
    }
}

/// Whether `stored` is a hash keeper checks but no longer writes (it is replaced at the next
/// successful login).
pub fn is_legacy_hash(stored: &str) -> bool {
    stored.starts_with("pbkdf2:")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Python's hashlib.pbkdf2_hmac(<digest>, b"bench-password", b"saltsalt", 1000).hex(): the
    // derivation werkzeug's generate_password_hash performs, with few iterations for speed.
    const SHA256: &str = "pbkdf2:sha256:1000$saltsalt$f5f57a942054b4c5b2d956f270716d10ba5f25a1d7a4096ef3c462d3a2109141";
    const SHA512: &str = "pbkdf2:sha512:1000$saltsalt$f88061713c40ce098317240a384b300c33620b66fbce1584e410975a14bb5ff7195fc96a98ecdd52e3a5bba45a35c5df95278dffb27ca901d40a86410bf264ab";

    #[test]
    fn werkzeug_hashes_verify() {
        for stored in [SHA256, SHA512] {
            let parsed = WerkzeugHash::parse(stored).unwrap();
            assert!(
                parsed.verify(&SecretString::from("bench-password")),
                "{stored}"
            );
            assert!(
                !parsed.verify(&SecretString::from("bench-passwore")),
                "{stored}"
            );
            assert!(!parsed.verify(&SecretString::from("")), "{stored}");
            assert!(is_legacy_hash(stored));
        }
        assert!(!is_legacy_hash("$argon2id$v=19$m=19456,t=2,p=1$abc$def"));
    }

    #[test]
    fn malformed_or_unsupported_hashes_are_refused() {
        for stored in [
            "pbkdf2:sha256$saltsalt$00",
            "pbkdf2:md5:1000$saltsalt$00",
            "pbkdf2:sha256:0$saltsalt$f5f57a942054b4c5b2d956f270716d10ba5f25a1d7a4096ef3c462d3a2109141",
            "pbkdf2:sha256:99999999$saltsalt$f5f57a942054b4c5b2d956f270716d10ba5f25a1d7a4096ef3c462d3a2109141",
            "pbkdf2:sha256:1000:9$saltsalt$f5f57a942054b4c5b2d956f270716d10ba5f25a1d7a4096ef3c462d3a2109141",
            "pbkdf2:sha256:1000$$f5f57a942054b4c5b2d956f270716d10ba5f25a1d7a4096ef3c462d3a2109141",
            "pbkdf2:sha256:1000$saltsalt$nothex",
            "pbkdf2:sha256:1000$saltsalt$abcd",
            "scrypt:32768:8:1$saltsalt$abcd",
            "plain",
        ] {
            assert_eq!(WerkzeugHash::parse(stored), None, "{stored}");
        }
    }
}
