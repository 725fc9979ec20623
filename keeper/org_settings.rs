//! An organization's settings: the one set of rules `keeper org` and `/orgs/` change them by.
//! What may change (`OrgSettingsArgs`, with secrets apart in `OrgSecrets`), how a change is
//! applied and checked whole (`apply`, `check`), and how settings are shown with secrets only
//! as "set" (`describe`). Messages name the options of the surface that asked (`Surface`):
//! `--bucket` for the CLI, `bucket_name` for HTTP.

use anyhow::{bail, Context};
use secrecy::SecretString;

use crate::backends::OrgBackends;
use crate::config::{parse_varnish_urls, S3Config, S3Parts, S3Problem, DEFAULT_S3_ATTEMPT_TIMEOUT};
use crate::crypto::EncryptionKeys;
use crate::db::models::OrganizationSettings;
use crate::domain::{CdnKind, StoreKind, UrlLayout};

/// Where `keeper org create|update` read an organization's S3 secret access key.
pub const S3_SECRET_VARIABLE: &str = "KEEPER_ORG_S3_SECRET_ACCESS_KEY";
/// Where `keeper org create|update` read an organization's Fastly API key.
pub const FASTLY_KEY_VARIABLE: &str = "KEEPER_ORG_FASTLY_API_KEY";

/// Who is changing the settings, so that a message names what they typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `keeper org create|update`: options and environment variables.
    Cli,
    /// `POST /orgs/`, `PATCH /orgs/<slug>`: JSON fields.
    Http,
}

/// A setting, as each surface calls it.
#[derive(Debug, Clone, Copy)]
enum Field {
    Layout,
    RootDomain,
    PathPrefix,
    Bucket,
    S3EndpointUrl,
    S3AccessKeyId,
    S3Secret,
    Cdn,
    FastlyServiceId,
    FastlyKey,
    VarnishUrls,
}

impl Surface {
    fn name(self, field: Field) -> &'static str {
        let (cli, http) = match field {
            Field::Layout => ("--layout", "layout"),
            Field::RootDomain => ("--root-domain", "root_domain"),
            Field::PathPrefix => ("--path-prefix", "path_prefix"),
            Field::Bucket => ("--bucket", "bucket_name"),
            Field::S3EndpointUrl => ("--s3-endpoint-url", "s3_endpoint_url"),
            Field::S3AccessKeyId => ("--s3-access-key-id", "s3_access_key_id"),
            Field::S3Secret => (S3_SECRET_VARIABLE, "s3_secret_access_key"),
            Field::Cdn => ("--cdn", "cdn"),
            Field::FastlyServiceId => ("--fastly-service-id", "fastly_service_id"),
            Field::FastlyKey => (FASTLY_KEY_VARIABLE, "fastly_api_key"),
            Field::VarnishUrls => ("--varnish-urls", "varnish_urls"),
        };
        match self {
            Self::Cli => cli,
            Self::Http => http,
        }
    }
}

/// What a change does to a stored secret.
#[derive(Debug, Default)]
pub enum SecretChange {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Store this value (encrypted).
    Set(SecretString),
    /// Remove it.
    Clear,
}

