//! Presigned POST-object forms (the browser-upload form of S3) and their verification.
//!
//! `aws-sdk-s3` has no builder for these: [`presign_post`] writes the policy JSON and signs it
//! with SigV4's signing key (`aws-sigv4`). The same forms, signed with keeper's own key, are
//! accepted by keeper's upload endpoint for the local store, which checks them with
//! [`PostForm::verify`] exactly as S3 would: signature, expiry, every condition, every field
//! covered by a condition, and the size range.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::{validate_key, Metadata, ObjectHeaders};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The key placeholder S3 replaces with the uploaded file's name.
pub const FILENAME_PLACEHOLDER: &str = "${filename}";

/// What signs a form: an access key id and its secret, for a region.
#[derive(Clone)]
pub struct SigningCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
    pub region: String,
}

impl std::fmt::Debug for SigningCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl SigningCredentials {
    /// The credentials keeper signs its own upload forms with (the local store's endpoint).
    pub fn keeper(secret: SecretString) -> Self {
        Self {
            access_key_id: "keeper".into(),
            secret_access_key: secret,
            session_token: None,
            region: "keeper".into(),
        }
    }

    fn signature(&self, date: NaiveDate, string_to_sign: &str) -> String {
        let time: SystemTime = date
            .and_hms_opt(0, 0, 0)
            .map(|at| at.and_utc().into())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let key = aws_sigv4::sign::v4::generate_signing_key(
            self.secret_access_key.expose_secret(),
            time,
            &self.region,
            "s3",
        );
        aws_sigv4::sign::v4::calculate_signature(key, string_to_sign.as_bytes())
    }
}

/// Which keys a form may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRule {
    /// Any key starting with this prefix (which ends in `/`); the form's key is
    /// `<prefix>${filename}`.
    Prefix(String),
    /// Exactly this key (the directory-redirect objects).
    Exact(String),
}

/// What a form allows.
#[derive(Debug, Clone)]
pub struct PostPolicyRequest {
    pub key: KeyRule,
    /// A `Content-Type` the form fixes; `None` allows any (the client sends it). S3 (and Garage)
    /// refuse a form that lacks a field the policy names, so a form for clients that send no
    /// `Content-Type` (directory objects) must fix it.
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    /// `x-amz-meta-*` fields fixed by the form (`surrogate-key`, `dir-redirect`).
    pub metadata: Metadata,
    pub acl: Option<String>,
    /// Largest accepted file, in bytes.
    pub max_bytes: u64,
    pub expires_at: DateTime<Utc>,
}

/// A form: where to POST, and the fields to send before the `file` part.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PresignedPost {
    pub url: String,
    pub fields: BTreeMap<String, String>,
}

/// Builds and signs a POST-object form. `bucket` adds the `bucket` condition (S3; keeper's own
/// endpoint has none).
pub fn presign_post(
    url: &str,
    bucket: Option<&str>,
    request: &PostPolicyRequest,
    credentials: &SigningCredentials,
    now: DateTime<Utc>,
) -> PresignedPost {
    let date = now.date_naive();
    let credential = format!(
        "{}/{}/{}/s3/aws4_request",
        credentials.access_key_id,
        date.format("%Y%m%d"),
        credentials.region
    );
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let mut fields = BTreeMap::new();
    let mut conditions: Vec<Value> = Vec::new();
    if let Some(bucket) = bucket {
        conditions.push(json!({ "bucket": bucket }));
    }
    match &request.key {
        KeyRule::Prefix(prefix) => {
            conditions.push(json!(["starts-with", "$key", prefix]));
            fields.insert("key".into(), format!("{prefix}{FILENAME_PLACEHOLDER}"));
        }
        KeyRule::Exact(key) => {
            conditions.push(json!({ "key": key }));
            fields.insert("key".into(), key.clone());
        }
    }
    let mut fixed = vec![("success_action_status".to_owned(), "204".to_owned())];
    if let Some(content_type) = &request.content_type {
        fixed.push(("Content-Type".into(), content_type.clone()));
    }
    if let Some(cache_control) = &request.cache_control {
        fixed.push(("Cache-Control".into(), cache_control.clone()));
    }
    for (name, value) in &request.metadata {
        fixed.push((format!("x-amz-meta-{name}"), value.clone()));
    }
    if let Some(acl) = &request.acl {
        fixed.push(("acl".into(), acl.clone()));
    }
    fixed.push(("x-amz-algorithm".into(), ALGORITHM.into()));
    fixed.push(("x-amz-credential".into(), credential));
    fixed.push(("x-amz-date".into(), amz_date));
    if let Some(token) = &credentials.session_token {
        fixed.push((
            "x-amz-security-token".into(),
            token.expose_secret().to_owned(),
        ));
    }
    for (name, value) in fixed {
        conditions.push(json!({ name.clone(): value.clone() }));
        fields.insert(name, value);
    }
    if request.content_type.is_none() {
        conditions.push(json!(["starts-with", "$Content-Type", ""]));
    }
    conditions.push(json!(["content-length-range", 0, request.max_bytes]));
    let policy = json!({
        "expiration": request.expires_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "conditions": conditions,
    });
    let encoded = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
    let signature = credentials.signature(date, &encoded);
    fields.insert("policy".into(), encoded);
    fields.insert("x-amz-signature".into(), signature);
    PresignedPost {
        url: url.to_owned(),
        fields,
    }
}

