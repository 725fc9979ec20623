//! `keeper org ...` (organizations: where their products are published, and the bucket and CDN
//! they publish with) and `keeper secrets ...` (the keys of secrets at rest). Secrets are read
//! from the environment, never from arguments (which `ps` shows), and stored encrypted.

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::backends::OrgBackends;
use crate::config::{parse_varnish_urls, S3Config, S3Parts, S3Problem, DEFAULT_S3_ATTEMPT_TIMEOUT};
use crate::crypto::EncryptionKeys;
use crate::db::models::OrganizationSettings;
use crate::db::organizations::{
    find_organization_settings_by_slug, insert_organization, list_organization_settings,
    update_organization, update_organization_secrets,
};
use crate::db::DbConnection;
use crate::domain::{CdnKind, StoreKind, UrlLayout};

/// Where `keeper org create|update` read an organization's S3 secret access key.
pub const S3_SECRET_VARIABLE: &str = "KEEPER_ORG_S3_SECRET_ACCESS_KEY";
/// Where `keeper org create|update` read an organization's Fastly API key.
pub const FASTLY_KEY_VARIABLE: &str = "KEEPER_ORG_FASTLY_API_KEY";

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// List organizations.
    List,
    /// Print an organization's settings (secrets only as "set").
    Show { slug: String },
    /// Create an organization. Its S3 secret access key and Fastly API key are read from
    /// KEEPER_ORG_S3_SECRET_ACCESS_KEY and KEEPER_ORG_FASTLY_API_KEY and stored encrypted with
    /// KEEPER_ENCRYPTION_KEYS.
    Create {
        slug: String,
        #[command(flatten)]
        settings: OrgSettingsArgs,
    },
    /// Change an organization's settings; what is not given stays. An empty value clears an
    /// optional setting. Secrets as for `create`.
    Update {
        slug: String,
        #[command(flatten)]
        settings: OrgSettingsArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Print a new random encryption key for KEEPER_ENCRYPTION_KEYS.
    GenerateKey,
    /// Re-encrypt every stored secret with the first key of KEEPER_ENCRYPTION_KEYS, so that the
    /// others can be dropped. All or nothing: a secret no key decrypts stops it unchanged.
    Rotate,
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
#[derive(Default)]
pub struct OrgSecrets {
    pub s3_secret_access_key: Option<secrecy::SecretString>,
    pub fastly_api_key: Option<secrecy::SecretString>,
}

impl OrgSecrets {
    pub fn from_env() -> Self {
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
                .map(|value| secrecy::SecretString::from(value.trim().to_owned()))
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
) -> anyhow::Result<OrganizationSettings> {
    use secrecy::ExposeSecret;
    let has_secrets = secrets.s3_secret_access_key.is_some() || secrets.fastly_api_key.is_some();
    if OrgBackends::is_default(&settings) && (args.touches_store_or_cdn() || has_secrets) {
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
            .map_err(|err| anyhow::anyhow!("--layout: {}", err.message))?;
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
        settings.cdn_kind =
            CdnKind::parse(cdn.trim()).map_err(|err| anyhow::anyhow!("--cdn: {}", err.message))?;
    }
    optional(&args.fastly_service_id, &mut settings.fastly_service_id);
    optional(&args.varnish_urls, &mut settings.varnish_urls);
    if has_secrets {
        let keys = keys.context(
            "storing a secret needs KEEPER_ENCRYPTION_KEYS (make a key with `keeper secrets \
             generate-key`); keeper never stores a secret in plain text",
        )?;
        if let Some(secret) = &secrets.s3_secret_access_key {
            settings.s3_secret_access_key_encrypted = Some(keys.encrypt(secret.expose_secret()));
        }
        if let Some(key) = &secrets.fastly_api_key {
            settings.fastly_api_key_encrypted = Some(keys.encrypt(key.expose_secret()));
        }
    }
    check(&settings).map_err(anyhow::Error::msg)?;
    Ok(settings)
}

/// What an organization's settings must hold for keeper to publish with them.
pub fn check(settings: &OrganizationSettings) -> Result<(), String> {
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
        return Err("the subdomain layout needs --root-domain".into());
    }
    if !settings.path_prefix.is_empty() && !settings.path_prefix.starts_with('/') {
        return Err("--path-prefix must start with / (e.g. /docs)".into());
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
        S3Problem::NoBucket => "an organization needs its own S3 bucket (--bucket); only the \
                                default organization uses keeper's local store"
            .to_owned(),
        S3Problem::Endpoint(message) => format!("--s3-endpoint-url: {message}"),
        S3Problem::HalfCredentials => {
            format!("--s3-access-key-id and its secret ({S3_SECRET_VARIABLE}) go together")
        }
    })?;
    match settings.cdn_kind {
        CdnKind::None => {}
        CdnKind::Fastly => {
            if settings.fastly_service_id.is_none() || settings.fastly_api_key_encrypted.is_none() {
                return Err(format!(
                    "the Fastly CDN needs --fastly-service-id and an API key ({FASTLY_KEY_VARIABLE})"
                ));
            }
        }
        CdnKind::Varnish => {
            parse_varnish_urls(settings.varnish_urls.as_deref().unwrap_or(""))
                .map_err(|err| format!("--varnish-urls: {err}"))?;
        }
    }
    Ok(())
}