impl SecretChange {
    fn is_set(&self) -> bool {
        matches!(self, Self::Set(_))
    }
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct OrgSettingsArgs {
    #[arg(long)]
    pub title: Option<String>,
    /// `path` (`https://<root>/<prefix>/<product>`) or `subdomain` (`https://<product>.<root>`).
    #[arg(long)]
    pub layout: Option<String>,
    /// The published sites' domain (a URL with a scheme is kept as given for the path layout).
    #[arg(long)]
    pub root_domain: Option<String>,
    /// Path layout: the prefix before the product, e.g. `/docs`.
    #[arg(long)]
    pub path_prefix: Option<String>,
    /// The S3 bucket the organization's sites are stored in.
    #[arg(long)]
    pub bucket: Option<String>,
    #[arg(long)]
    pub s3_region: Option<String>,
    /// A non-AWS endpoint such as `http://127.0.0.1:3900`.
    #[arg(long)]
    pub s3_endpoint_url: Option<String>,
    /// `true` for path-style requests (MinIO, Ceph, Garage).
    #[arg(long)]
    pub s3_path_style: Option<bool>,
    /// Static credentials' key id (the secret from KEEPER_ORG_S3_SECRET_ACCESS_KEY); empty for
    /// the default AWS chain.
    #[arg(long)]
    pub s3_access_key_id: Option<String>,
    /// Whether uploaded objects are publicly readable.
    #[arg(long)]
    pub public_read: Option<bool>,
    /// `none`, `fastly` or `varnish`.
    #[arg(long)]
    pub cdn: Option<String>,
    /// The Fastly service (its API key from KEEPER_ORG_FASTLY_API_KEY).
    #[arg(long)]
    pub fastly_service_id: Option<String>,
    /// Comma-separated Varnish base URLs that accept `PURGE` with an `xkey` header.
    #[arg(long)]
    pub varnish_urls: Option<String>,
}

impl OrgSettingsArgs {
    fn touches_store_or_cdn(&self) -> bool {
        self.bucket.is_some()
            || self.s3_region.is_some()
            || self.s3_endpoint_url.is_some()
            || self.s3_path_style.is_some()
            || self.s3_access_key_id.is_some()
            || self.public_read.is_some()
            || self.cdn.is_some()
            || self.fastly_service_id.is_some()
            || self.varnish_urls.is_some()
    }
}

/// Secrets given for a create or update, in plain text until stored.
#[derive(Debug, Default)]
pub struct OrgSecrets {
    pub s3_secret_access_key: SecretChange,
    pub fastly_api_key: SecretChange,
}

impl OrgSecrets {
    /// What `keeper org create|update` was given: each variable that is set and not blank.
    pub fn from_env() -> Self {
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
                .map_or(SecretChange::Keep, |value| {
                    SecretChange::Set(SecretString::from(value.trim().to_owned()))
                })
        };
        Self {
            s3_secret_access_key: read(S3_SECRET_VARIABLE),
            fastly_api_key: read(FASTLY_KEY_VARIABLE),
        }
    }
}

/// A new organization's settings before any option: path layout, no bucket, no CDN.
pub fn blank_settings(slug: &str) -> OrganizationSettings {
    OrganizationSettings {
        slug: slug.to_owned(),
        title: slug.to_owned(),
        layout: UrlLayout::Path,
        root_domain: None,
        path_prefix: String::new(),
        store_kind: StoreKind::S3,
        bucket_name: String::new(),
        s3_region: None,
        s3_endpoint_url: None,
        s3_path_style: false,
        s3_access_key_id: None,
        s3_secret_access_key_encrypted: None,
        public_read: false,
        cdn_kind: CdnKind::None,
        fastly_service_id: None,
        fastly_api_key_encrypted: None,
        varnish_urls: None,
    }
}