/// Why a form was refused. Messages never include the signature or the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the form lacks the {0:?} field")]
    Missing(String),
    #[error("the form is malformed: {0}")]
    Malformed(String),
    #[error("the signature does not match the policy")]
    BadSignature,
    #[error("the form expired at {0}")]
    Expired(String),
    #[error("the policy condition on {field:?} is not met")]
    ConditionFailed { field: String },
    #[error("the field {0:?} is not covered by the policy")]
    FieldNotInPolicy(String),
    #[error("the file is {size} bytes; the form accepts {min} to {max} bytes")]
    SizeOutOfRange { size: u64, min: u64, max: u64 },
    #[error("the key {0:?} is not a valid object key")]
    InvalidKey(String),
}

impl PolicyError {
    /// Whether S3 would answer 403 (authorization) rather than 400 (a malformed request).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Self::BadSignature
                | Self::Expired(_)
                | Self::ConditionFailed { .. }
                | Self::FieldNotInPolicy(_)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    Eq { field: String, value: String },
    StartsWith { field: String, prefix: String },
    LengthRange { min: u64, max: u64 },
}

/// The fields of a submitted form (names compared case-insensitively), before the file.
#[derive(Debug, Clone, Default)]
pub struct PostForm {
    fields: BTreeMap<String, String>,
}

/// A form whose signature and expiry are good; its conditions are checked with the file's size.
#[derive(Debug, Clone)]
pub struct VerifiedPolicy {
    conditions: Vec<Condition>,
}

impl PostForm {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: &str, value: String) {
        self.fields.insert(name.to_ascii_lowercase(), value);
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    fn require(&self, name: &str) -> Result<&str, PolicyError> {
        self.get(name)
            .ok_or_else(|| PolicyError::Missing(name.to_owned()))
    }

    /// Checks the algorithm, the credential scope, the signature and the expiry; parses the
    /// policy's conditions. Done before reading the file.
    pub fn verify(
        &self,
        credentials: &SigningCredentials,
        now: DateTime<Utc>,
    ) -> Result<VerifiedPolicy, PolicyError> {
        let encoded = self.require("policy")?;
        if self.require("x-amz-algorithm")? != ALGORITHM {
            return Err(PolicyError::Malformed(format!(
                "x-amz-algorithm must be {ALGORITHM}"
            )));
        }
        let credential = self.require("x-amz-credential")?;
        let parts: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, "s3", "aws4_request"] = parts.as_slice() else {
            return Err(PolicyError::Malformed(
                "x-amz-credential is not <key>/<date>/<region>/s3/aws4_request".into(),
            ));
        };
        if *access_key_id != credentials.access_key_id || *region != credentials.region {
            return Err(PolicyError::BadSignature);
        }
        let date = NaiveDate::parse_from_str(date, "%Y%m%d")
            .map_err(|_| PolicyError::Malformed("x-amz-credential has no valid date".into()))?;
        let expected = credentials.signature(date, encoded);
        if !constant_time_eq(
            expected.as_bytes(),
            self.require("x-amz-signature")?.as_bytes(),
        ) {
            return Err(PolicyError::BadSignature);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| PolicyError::Malformed("the policy is not base64".into()))?;
        let policy: Value = serde_json::from_slice(&decoded)
            .map_err(|_| PolicyError::Malformed("the policy is not JSON".into()))?;
        let expiration = policy["expiration"]
            .as_str()
            .and_then(|raw| DateTime::parse_from_rfc3339(raw).ok())
            .ok_or_else(|| PolicyError::Malformed("the policy has no valid expiration".into()))?;
        if now >= expiration {
            return Err(PolicyError::Expired(expiration.to_rfc3339()));
        }
        let conditions = policy["conditions"]
            .as_array()
            .ok_or_else(|| PolicyError::Malformed("the policy has no conditions".into()))?
            .iter()
            .map(parse_condition)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VerifiedPolicy { conditions })
    }
}

