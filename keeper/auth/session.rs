//! Session tokens: what `GET /token` hands out. Signed (HS256) with the server's secret key and
//! expiring; they name the user, and the API token they were exchanged for, if any, so that
//! revoking that API token ends its sessions too.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionClaims {
    /// The user's id, in decimal (JWT subjects are strings).
    pub sub: String,
    /// The API token this session was exchanged for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<i64>,
    pub iat: i64,
    pub exp: i64,
}

/// Signs and verifies session tokens.
#[derive(Clone)]
pub struct SessionKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    lifetime_secs: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
    #[error("signing the token failed: {0}")]
    Signing(jsonwebtoken::errors::Error),
}

impl SessionKeys {
    pub fn new(secret: &SecretString, lifetime_secs: i64) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            lifetime_secs,
        }
    }

    pub fn lifetime_secs(&self) -> i64 {
        self.lifetime_secs
    }

    /// A token for `user_id` (and the API token it stands for), valid from `now` for the lifetime.
    pub fn issue(
        &self,
        user_id: i64,
        api_token_id: Option<i64>,
        now: i64,
    ) -> Result<String, SessionError> {
        let claims = SessionClaims {
            sub: user_id.to_string(),
            tid: api_token_id,
            iat: now,
            exp: now + self.lifetime_secs,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(SessionError::Signing)
    }

    /// The user id and claims of a token this server signed that has not expired.
    pub fn verify(&self, token: &str) -> Result<(i64, SessionClaims), SessionError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = decode::<SessionClaims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => SessionError::Expired,
                _ => SessionError::Invalid,
            })?;
        let user_id = claims.sub.parse().map_err(|_| SessionError::Invalid)?;
        Ok((user_id, claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> SessionKeys {
        SessionKeys::new(&SecretString::from(secret.to_owned()), 3600)
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn issued_tokens_verify_with_the_same_key_only() {
        let token = keys("a".repeat(32).as_str())
            .issue(7, Some(3), now())
            .unwrap();
        let (user_id, claims) = keys("a".repeat(32).as_str()).verify(&token).unwrap();
        assert_eq!((user_id, claims.tid), (7, Some(3)));
        assert!(matches!(
            keys("b".repeat(32).as_str()).verify(&token),
            Err(SessionError::Invalid)
        ));
    }

    #[test]
    fn expired_and_tampered_tokens_are_rejected() {
        let keys = keys("k".repeat(32).as_str());
        let old = keys.issue(1, None, now() - 7200).unwrap();
        assert!(matches!(keys.verify(&old), Err(SessionError::Expired)));
        let token = keys.issue(1, None, now()).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].chars().rev().collect();
        assert!(matches!(
            keys.verify(&parts.join(".")),
            Err(SessionError::Invalid)
        ));
        assert!(matches!(
            keys.verify("not-a-token"),
            Err(SessionError::Invalid)
        ));
    }
}