/// `settings` changed by `args` and `secrets` (encrypted with `keys`), checked whole.
pub fn apply(
    mut settings: OrganizationSettings,
    args: &OrgSettingsArgs,
    secrets: &OrgSecrets,
    keys: Option<&EncryptionKeys>,
    surface: Surface,
) -> anyhow::Result<OrganizationSettings> {
    use secrecy::ExposeSecret;
    let touches_secrets = !matches!(secrets.s3_secret_access_key, SecretChange::Keep)
        || !matches!(secrets.fastly_api_key, SecretChange::Keep);
    let has_secrets = secrets.s3_secret_access_key.is_set() || secrets.fastly_api_key.is_set();
    if OrgBackends::is_default(&settings) && (args.touches_store_or_cdn() || touches_secrets) {
        bail!(
            "the default organization publishes with the process's store and CDN \
             (KEEPER_STORAGE_BACKEND, KEEPER_S3_*, KEEPER_CDN, ...): change those instead"
        );
    }
    let optional = |value: &Option<String>, current: &mut Option<String>| {
        if let Some(value) = value {
            let value = value.trim();
            *current = (!value.is_empty()).then(|| value.to_owned());
        }
    };
    if let Some(title) = &args.title {
        settings.title = title.trim().to_owned();
    }
    if let Some(layout) = &args.layout {
        settings.layout = UrlLayout::parse(layout.trim())
            .map_err(|err| anyhow::anyhow!("{}: {}", surface.name(Field::Layout), err.message))?;
    }
    optional(&args.root_domain, &mut settings.root_domain);
    if let Some(prefix) = &args.path_prefix {
        settings.path_prefix = prefix.trim().trim_end_matches('/').to_owned();
    }
    if let Some(bucket) = &args.bucket {
        settings.bucket_name = bucket.trim().to_owned();
    }
    optional(&args.s3_region, &mut settings.s3_region);
    optional(&args.s3_endpoint_url, &mut settings.s3_endpoint_url);
    if let Some(path_style) = args.s3_path_style {
        settings.s3_path_style = path_style;
    }
    optional(&args.s3_access_key_id, &mut settings.s3_access_key_id);
    if settings.s3_access_key_id.is_none() {
        settings.s3_secret_access_key_encrypted = None;
    }
    if let Some(public_read) = args.public_read {
        settings.public_read = public_read;
    }
    if let Some(cdn) = &args.cdn {
        settings.cdn_kind = CdnKind::parse(cdn.trim())
            .map_err(|err| anyhow::anyhow!("{}: {}", surface.name(Field::Cdn), err.message))?;
    }
    optional(&args.fastly_service_id, &mut settings.fastly_service_id);
    optional(&args.varnish_urls, &mut settings.varnish_urls);
    if matches!(secrets.s3_secret_access_key, SecretChange::Clear) {
        settings.s3_secret_access_key_encrypted = None;
    }
    if matches!(secrets.fastly_api_key, SecretChange::Clear) {
        settings.fastly_api_key_encrypted = None;
    }
    if has_secrets {
        let keys = keys.context(
            "storing a secret needs KEEPER_ENCRYPTION_KEYS (make a key with `keeper secrets \
             generate-key`); keeper never stores a secret in plain text",
        )?;
        if let SecretChange::Set(secret) = &secrets.s3_secret_access_key {
            settings.s3_secret_access_key_encrypted = Some(keys.encrypt(secret.expose_secret()));
        }
        if let SecretChange::Set(key) = &secrets.fastly_api_key {
            settings.fastly_api_key_encrypted = Some(keys.encrypt(key.expose_secret()));
        }
    }
    if served_by_keeper(&settings) && settings.path_prefix.is_empty() && args.path_prefix.is_none()
    {
        // Keeper's own URL answers its API at the root: the sites go under the slug.
        settings.path_prefix = format!("/{}", settings.slug);
    }
    check(&settings, surface).map_err(anyhow::Error::msg)?;
    Ok(settings)
}

/// The first path segments of keeper's own routes: an organization whose sites keeper itself
/// serves (path layout on keeper's own URL) cannot publish under one of them.
pub const RESERVED_PATH_PREFIXES: &[&str] = &[
    "products",
    "builds",
    "editions",
    "operations",
    "orgs",
    "users",
    "tokens",
    "token",
    "dashboards",
    "health",
    "metrics",
    "openapi.json",
    "favicon.ico",
    "uploads",
];

/// The longest text a setting may hold.
const MAX_SETTING_BYTES: usize = 1024;

/// Whether keeper's own site server answers the organization's sites: the path layout on
/// keeper's own URL (no root domain).
pub fn served_by_keeper(settings: &OrganizationSettings) -> bool {
    settings.layout == UrlLayout::Path && settings.root_domain.is_none()
}

/// Refuses settings that would publish at the same place on keeper's own URL as one of
/// `others` (every other organization): the site server could not tell them apart.
pub fn check_prefix_free(
    settings: &OrganizationSettings,
    others: &[OrganizationSettings],
    surface: Surface,
) -> Result<(), String> {
    if !served_by_keeper(settings) {
        return Ok(());
    }
    // The same prefix, or one inside the other (`/docs` and `/docs/team`): a path under both
    // could be either organization's product.
    let overlaps = |a: &str, b: &str| {
        a == b
            || a.strip_prefix(b).is_some_and(|rest| rest.starts_with('/'))
            || b.strip_prefix(a).is_some_and(|rest| rest.starts_with('/'))
    };
    match others.iter().find(|other| {
        served_by_keeper(other) && overlaps(&other.path_prefix, &settings.path_prefix)
    }) {
        Some(other) => Err(format!(
            "organization {} already publishes at {} on keeper's own URL; choose a {} that \
             neither is nor holds nor lies inside it (or a {} of its own)",
            other.slug,
            other.path_prefix,
            surface.name(Field::PathPrefix),
            surface.name(Field::RootDomain)
        )),
        None => Ok(()),
    }
}