impl VerifiedPolicy {
    /// The largest file the policy accepts, if it says.
    pub fn max_bytes(&self) -> Option<u64> {
        self.conditions
            .iter()
            .find_map(|condition| match condition {
                Condition::LengthRange { max, .. } => Some(*max),
                _ => None,
            })
    }

    /// Checks every condition against the form and the file's size, and that every field is
    /// covered by a condition. Then substitutes `${filename}` in the key and checks the result
    /// is a valid key that still meets the key conditions.
    pub fn check(
        &self,
        form: &PostForm,
        filename: &str,
        file_size: u64,
    ) -> Result<String, PolicyError> {
        for condition in &self.conditions {
            match condition {
                Condition::Eq { field, value } => {
                    if form.get(field) != Some(value.as_str()) {
                        return Err(PolicyError::ConditionFailed {
                            field: field.clone(),
                        });
                    }
                }
                Condition::StartsWith { field, prefix } => {
                    if !form.get(field).unwrap_or("").starts_with(prefix.as_str()) {
                        return Err(PolicyError::ConditionFailed {
                            field: field.clone(),
                        });
                    }
                }
                Condition::LengthRange { min, max } => {
                    if file_size < *min || file_size > *max {
                        return Err(PolicyError::SizeOutOfRange {
                            size: file_size,
                            min: *min,
                            max: *max,
                        });
                    }
                }
            }
        }
        for name in form.fields.keys() {
            let exempt = matches!(
                name.as_str(),
                "x-amz-signature" | "file" | "policy" | "submit"
            ) || name.starts_with("x-ignore-");
            let covered = self.conditions.iter().any(|condition| match condition {
                Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => field == name,
                Condition::LengthRange { .. } => false,
            });
            if !exempt && !covered {
                return Err(PolicyError::FieldNotInPolicy(name.clone()));
            }
        }
        let template = form.require("key")?;
        let key = if template.contains(FILENAME_PLACEHOLDER) {
            let name = filename.rsplit(['/', '\\']).next().unwrap_or("");
            if name.is_empty() {
                return Err(PolicyError::Missing("file name".into()));
            }
            template.replace(FILENAME_PLACEHOLDER, name)
        } else {
            template.to_owned()
        };
        if validate_key(&key).is_err() {
            return Err(PolicyError::InvalidKey(key));
        }
        let key_refused = self.conditions.iter().any(|condition| match condition {
            Condition::StartsWith { field, prefix } => field == "key" && !key.starts_with(prefix),
            Condition::Eq { field, value } => field == "key" && key != *value,
            Condition::LengthRange { .. } => false,
        });
        if key_refused {
            return Err(PolicyError::ConditionFailed {
                field: "key".into(),
            });
        }
        Ok(key)
    }
}

impl PostForm {
    /// The headers the uploaded object is stored with, from the form's fields.
    pub fn object_headers(&self) -> ObjectHeaders {
        let mut headers = ObjectHeaders {
            content_type: self.get("content-type").map(str::to_owned),
            cache_control: self.get("cache-control").map(str::to_owned),
            content_encoding: self.get("content-encoding").map(str::to_owned),
            content_disposition: self.get("content-disposition").map(str::to_owned),
            metadata: Metadata::new(),
        };
        for (name, value) in &self.fields {
            if let Some(meta) = name.strip_prefix("x-amz-meta-") {
                headers.metadata.insert(meta.to_owned(), value.clone());
            }
        }
        headers
    }
}

fn field_name(raw: &str) -> String {
    raw.trim_start_matches('$').to_ascii_lowercase()
}

