//! The command line: `keeper serve | worker | db ... | user ...`.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::api::tokens::{create_token, NewTokenRequest};
use crate::auth::password::hash_password;
use crate::auth::Permissions;
use crate::config::Config;
use crate::db::migrations;
use crate::db::users::{create_user, find_user};
use crate::domain::Username;
use crate::server::{connect, prepare};

#[derive(Debug, Parser)]
#[command(
    name = "keeper",
    version,
    about = "LTD Keeper: documentation hosting control plane"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (and the operations worker, unless KEEPER_SERVE_RUNS_WORKER=false).
    Serve,
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
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user. The token goes to standard output, once; keeper keeps
    /// only its hash.
    Create {
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
    },
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
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("keeper: {err}");
            return ExitCode::from(2);
        }
    };
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
        Command::Serve => actix_web::rt::System::new().block_on(crate::server::serve(config)),
        Command::Worker => actix_web::rt::System::new().block_on(crate::worker::run(config)),
        Command::Db { command } => run_db(command, &config),
        Command::User { command } => run_user(command, &config),
        Command::Token { command } => run_token(command, &config),
    }
}

fn run_token(command: TokenCommand, config: &Config) -> anyhow::Result<()> {
    let TokenCommand::Create {
        username,
        name,
        permissions,
        products,
        expires_in_days,
    } = command;
    let username = Username::parse(&username).map_err(anyhow::Error::msg)?;
    let mut conn = prepare(config)?
        .pool
        .get()
        .context("connecting to the database")?;
    let user = find_user(&mut conn, &username)?
        .ok_or_else(|| anyhow::anyhow!("there is no user named {username}"))?;
    let request = NewTokenRequest {
        name,
        permissions: permissions.map(|list| list.split(',').map(|p| p.trim().to_owned()).collect()),
        products,
        expires_in_days,
    };
    let owner = Permissions::from_bits(user.permissions).unwrap_or_default();
    let (token, secret) = create_token(&mut conn, user.id, owner, &request)
        .map_err(|err| anyhow::anyhow!("{}", err.body().message))?;
    eprintln!(
        "created API token {} ({:?}) for {username}; it is shown once, below:",
        token.id, token.name
    );
    println!("{secret}");
    Ok(())
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