/// What an organization's settings must hold for keeper to publish with them.
pub fn check(settings: &OrganizationSettings, surface: Surface) -> Result<(), String> {
    let name = |field| surface.name(field);
    for (what, value) in [
        ("the title", Some(settings.title.as_str())),
        (name(Field::RootDomain), settings.root_domain.as_deref()),
        (name(Field::PathPrefix), Some(settings.path_prefix.as_str())),
        (name(Field::Bucket), Some(settings.bucket_name.as_str())),
        ("the S3 region", settings.s3_region.as_deref()),
        (
            name(Field::S3EndpointUrl),
            settings.s3_endpoint_url.as_deref(),
        ),
        (
            name(Field::S3AccessKeyId),
            settings.s3_access_key_id.as_deref(),
        ),
        (
            name(Field::FastlyServiceId),
            settings.fastly_service_id.as_deref(),
        ),
        (name(Field::VarnishUrls), settings.varnish_urls.as_deref()),
    ] {
        let Some(value) = value else { continue };
        if value.len() > MAX_SETTING_BYTES {
            return Err(format!("{what} is longer than {MAX_SETTING_BYTES} bytes"));
        }
        if value.chars().any(char::is_control) {
            return Err(format!("{what} holds a control character"));
        }
    }
    let slug = &settings.slug;
    let slug_ok = !slug.is_empty()
        && slug.len() <= 64
        && slug.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if !slug_ok {
        return Err(format!(
            "{slug:?} is not an organization slug: lowercase letters, digits and single hyphens \
             inside, at most 64 characters"
        ));
    }
    if settings.title.is_empty() {
        return Err("the title must not be empty".into());
    }
    if settings.layout == UrlLayout::Subdomain && settings.root_domain.is_none() {
        return Err(format!(
            "the subdomain layout needs {}",
            name(Field::RootDomain)
        ));
    }
    if !settings.path_prefix.is_empty() && !settings.path_prefix.starts_with('/') {
        return Err(format!(
            "{} must start with / (e.g. /docs)",
            name(Field::PathPrefix)
        ));
    }
    if served_by_keeper(settings) {
        let first = settings
            .path_prefix
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        if first.is_empty() {
            return Err(format!(
                "on keeper's own URL (no {}) the sites need a {} such as /docs: keeper's API \
                 answers at the root",
                name(Field::RootDomain),
                name(Field::PathPrefix)
            ));
        }
        if RESERVED_PATH_PREFIXES.contains(&first) {
            return Err(format!(
                "{} /{first} is one of keeper's own routes; choose another",
                name(Field::PathPrefix)
            ));
        }
        if settings
            .path_prefix
            .split('/')
            .skip(1)
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(format!(
                "{} {:?} has an empty, . or .. segment",
                name(Field::PathPrefix),
                settings.path_prefix
            ));
        }
    }
    if OrgBackends::is_default(settings) {
        return Ok(());
    }
    // The same constructor the worker builds the bucket's client with.
    S3Config::new(S3Parts {
        bucket: &settings.bucket_name,
        region: settings.s3_region.as_deref(),
        endpoint_url: settings.s3_endpoint_url.as_deref(),
        path_style: settings.s3_path_style,
        access_key_id: settings.s3_access_key_id.clone(),
        // Only whether it is set matters here; the worker decrypts it.
        secret_access_key: settings
            .s3_secret_access_key_encrypted
            .as_ref()
            .map(|_| secrecy::SecretString::from(String::new())),
        attempt_timeout: DEFAULT_S3_ATTEMPT_TIMEOUT,
    })
    .map_err(|problem| match problem {
        S3Problem::NoBucket => format!(
            "an organization needs its own S3 bucket ({}); only the default organization uses \
             keeper's local store",
            name(Field::Bucket)
        ),
        S3Problem::Endpoint(message) => format!("{}: {message}", name(Field::S3EndpointUrl)),
        S3Problem::HalfCredentials => format!(
            "{} and its secret ({}) go together",
            name(Field::S3AccessKeyId),
            name(Field::S3Secret)
        ),
    })?;
    match settings.cdn_kind {
        CdnKind::None => {}
        CdnKind::Fastly => {
            if settings.fastly_service_id.is_none() || settings.fastly_api_key_encrypted.is_none() {
                return Err(format!(
                    "the Fastly CDN needs {} and an API key ({})",
                    name(Field::FastlyServiceId),
                    name(Field::FastlyKey)
                ));
            }
        }
        CdnKind::Varnish => {
            parse_varnish_urls(settings.varnish_urls.as_deref().unwrap_or(""))
                .map_err(|err| format!("{}: {err}", name(Field::VarnishUrls)))?;
        }
    }
    Ok(())
}