fn parse_condition(value: &Value) -> Result<Condition, PolicyError> {
    let malformed = || PolicyError::Malformed(format!("unknown policy condition {value}"));
    if let Some(map) = value.as_object() {
        let (name, value) = map.iter().next().ok_or_else(malformed)?;
        return Ok(Condition::Eq {
            field: field_name(name),
            value: value.as_str().ok_or_else(malformed)?.to_owned(),
        });
    }
    let items = value.as_array().ok_or_else(malformed)?;
    let number = |item: &Value| {
        item.as_u64()
            .or_else(|| item.as_str().and_then(|raw| raw.parse().ok()))
    };
    match items.as_slice() {
        [op, field, value] if op == "eq" => Ok(Condition::Eq {
            field: field_name(field.as_str().ok_or_else(malformed)?),
            value: value.as_str().ok_or_else(malformed)?.to_owned(),
        }),
        [op, field, prefix] if op == "starts-with" => Ok(Condition::StartsWith {
            field: field_name(field.as_str().ok_or_else(malformed)?),
            prefix: prefix.as_str().ok_or_else(malformed)?.to_owned(),
        }),
        [op, min, max] if op == "content-length-range" => Ok(Condition::LengthRange {
            min: number(min).ok_or_else(malformed)?,
            max: number(max).ok_or_else(malformed)?,
        }),
        _ => Err(malformed()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn credentials() -> SigningCredentials {
        SigningCredentials::keeper(SecretString::from("a-secret-that-is-long-enough-to-sign"))
    }

    fn form(request: &PostPolicyRequest, now: DateTime<Utc>) -> PostForm {
        let post = presign_post("http://x/uploads", None, request, &credentials(), now);
        let mut form = PostForm::new();
        for (name, value) in post.fields {
            form.insert(&name, value);
        }
        form
    }

    fn request() -> PostPolicyRequest {
        PostPolicyRequest {
            key: KeyRule::Prefix("demo/builds/1/".into()),
            content_type: None,
            cache_control: Some("max-age=31536000".into()),
            metadata: Metadata::from([("surrogate-key".into(), "abc".into())]),
            acl: None,
            max_bytes: 100,
            expires_at: Utc::now() + Duration::hours(1),
        }
    }

    #[test]
    fn a_signed_form_verifies_and_substitutes_the_filename() {
        let now = Utc::now();
        let mut form = form(&request(), now);
        form.insert("Content-Type", "text/html".into());
        let policy = form.verify(&credentials(), now).unwrap();
        assert_eq!(policy.max_bytes(), Some(100));
        let key = policy.check(&form, "index.html", 10).unwrap();
        assert_eq!(key, "demo/builds/1/index.html");
        let headers = form.object_headers();
        assert_eq!(headers.metadata["surrogate-key"], "abc");
        assert_eq!(headers.content_type.as_deref(), Some("text/html"));
    }

    #[test]
    fn the_policy_pins_what_the_form_fixes() {
        let now = Utc::now();
        let mut with_acl = request();
        with_acl.acl = Some("public-read".into());
        let post = presign_post("http://x", Some("bucket"), &with_acl, &credentials(), now);
        assert_eq!(post.fields["acl"], "public-read");
        assert_eq!(post.fields["success_action_status"], "204");
        assert_eq!(post.fields["x-amz-algorithm"], ALGORITHM);
        let policy: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(&post.fields["policy"])
                .unwrap(),
        )
        .unwrap();
        let conditions = policy["conditions"].as_array().unwrap();
        for expected in [
            json!({"bucket": "bucket"}),
            json!(["starts-with", "$key", "demo/builds/1/"]),
            json!({"Cache-Control": "max-age=31536000"}),
            json!({"x-amz-meta-surrogate-key": "abc"}),
            json!({"success_action_status": "204"}),
            json!({"acl": "public-read"}),
            json!(["starts-with", "$Content-Type", ""]),
            json!(["content-length-range", 0, 100]),
        ] {
            assert!(
                conditions.contains(&expected),
                "{expected} not in {conditions:?}"
            );
        }
        assert!(policy["expiration"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn refusals() {
        let now = Utc::now();
        let good = form(&request(), now);

        let mut tampered = good.clone();
        tampered.insert("x-amz-meta-surrogate-key", "other".into());
        let policy = tampered.verify(&credentials(), now).unwrap();
        assert!(matches!(
            policy.check(&tampered, "a", 1),
            Err(PolicyError::ConditionFailed { .. })
        ));

        let mut forged = good.clone();
        forged.insert("x-amz-signature", "0".repeat(64));
        assert_eq!(
            forged.verify(&credentials(), now).unwrap_err(),
            PolicyError::BadSignature
        );

        let later = now + Duration::hours(2);
        assert!(matches!(
            good.verify(&credentials(), later),
            Err(PolicyError::Expired(_))
        ));

        let policy = good.verify(&credentials(), now).unwrap();
        assert!(matches!(
            policy.check(&good, "a", 101),
            Err(PolicyError::SizeOutOfRange { .. })
        ));
        for escape in ["..", ""] {
            assert!(policy.check(&good, escape, 1).is_err(), "{escape:?}");
        }

        let mut extra = good.clone();
        extra.insert("x-amz-meta-other", "1".into());
        assert_eq!(
            policy.check(&extra, "a", 1).unwrap_err(),
            PolicyError::FieldNotInPolicy("x-amz-meta-other".into())
        );
    }
}
