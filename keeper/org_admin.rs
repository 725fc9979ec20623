//! `keeper org ...` (organizations: where their products are published, and the bucket and CDN
//! they publish with) and `keeper secrets ...` (the keys of secrets at rest). Secrets are read
//! from the environment, never from arguments (which `ps` shows), and stored encrypted. The
//! rules themselves are `org_settings`, which `/orgs/` shares.

use anyhow::Context;
use clap::Subcommand;

use crate::backends::OrgBackends;
use crate::crypto::EncryptionKeys;
use crate::db::models::OrganizationSettings;
use crate::db::organization_admins::{every_grant, grant, revoke};
use crate::db::organizations::{
    find_organization_settings_by_slug, insert_organization, list_organization_settings,
    update_organization, update_organization_secrets,
};
use crate::db::users::find_user;
use crate::db::DbConnection;
pub use crate::org_settings::{
    apply, blank_settings, describe, OrgSecrets, OrgSettingsArgs, SecretChange, Surface,
    FASTLY_KEY_VARIABLE, S3_SECRET_VARIABLE,
};

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
    /// Grant a user the permission admin_org: read and change the organization's settings over
    /// HTTP (`/orgs/<slug>`). With --all instead of an organization: every organization, the
    /// creation of new ones, and granting others.
    Grant {
        username: String,
        /// The organization's slug.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        org: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Take a grant of admin_org back (the same arguments as `grant`).
    Revoke {
        username: String,
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        org: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// List who holds admin_org, and for which organizations.
    Admins,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Print a new random encryption key for KEEPER_ENCRYPTION_KEYS.
    GenerateKey,
    /// Re-encrypt every stored secret with the first key of KEEPER_ENCRYPTION_KEYS, so that the
    /// others can be dropped. All or nothing: a secret no key decrypts stops it unchanged.
    Rotate,
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
            let new = apply(
                blank_settings(&slug),
                &settings,
                secrets,
                keys,
                Surface::Cli,
            )?;
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
            let changed = apply(current, &settings, secrets, keys, Surface::Cli)?;
            update_organization(conn, id, &changed).context("storing the organization")?;
            println!("updated organization {slug}");
        }
        OrgCommand::Grant { username, org, all } => {
            let (user_id, organization) = grantee(conn, &username, org.as_deref(), all)?;
            let what = org.map_or("every organization".to_owned(), |slug| {
                format!("organization {slug}")
            });
            if grant(conn, user_id, organization)? {
                println!("granted {username} admin_org on {what}");
            } else {
                println!("{username} already holds admin_org on {what}");
            }
        }
        OrgCommand::Revoke { username, org, all } => {
            let (user_id, organization) = grantee(conn, &username, org.as_deref(), all)?;
            let what = org.map_or("every organization".to_owned(), |slug| {
                format!("organization {slug}")
            });
            if revoke(conn, user_id, organization)? {
                println!("revoked admin_org on {what} from {username}");
            } else {
                println!("{username} did not hold admin_org on {what}");
            }
        }
        OrgCommand::Admins => {
            for (username, org) in every_grant(conn)? {
                println!(
                    "{username}\t{}",
                    org.as_deref().unwrap_or("(every organization)")
                );
            }
        }
    }
    Ok(())
}

/// The user's id and the organization's (`None` for `--all`).
fn grantee(
    conn: &mut DbConnection,
    username: &str,
    org: Option<&str>,
    all: bool,
) -> anyhow::Result<(i64, Option<i64>)> {
    let name = crate::domain::Username::parse(username).map_err(|err| anyhow::anyhow!("{err}"))?;
    let user =
        find_user(conn, &name)?.with_context(|| format!("there is no user named {username}"))?;
    let organization = match (org, all) {
        (Some(slug), false) => Some(find(conn, slug)?.0),
        (None, true) => None,
        _ => anyhow::bail!("name an organization, or --all for every one"),
    };
    Ok((user.id, organization))
}

fn find(conn: &mut DbConnection, slug: &str) -> anyhow::Result<(i64, OrganizationSettings)> {
    use diesel::OptionalExtension;
    find_organization_settings_by_slug(conn, slug)
        .optional()?
        .with_context(|| format!("there is no organization named {slug}"))
}

/// What `keeper secrets rotate` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Secrets re-encrypted with the first key.
    pub reencrypted: usize,
    /// Secrets already encrypted with it.
    pub current: usize,
}

/// Re-encrypts every stored secret (organizations' and webhooks') with the first key, in one
/// transaction: a secret that no key decrypts stops the rotation with nothing changed.
pub fn rotate(conn: &mut DbConnection, keys: &EncryptionKeys) -> anyhow::Result<Rotation> {
    conn.write_transaction(|conn| {
        let mut rotation = Rotation::default();
        for (id, settings) in list_organization_settings(conn)? {
            let mut rotate_one = |column: &str,
                                  token: &Option<String>|
             -> anyhow::Result<Option<String>> {
                let Some(token) = token else { return Ok(None) };
                let what = || format!("organization {}: its {column}", settings.slug);
                Ok(Some(
                    reencrypted(keys, &mut rotation, token, what)?.unwrap_or_else(|| token.clone()),
                ))
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
        for webhook in crate::db::webhooks::list_webhooks(conn)? {
            let what = || format!("webhook {}: its signing secret", webhook.id);
            if let Some(token) = reencrypted(keys, &mut rotation, &webhook.secret_encrypted, what)?
            {
                crate::db::webhooks::set_secret(conn, webhook.id, &token)?;
            }
        }
        Ok(rotation)
    })
}

/// `token` encrypted with the first key; `None` when it already is. Counted in `rotation`;
/// `what` names the secret when no key decrypts it.
fn reencrypted(
    keys: &EncryptionKeys,
    rotation: &mut Rotation,
    token: &str,
    what: impl FnOnce() -> String,
) -> anyhow::Result<Option<String>> {
    use secrecy::ExposeSecret;
    if keys.is_current(token) {
        rotation.current += 1;
        return Ok(None);
    }
    let plain = keys.decrypt(token).with_context(what)?;
    rotation.reencrypted += 1;
    Ok(Some(keys.encrypt(plain.expose_secret())))
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