/// An organization's settings as `keeper org show` prints them: secrets only as "set".
pub fn describe(settings: &OrganizationSettings) -> String {
    let or_unset = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let secret = |value: &Option<String>| {
        if value.is_some() {
            "set (encrypted)"
        } else {
            "-"
        }
    };
    let mut lines = vec![
        ("slug", settings.slug.clone()),
        ("title", settings.title.clone()),
        ("layout", settings.layout.to_string()),
        ("root_domain", or_unset(&settings.root_domain)),
        ("path_prefix", settings.path_prefix.clone()),
    ];
    if OrgBackends::is_default(settings) {
        lines.push((
            "store and cdn",
            "the process's (KEEPER_STORAGE_*, KEEPER_CDN*)".into(),
        ));
    } else {
        lines.extend([
            ("bucket", settings.bucket_name.clone()),
            ("s3_region", or_unset(&settings.s3_region)),
            ("s3_endpoint_url", or_unset(&settings.s3_endpoint_url)),
            ("s3_path_style", settings.s3_path_style.to_string()),
            ("s3_access_key_id", or_unset(&settings.s3_access_key_id)),
            (
                "s3_secret_access_key",
                secret(&settings.s3_secret_access_key_encrypted).into(),
            ),
            ("public_read", settings.public_read.to_string()),
            ("cdn", settings.cdn_kind.to_string()),
            ("fastly_service_id", or_unset(&settings.fastly_service_id)),
            (
                "fastly_api_key",
                secret(&settings.fastly_api_key_encrypted).into(),
            ),
            ("varnish_urls", or_unset(&settings.varnish_urls)),
        ]);
    }
    lines
        .into_iter()
        .map(|(name, value)| format!("{name}: {value}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_org() -> OrganizationSettings {
        OrganizationSettings {
            bucket_name: "acme-docs".into(),
            path_prefix: "/acme".into(),
            ..blank_settings("acme")
        }
    }

    fn keys() -> EncryptionKeys {
        EncryptionKeys::parse(&EncryptionKeys::generate_key()).unwrap()
    }

    #[test]
    fn the_default_organization_keeps_the_process_store_and_cdn() {
        let default = OrganizationSettings {
            store_kind: StoreKind::Local,
            ..blank_settings("default")
        };
        let args = OrgSettingsArgs {
            bucket: Some("elsewhere".into()),
            ..OrgSettingsArgs::default()
        };
        let err = apply(
            default.clone(),
            &args,
            &OrgSecrets::default(),
            None,
            Surface::Cli,
        )
        .unwrap_err();
        assert!(err.to_string().contains("KEEPER_STORAGE_BACKEND"), "{err}");
        let title = OrgSettingsArgs {
            title: Some("Docs".into()),
            path_prefix: Some("/handbook/".into()),
            ..OrgSettingsArgs::default()
        };
        let changed = apply(default, &title, &OrgSecrets::default(), None, Surface::Cli).unwrap();
        assert_eq!(
            (changed.title.as_str(), changed.path_prefix.as_str()),
            ("Docs", "/handbook")
        );
    }

    #[test]
    fn secrets_are_never_stored_without_a_key_nor_in_plain_text() {
        let args = OrgSettingsArgs {
            s3_access_key_id: Some("AKIA".into()),
            ..OrgSettingsArgs::default()
        };
        let secrets = OrgSecrets {
            s3_secret_access_key: SecretChange::Set("plain-secret".into()),
            fastly_api_key: SecretChange::Keep,
        };
        let err = apply(s3_org(), &args, &secrets, None, Surface::Cli).unwrap_err();
        assert!(err.to_string().contains("KEEPER_ENCRYPTION_KEYS"), "{err}");
        let keys = keys();
        let stored = apply(s3_org(), &args, &secrets, Some(&keys), Surface::Cli).unwrap();
        let token = stored.s3_secret_access_key_encrypted.unwrap();
        assert!(!token.contains("plain-secret"));
        use secrecy::ExposeSecret;
        assert_eq!(
            keys.decrypt(&token).unwrap().expose_secret(),
            "plain-secret"
        );
        // A key id without its secret is half a credential.
        let err = apply(
            s3_org(),
            &args,
            &OrgSecrets::default(),
            Some(&keys),
            Surface::Cli,
        )
        .unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
    }

    #[test]
    fn incomplete_settings_are_refused_with_what_is_missing() {
        let refused = |settings: OrganizationSettings, needle: &str| {
            let err = check(&settings, Surface::Cli).unwrap_err();
            assert!(err.contains(needle), "{err} lacks {needle}");
        };
        refused(
            OrganizationSettings {
                path_prefix: "/acme".into(),
                ..blank_settings("acme")
            },
            "--bucket",
        );
        refused(blank_settings("acme"), "--path-prefix such as /docs");
        refused(
            OrganizationSettings {
                cdn_kind: CdnKind::Fastly,
                fastly_service_id: Some("svc".into()),
                ..s3_org()
            },
            "KEEPER_ORG_FASTLY_API_KEY",
        );
        refused(
            OrganizationSettings {
                cdn_kind: CdnKind::Varnish,
                ..s3_org()
            },
            "no Varnish URL",
        );
        refused(
            OrganizationSettings {
                layout: UrlLayout::Subdomain,
                ..s3_org()
            },
            "--root-domain",
        );
        refused(blank_settings("Acme Corp"), "not an organization slug");
        refused(
            OrganizationSettings {
                path_prefix: "/users".into(),
                ..s3_org()
            },
            "one of keeper's own routes",
        );
        // An unknown CDN or layout cannot reach the settings: the option is refused.
        for (args, needle) in [
            (
                OrgSettingsArgs {
                    cdn: Some("akamai".into()),
                    ..OrgSettingsArgs::default()
                },
                "expected none, fastly or varnish",
            ),
            (
                OrgSettingsArgs {
                    layout: Some("flat".into()),
                    ..OrgSettingsArgs::default()
                },
                "expected subdomain or path",
            ),
        ] {
            let err =
                apply(s3_org(), &args, &OrgSecrets::default(), None, Surface::Cli).unwrap_err();
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
        assert_eq!(check(&s3_org(), Surface::Cli), Ok(()));
        // Over HTTP the same rules name the JSON fields.
        let err = check(
            &OrganizationSettings {
                path_prefix: "/acme".into(),
                ..blank_settings("acme")
            },
            Surface::Http,
        )
        .unwrap_err();
        assert!(err.contains("(bucket_name)"), "{err}");
    }

    #[test]
    fn a_secret_is_cleared_on_request_and_only_then() {
        let keys = keys();
        let args = OrgSettingsArgs {
            cdn: Some("fastly".into()),
            fastly_service_id: Some("svc".into()),
            ..OrgSettingsArgs::default()
        };
        let secrets = OrgSecrets {
            fastly_api_key: SecretChange::Set("key".into()),
            ..OrgSecrets::default()
        };
        let stored = apply(s3_org(), &args, &secrets, Some(&keys), Surface::Http).unwrap();
        assert!(stored.fastly_api_key_encrypted.is_some());
        let kept = apply(
            stored.clone(),
            &OrgSettingsArgs::default(),
            &OrgSecrets::default(),
            None,
            Surface::Http,
        )
        .unwrap();
        assert_eq!(
            kept.fastly_api_key_encrypted,
            stored.fastly_api_key_encrypted
        );
        // Clearing the key of a Fastly organization leaves it incomplete: refused.
        let clear = OrgSecrets {
            fastly_api_key: SecretChange::Clear,
            ..OrgSecrets::default()
        };
        let err = apply(
            stored.clone(),
            &OrgSettingsArgs::default(),
            &clear,
            None,
            Surface::Http,
        )
        .unwrap_err();
        assert!(err.to_string().contains("fastly_api_key"), "{err}");
        let no_cdn = OrgSettingsArgs {
            cdn: Some("none".into()),
            ..OrgSettingsArgs::default()
        };
        let cleared = apply(stored, &no_cdn, &clear, None, Surface::Http).unwrap();
        assert!(cleared.fastly_api_key_encrypted.is_none());
    }

    #[test]
    fn show_never_prints_a_secret() {
        let keys = keys();
        let settings = OrganizationSettings {
            s3_access_key_id: Some("AKIA".into()),
            s3_secret_access_key_encrypted: Some(keys.encrypt("plain-secret")),
            ..s3_org()
        };
        let shown = describe(&settings);
        assert!(
            shown.contains("s3_secret_access_key: set (encrypted)"),
            "{shown}"
        );
        assert!(!shown.contains(settings.s3_secret_access_key_encrypted.as_deref().unwrap()));
    }
}
