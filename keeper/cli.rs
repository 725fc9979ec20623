//! The command line: `keeper serve | worker | db ... | user ...`.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::auth::imported::Trust;
use crate::auth::issue::{import_token, issue_token, TokenError, TokenRequest};
use crate::auth::password::hash_password;
use crate::backends::OrgBackends;
use crate::config::Config;
use crate::crypto::EncryptionKeys;
use crate::db::organizations::find_organization_settings_by_slug;
use crate::db::settings::claim_deployment_id;
use crate::db::users::{create_user, find_user};
use crate::db::{backup, migrations};
use crate::domain::Permissions;
use crate::domain::Username;
use crate::ops::with_db;
use crate::startup::{connect, open_store, org_backends, prepare};
use crate::{recover, verify};

#[derive(Debug, Parser)]
#[command(
    name = "keeper",
    version,
    about = "LTD Keeper: documentation hosting control plane"
)]
pub struct Cli {
    /// `ltd`'s options before the subcommand (`keeper --host URL -u USER -p PASS upload ...`),
    /// so that a pipeline switches from `ltd` by changing one word. Only for `upload`.
    #[command(flatten)]
    pub ltd: LtdOptions,
    #[command(subcommand)]
    pub command: Command,
}

/// The connection options of `ltd` (ltd-conveyor), accepted before or after `upload`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LtdOptions {
    /// Keeper's URL (`ltd --host`).
    #[arg(long)]
    pub host: Option<String>,
    /// User name (`ltd -u`).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Password (`ltd -p`).
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Accepted for compatibility with `ltd`; `debug` also prints each retry's detail.
    #[arg(long, hide = true)]
    pub log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (and the operations worker, unless KEEPER_SERVE_RUNS_WORKER=false).
    Serve {
        /// Start even though the database has no product while the object store already holds
        /// objects (by default that is refused: it is what a wiped database looks like).
        #[arg(long)]
        allow_empty_database: bool,
    },
    /// Run only the operations worker.
    Worker,
    /// Inspect and change the database schema.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Manage users without the API.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens without the API.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage organizations: where their products are published, their bucket and CDN.
    Org {
        #[command(subcommand)]
        command: crate::org_admin::OrgCommand,
    },
    /// Encryption keys of the secrets stored in the database (KEEPER_ENCRYPTION_KEYS).
    Secrets {
        #[command(subcommand)]
        command: crate::org_admin::SecretsCommand,
    },
    /// Rebuild the catalogue (products, builds, editions) of an empty database from the records
    /// in the organization's bucket, keeping every id, slug and surrogate key.
    Recover {
        /// The organization whose bucket to read; `default` is the process's store
        /// (KEEPER_STORAGE_*). Create any other organization with `keeper org create` first.
        #[arg(long, default_value = "default")]
        organization: String,
        /// Print what would be created, and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check every published build against its sealed manifest, and every edition against its
    /// build's manifest; exit 1 on any difference.
    Verify {
        /// Only this product.
        #[arg(long)]
        product: Option<String>,
        /// Queue the rebuilds that fix the editions that differ (and seals for unsealed builds).
        #[arg(long)]
        repair: bool,
    },
    /// Apply the retention policy now (KEEPER_RETENTION*, or the product's own): delete the
    /// builds and stale branch editions it no longer keeps, saying why for each.
    Gc {
        /// Only this product.
        #[arg(long)]
        product: Option<String>,
        /// Print exactly what would be deleted and why, and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Take over an LTD Keeper database (1.x or a 2.0 alpha) into this keeper's empty one,
    /// keeping every id, slug and surrogate key; reports every repair. Writes nothing to the
    /// original. Its encrypted secrets (2.0) need KEEPER_ADOPT_FERNET_KEY.
    Adopt {
        /// The original's database: postgresql://... or sqlite://<path>.
        #[arg(long)]
        from: String,
        /// Print what would be imported and every repair, and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Upload a site as a new build, then confirm it (the protocol of `ltd upload`).
    Upload(UploadArgs),
}

#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    /// Keeper's URL.
    #[arg(long, env = "LTD_HOST")]
    pub host: Option<String>,
    /// User name, exchanged with the password for a token.
    #[arg(short = 'u', long, env = "LTD_USERNAME")]
    pub user: Option<String>,
    /// Password.
    #[arg(short = 'p', long, env = "LTD_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// An API token (from `POST /tokens/`) instead of a user and
    /// password.
    #[arg(long, env = "KEEPER_UPLOAD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The product to upload a build of.
    #[arg(long)]
    pub product: String,
    /// The directory holding the built site.
    #[arg(long, default_value = ".")]
    pub dir: std::path::PathBuf,
    /// Git ref, or space-separated git refs, the build was made from.
    #[arg(long)]
    pub git_ref: Option<String>,
    /// Take the git ref from the GitHub Actions environment (GITHUB_REF, GITHUB_HEAD_REF).
    #[arg(long)]
    pub gh: bool,
    /// Uploads in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Extra attempts for a failed request (network error, 5xx, 408, 429), with backoff.
    #[arg(long, default_value_t = 4)]
    pub retries: u32,
    /// Delay before the first retry, in milliseconds (doubled each time, with jitter).
    #[arg(long, default_value_t = 250)]
    pub retry_delay_ms: u64,
    /// Scan the site and report what would be uploaded; contact no server.
    #[arg(long)]
    pub dry_run: bool,
    /// Do nothing (as `ltd upload --skip`, or LTD_SKIP_UPLOAD=true).
    #[arg(long, env = "LTD_SKIP_UPLOAD", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub skip: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user. The token goes to standard output, once; keeper keeps
    /// only its hash.
    Create(TokenArgs),
    /// Keep a token a user already has working (one CI holds from the system keeper replaces):
    /// read from standard input, never from the command line, and hashed slowly (argon2id)
    /// unless --trusted says it was generated with at least 128 random bits.
    Import {
        #[command(flatten)]
        token: TokenArgs,
        /// The token is machine-generated and random (32 characters or more): store a fast
        /// hash, as for keeper's own tokens, instead of a slow one.
        #[arg(long)]
        trusted: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[arg(long)]
    username: String,
    /// What the token is for, e.g. github-actions.
    #[arg(long)]
    name: String,
    /// Comma-separated subset of the user's permissions; default all of them.
    #[arg(long)]
    permissions: Option<String>,
    /// Comma-separated product slugs the token is limited to; default every product.
    #[arg(long, value_delimiter = ',')]
    products: Vec<String>,
    /// Days until the token expires; default never.
    #[arg(long)]
    expires_in_days: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply every pending migration.
    Upgrade,
    /// Print applied and pending migrations.
    Status,
    /// Revert the newest STEPS migrations (this drops the tables and data they created).
    Downgrade {
        /// How many migrations to revert.
        steps: usize,
    },
    /// Write a consistent snapshot of the whole database to FILE (JSON, readable by its owner
    /// only: it holds password and token hashes), while keeper keeps serving.
    Backup {
        /// Where to write it; an existing file is replaced only once the snapshot is complete.
        file: std::path::PathBuf,
    },
    /// Load a backup into an empty database (of either backend), migrating it forward if it is
    /// older than this keeper.
    Restore {
        /// A file written by `keeper db backup`.
        file: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is asked for on the terminal, or read from standard input.
    Create {
        #[arg(long)]
        username: String,
        /// Comma-separated: admin_user, admin_product, admin_edition, upload_build,
        /// deprecate_build; or all.
        #[arg(long, default_value = "none")]
        permissions: String,
        /// Read the password from the first line of standard input instead of a prompt.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Parses the command line, runs the command, and turns an error into a message and exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Upload(args) = cli.command {
        // A client: no server configuration, no server logs.
        return match run_upload(&cli.ltd, args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("keeper upload: error: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.ltd.host.is_some() || cli.ltd.user.is_some() || cli.ltd.password.is_some() {
        eprintln!("keeper: --host, --user and --password only apply to `keeper upload`");
        return ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("keeper: {err}");
            return ExitCode::from(2);
        }
    };
    // Read here as well as where they are used, so that a malformed list stops every command
    // at once, like any other variable that does not parse.
    if let Err(err) = EncryptionKeys::from_config(&config.organizations) {
        eprintln!("keeper: environment variable KEEPER_ENCRYPTION_KEYS: {err}");
        return ExitCode::from(2);
    }
    crate::telemetry::init(&config.log);
    match run(cli.command, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("keeper: {err:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            allow_empty_database,
        } => actix_web::rt::System::new().block_on(crate::server::serve(
            config,
            crate::server::ServeOptions {
                allow_empty_database,
            },
        )),
        Command::Worker => actix_web::rt::System::new().block_on(crate::worker::run(config)),
        Command::Db { command } => run_db(command, &config),
        Command::User { command } => run_user(command, &config),
        Command::Token { command } => run_token(command, &config),
        Command::Org { command } => {
            let mut conn = prepare(&config)?
                .pool
                .get()
                .context("connecting to the database")?;
            crate::org_admin::run_org(
                command,
                &mut conn,
                EncryptionKeys::from_config(&config.organizations)?.as_ref(),
                &crate::org_admin::OrgSecrets::from_env(),
            )
        }
        Command::Secrets { command } => crate::org_admin::run_secrets(
            command,
            || {
                prepare(&config)?
                    .pool
                    .get()
                    .context("connecting to the database")
            },
            EncryptionKeys::from_config(&config.organizations)?.as_ref(),
        ),
        Command::Recover {
            organization,
            dry_run,
        } => block_on(run_recover(&config, &organization, dry_run)),
        Command::Verify { product, repair } => {
            block_on(run_verify(&config, product.as_deref(), repair))
        }
        Command::Gc { product, dry_run } => {
            let mut conn = prepare(&config)?
                .pool
                .get()
                .context("connecting to the database")?;
            let public_url = config.http.public_url_for(config.http.bind);
            let report = crate::ops::retention::gc(
                &mut conn,
                &config.worker.retention,
                product.as_deref(),
                dry_run,
                public_url.as_str().trim_end_matches('/'),
            )?;
            print!("{report}");
            Ok(())
        }
        Command::Adopt { from, dry_run } => {
            let report = crate::adopt::run(
                &config,
                &crate::adopt::AdoptOptions {
                    from,
                    dry_run,
                    source_fernet_key: std::env::var("KEEPER_ADOPT_FERNET_KEY")
                        .ok()
                        .filter(|key| !key.trim().is_empty())
                        .map(SecretString::from),
                },
            )?;
            print!("{report}");
            Ok(())
        }
        Command::Upload(args) => run_upload(&LtdOptions::default(), args),
    }
}

/// Runs `work` on a multi-threaded runtime (the storage pipelines spawn tasks).
fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(work: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(work)
}

async fn run_recover(config: &Config, organization: &str, dry_run: bool) -> anyhow::Result<()> {
    let prepared = prepare(config)?;
    let slug = organization.to_owned();
    let pool = prepared.pool.clone();
    let (organization_id, settings) = with_db(&pool, move |conn| {
        find_organization_settings_by_slug(conn, &slug).with_context(|| {
            format!("no organization named {slug:?} (create it first with `keeper org create`)")
        })
    })
    .await?;
    let store = if OrgBackends::is_default(&settings) {
        open_store(config).await?
    } else {
        org_backends(config)?
            .for_organization(&settings)
            .await?
            .store
    };
    let found = recover::read_records(&store).await?;
    let deployment = if OrgBackends::is_default(&settings) {
        recover::store_deployment(store.as_ref()).await?
    } else {
        None
    };
    let summary = with_db(&pool, move |conn| {
        let summary = recover::apply(conn, &found, organization_id, dry_run)?;
        // The recovered database is the store's deployment again.
        if let (Some(id), false) = (&deployment, dry_run) {
            claim_deployment_id(conn, id)?;
        }
        Ok((summary, found))
    })
    .await;
    let (summary, found) = summary?;
    let verb = if dry_run { "would create" } else { "created" };
    for table in recover::TABLES {
        println!(
            "{table}: {verb} {}, {} already present",
            summary.created.get(table).copied().unwrap_or(0),
            summary.present.get(table).copied().unwrap_or(0)
        );
    }
    for slug in found.product_slugs() {
        println!("product {slug}");
    }
    if found.count("products") == 0 {
        println!(
            "the bucket holds no catalogue records under {}: nothing to recover",
            keeper_prefix()
        );
    } else if !summary.created_any() {
        println!("nothing to do: the database already holds every recorded row");
    }
    println!(
        "users and API tokens are not kept in the bucket: create an administrator with \
         `keeper user create --username admin --permissions all` (or KEEPER_BOOTSTRAP_USER)"
    );
    Ok(())
}

fn keeper_prefix() -> &'static str {
    crate::domain::RESERVED_PREFIX
}

async fn run_verify(config: &Config, product: Option<&str>, repair: bool) -> anyhow::Result<()> {
    let prepared = prepare(config)?;
    // Opening the local store also removes the temporary files killed writes left behind.
    let store = open_store(config).await?;
    let verifier = verify::Verifier {
        pool: prepared.pool.clone(),
        store,
        organizations: org_backends(config)?,
        concurrency: config.worker.copy_concurrency,
    };
    let report = verifier.run(product, repair).await?;
    for difference in &report.differences {
        println!("{difference}");
    }
    for queued in &report.queued {
        println!("queued {queued}");
    }
    println!(
        "checked {} products, {} builds, {} editions, {} objects: {} differences",
        report.products,
        report.builds,
        report.editions,
        report.objects,
        report.differences.len()
    );
    if report.differences.is_empty() {
        Ok(())
    } else if repair {
        anyhow::bail!(
            "{} differences; queued {} operations to repair what can be repaired (run \
             `keeper verify` again once the worker has run them)",
            report.differences.len(),
            report.queued.len()
        )
    } else {
        anyhow::bail!(
            "{} differences; `keeper verify --repair` queues the rebuilds that fix editions",
            report.differences.len()
        )
    }
}

fn run_token(command: TokenCommand, config: &Config) -> anyhow::Result<()> {
    let (args, import) = match command {
        TokenCommand::Create(args) => (args, None),
        TokenCommand::Import { token, trusted } => {
            let trust = if trusted {
                Trust::Trusted
            } else {
                Trust::Untrusted
            };
            (token, Some(trust))
        }
    };
    let secret = match import {
        Some(_) => Some(read_token_from_stdin()?),
        None => None,
    };
    let username = Username::parse(&args.username).map_err(anyhow::Error::msg)?;
    let mut conn = prepare(config)?
        .pool
        .get()
        .context("connecting to the database")?;
    let user = find_user(&mut conn, &username)?
        .ok_or_else(|| anyhow::anyhow!("there is no user named {username}"))?;
    let request = TokenRequest {
        name: args.name,
        permissions: args
            .permissions
            .map(|list| list.split(',').map(|p| p.trim().to_owned()).collect()),
        products: args.products,
        expires_in_days: args.expires_in_days,
    };
    let owner = Permissions::from_bits(user.permissions).unwrap_or_default();
    let refused = |err: TokenError| match err {
        TokenError::Database(err) => anyhow::Error::new(err).context("storing the token"),
        refused => anyhow::anyhow!("{refused}"),
    };
    match (import, secret) {
        (Some(trust), Some(secret)) => {
            let token = import_token(&mut conn, user.id, owner, &request, &secret, trust)
                .map_err(refused)?;
            eprintln!(
                "imported API token {} ({:?}) for {username}, stored as a {} hash; send it as \
                 before (Basic `<token>:`, Basic `__token__:<token>` or Bearer)",
                token.id,
                token.name,
                if trust == Trust::Trusted {
                    "fast (SHA-256)"
                } else {
                    "slow (argon2id)"
                }
            );
        }
        _ => {
            let (token, secret) =
                issue_token(&mut conn, user.id, owner, &request).map_err(refused)?;
            eprintln!(
                "created API token {} ({:?}) for {username}; it is shown once, below:",
                token.id, token.name
            );
            println!("{secret}");
        }
    }
    Ok(())
}

/// The token of `keeper token import`: the first line of standard input, so that it never
/// appears in a process list or a shell history.
fn read_token_from_stdin() -> anyhow::Result<SecretString> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the token from standard input")?;
    let token = line.trim_end_matches(['\r', '\n']).to_owned();
    if token.is_empty() {
        anyhow::bail!(
            "no token on standard input: pipe it in, e.g. keeper token import ... < token.txt"
        );
    }
    Ok(SecretString::from(token))
}

/// `keeper upload`: the options after `upload` win over `ltd`'s before it.
fn run_upload(ltd: &LtdOptions, args: UploadArgs) -> anyhow::Result<()> {
    if args.skip {
        println!("keeper upload: skipped (--skip or LTD_SKIP_UPLOAD)");
        return Ok(());
    }
    let settings = upload_settings(ltd, args, |name| std::env::var(name).ok())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if !settings.dry_run {
        let mut shown = settings.host.clone();
        if shown.password().is_some() {
            // Setting a password cannot fail on a URL that already has one.
            let _ = shown.set_password(Some("***"));
        }
        eprintln!(
            "keeper upload: {} -> product {} at {shown} (git refs: {})",
            settings.dir.display(),
            settings.product,
            settings.git_refs.join(" ")
        );
    }
    let summary = runtime.block_on(crate::client::upload(&settings))?;
    println!("keeper upload: {summary}");
    Ok(())
}

/// The upload's settings from the options (`env` looks up GitHub Actions' variables for `--gh`).
pub fn upload_settings(
    ltd: &LtdOptions,
    args: UploadArgs,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<crate::client::UploadSettings> {
    use crate::client::{Credentials, UploadSettings};
    let host = args.host.or_else(|| ltd.host.clone()).context(
        "no keeper URL: pass --host (or set LTD_HOST), e.g. --host http://127.0.0.1:8080",
    )?;
    let host = url::Url::parse(&host).with_context(|| format!("--host {host:?} is not a URL"))?;
    if !matches!(host.scheme(), "http" | "https") {
        bail!("--host must be an http or https URL, got {host}");
    }
    let user = args.user.or_else(|| ltd.user.clone());
    let password = args.password.or_else(|| ltd.password.clone());
    let credentials = match (args.token, user, password) {
        (Some(token), _, _) => Credentials::Token(SecretString::from(token)),
        (None, Some(username), Some(password)) => Credentials::Password {
            username,
            password: SecretString::from(password),
        },
        (None, Some(_), None) => bail!("no password: pass -p/--password or set LTD_PASSWORD"),
        (None, None, _) => bail!(
            "no credentials: pass -u USER -p PASSWORD (or LTD_USERNAME, LTD_PASSWORD), or --token"
        ),
    };
    let git_refs = match (args.git_ref, args.gh) {
        (Some(refs), _) => refs.split_whitespace().map(str::to_owned).collect(),
        (None, true) => crate::client::github_actions_refs(env)?,
        (None, false) => bail!("--git-ref is required (or --gh in GitHub Actions)"),
    };
    Ok(UploadSettings {
        host,
        credentials,
        product: args.product,
        dir: args.dir,
        git_refs,
        jobs: usize::from(args.jobs),
        retries: args.retries,
        backoff: std::time::Duration::from_millis(args.retry_delay_ms),
        dry_run: args.dry_run,
    })
}

fn run_db(command: DbCommand, config: &Config) -> anyhow::Result<()> {
    let mut conn = connect(config)?;
    match command {
        DbCommand::Upgrade => {
            let applied = migrations::upgrade(&mut conn)?;
            if applied.is_empty() {
                println!("already up to date");
            }
            for version in applied {
                println!("applied {version}");
            }
        }
        DbCommand::Status => {
            let status = migrations::status(&mut conn)?;
            println!("database: {}", config.database.url.redacted());
            for (migration, applied) in &status.known {
                let state = if *applied { "applied" } else { "pending" };
                println!("{state:8} {}", migration.name);
            }
            for version in &status.unknown_applied {
                println!("unknown  {version} (applied by a newer keeper)");
            }
            println!(
                "database version {}, binary version {}, {} pending",
                status.database_version().unwrap_or("none"),
                status.binary_version(),
                status.pending().len()
            );
        }
        DbCommand::Downgrade { steps } => {
            for version in migrations::downgrade(&mut conn, steps)? {
                println!("reverted {version}");
            }
        }
        DbCommand::Backup { file } => {
            let snapshot = backup::take(&mut conn)?;
            write_private_file(&file, &serde_json::to_vec_pretty(&snapshot)?)
                .with_context(|| format!("writing {}", file.display()))?;
            println!(
                "wrote {} rows of {} (schema version {}) to {}",
                snapshot.row_count(),
                config.database.url.redacted(),
                snapshot.schema_version,
                file.display()
            );
        }
        DbCommand::Restore { file } => {
            let raw =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let snapshot: backup::Backup = serde_json::from_slice(&raw)
                .with_context(|| format!("{} is not a keeper backup", file.display()))?;
            let restored = backup::restore(&mut conn, &snapshot).with_context(|| {
                format!(
                    "restoring {} into {}",
                    file.display(),
                    config.database.url.redacted()
                )
            })?;
            for (table, rows) in &restored.rows {
                println!("{table}: {rows} rows");
            }
            for version in &restored.migrated {
                println!("applied {version}");
            }
            println!(
                "restored the backup of {} (schema version {})",
                snapshot.taken_at, snapshot.schema_version
            );
        }
    }
    Ok(())
}

fn run_user(command: UserCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            username,
            permissions,
            password_stdin,
        } => {
            let username = Username::parse(&username).map_err(anyhow::Error::msg)?;
            let permissions = Permissions::parse_list(&permissions).map_err(anyhow::Error::msg)?;
            let password = read_password(password_stdin)?;
            let hash = hash_password(&password)?;
            let mut conn = prepare(config)?
                .pool
                .get()
                .context("connecting to the database")?;
            let user =
                create_user(&mut conn, &username, &hash, permissions).map_err(|err| match err {
                    diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    ) => anyhow::anyhow!("a user named {username} already exists"),
                    other => anyhow::Error::new(other).context("creating the user"),
                })?;
            println!(
                "created user {} (id {}) with permissions {}",
                user.username, user.id, permissions
            );
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file beside it, readable and writable by its
/// owner only, renamed into place once complete.
fn write_private_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

fn read_password(from_stdin: bool) -> anyhow::Result<SecretString> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        return Ok(SecretString::from(
            line.trim_end_matches(['\r', '\n']).to_owned(),
        ));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for a password on: pass --password-stdin and pipe it in");
    }
    let first = rpassword::prompt_password("Password: ").context("reading the password")?;
    let second = rpassword::prompt_password("Repeat: ").context("reading the password")?;
    if first != second {
        bail!("the passwords differ");
    }
    Ok(SecretString::from(first))
}