/// Runs `keeper org ...` on `conn`, printing to standard output.
pub fn run_org(
    command: OrgCommand,
    conn: &mut DbConnection,
    keys: Option<&EncryptionKeys>,
    secrets: &OrgSecrets,
) -> anyhow::Result<()> {
    match command {
        OrgCommand::List => {
            for (_, settings) in list_organization_settings(conn)? {
                println!(
                    "{}\t{}\t{}\t{}",
                    settings.slug,
                    settings.title,
                    if OrgBackends::is_default(&settings) {
                        "process store and CDN".to_owned()
                    } else {
                        format!("s3://{} cdn={}", settings.bucket_name, settings.cdn_kind)
                    },
                    settings.layout,
                );
            }
        }
        OrgCommand::Show { slug } => {
            let (_, settings) = find(conn, &slug)?;
            print!("{}", describe(&settings));
        }
        OrgCommand::Create { slug, settings } => {
            let new = apply(blank_settings(&slug), &settings, secrets, keys)?;
            insert_organization(conn, &new).map_err(
                |err| match crate::db::violation::violation(&err) {
                    Some(crate::db::violation::Violation::Unique) => {
                        anyhow::anyhow!("an organization named {slug} already exists")
                    }
                    _ => anyhow::Error::new(err).context("storing the organization"),
                },
            )?;
            println!("created organization {slug}");
        }
        OrgCommand::Update { slug, settings } => {
            let (id, current) = find(conn, &slug)?;
            let changed = apply(current, &settings, secrets, keys)?;
            update_organization(conn, id, &changed).context("storing the organization")?;
            println!("updated organization {slug}");
        }
    }
    Ok(())
}

fn find(conn: &mut DbConnection, slug: &str) -> anyhow::Result<(i64, OrganizationSettings)> {
    use diesel::OptionalExtension;
    find_organization_settings_by_slug(conn, slug)
        .optional()?
        .with_context(|| format!("there is no organization named {slug}"))
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

/// What `keeper secrets rotate` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Secrets re-encrypted with the first key.
    pub reencrypted: usize,
    /// Secrets already encrypted with it.
    pub current: usize,
}

/// Re-encrypts every stored secret with the first key, in one transaction: a secret that no
/// key decrypts stops the rotation with nothing changed.
pub fn rotate(conn: &mut DbConnection, keys: &EncryptionKeys) -> anyhow::Result<Rotation> {
    use secrecy::ExposeSecret;
    conn.write_transaction(|conn| {
        let mut rotation = Rotation::default();
        for (id, settings) in list_organization_settings(conn)? {
            let mut rotate_one =
                |column: &str, token: &Option<String>| -> anyhow::Result<Option<String>> {
                    let Some(token) = token else { return Ok(None) };
                    if keys.is_current(token) {
                        rotation.current += 1;
                        return Ok(Some(token.clone()));
                    }
                    let plain = keys
                        .decrypt(token)
                        .with_context(|| format!("organization {}: its {column}", settings.slug))?;
                    rotation.reencrypted += 1;
                    Ok(Some(keys.encrypt(plain.expose_secret())))
                };
            let s3 = rotate_one(
                "S3 secret access key",
                &settings.s3_secret_access_key_encrypted,
            )?;
            let fastly = rotate_one("Fastly API key", &settings.fastly_api_key_encrypted)?;
            if s3 != settings.s3_secret_access_key_encrypted
                || fastly != settings.fastly_api_key_encrypted
            {
                update_organization_secrets(conn, id, s3.as_deref(), fastly.as_deref())?;
            }
        }
        Ok(rotation)
    })
}

/// Runs `keeper secrets ...`.
pub fn run_secrets(
    command: SecretsCommand,
    conn: impl FnOnce() -> anyhow::Result<crate::db::PooledConnection>,
    keys: Option<&EncryptionKeys>,
) -> anyhow::Result<()> {
    match command {
        SecretsCommand::GenerateKey => println!("{}", EncryptionKeys::generate_key()),
        SecretsCommand::Rotate => {
            let keys = keys.context("KEEPER_ENCRYPTION_KEYS is not set: nothing to rotate to")?;
            let rotation = rotate(&mut *conn()?, keys)?;
            println!(
                "re-encrypted {} secrets with the first key; {} already were",
                rotation.reencrypted, rotation.current
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_org() -> OrganizationSettings {
        OrganizationSettings {
            bucket_name: "acme-docs".into(),
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
        let err = apply(default.clone(), &args, &OrgSecrets::default(), None).unwrap_err();
        assert!(err.to_string().contains("KEEPER_STORAGE_BACKEND"), "{err}");
        let title = OrgSettingsArgs {
            title: Some("Docs".into()),
            path_prefix: Some("/handbook/".into()),
            ..OrgSettingsArgs::default()
        };
        let changed = apply(default, &title, &OrgSecrets::default(), None).unwrap();
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
            s3_secret_access_key: Some("plain-secret".into()),
            fastly_api_key: None,
        };
        let err = apply(s3_org(), &args, &secrets, None).unwrap_err();
        assert!(err.to_string().contains("KEEPER_ENCRYPTION_KEYS"), "{err}");
        let keys = keys();
        let stored = apply(s3_org(), &args, &secrets, Some(&keys)).unwrap();
        let token = stored.s3_secret_access_key_encrypted.unwrap();
        assert!(!token.contains("plain-secret"));
        use secrecy::ExposeSecret;
        assert_eq!(
            keys.decrypt(&token).unwrap().expose_secret(),
            "plain-secret"
        );
        // A key id without its secret is half a credential.
        let err = apply(s3_org(), &args, &OrgSecrets::default(), Some(&keys)).unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
    }

    #[test]
    fn incomplete_settings_are_refused_with_what_is_missing() {
        let refused = |settings: OrganizationSettings, needle: &str| {
            let err = check(&settings).unwrap_err();
            assert!(err.contains(needle), "{err} lacks {needle}");
        };
        refused(blank_settings("acme"), "--bucket");
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
            let err = apply(s3_org(), &args, &OrgSecrets::default(), None).unwrap_err();
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
        assert_eq!(check(&s3_org()), Ok(()));
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
