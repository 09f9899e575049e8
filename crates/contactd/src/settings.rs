//! Command line and environment: every setting is a flag and an environment variable, parsed
//! once and passed explicitly (no globals).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use contactd_domain::CountryCodes;

#[derive(Debug, Parser)]
#[command(
    name = "contactd",
    version,
    about = "The message-contact service of a resource directory, over gRPC"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (applies pending migrations first unless told not to).
    Serve(ServeSettings),
    /// Apply pending migrations and exit.
    Migrate(DatabaseSettings),
    /// Read models kept by projections.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// The event log, for offline audits.
    #[command(subcommand)]
    Events(EventsCommand),
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Drop a read model and replay the log into it (all of them without NAME). Side effects
    /// are never replayed.
    Rebuild {
        /// `contacts` (the inline read model) or `account_activity`.
        name: Option<String>,
        #[command(flatten)]
        database: DatabaseSettings,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print events in log order as JSON lines, up to the newest committed one.
    Replay {
        /// Only this contact's events.
        #[arg(long)]
        contact: Option<String>,
        /// Start at the event with this global position (or the first one after it).
        #[arg(long, default_value_t = 0)]
        from: i64,
        #[command(flatten)]
        database: DatabaseSettings,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// PostgreSQL URL. The database is created if it does not exist yet.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/contactd"
    )]
    pub database_url: String,

    /// Connections in the pool.
    #[arg(long, env = "CONTACTD_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
}

/// How callers are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdentityMode {
    /// Trust metadata `x-acs-account-id`: only for a loopback address or a trusted network.
    TrustedHeader,
}

#[derive(Debug, Clone, Args)]
pub struct ServeSettings {
    /// Address to listen on for gRPC.
    #[arg(long, env = "CONTACTD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseSettings,

    /// How callers are identified. Required when listening on a non-loopback address, so that
    /// trusting a header is never a silent default there.
    #[arg(long, env = "CONTACTD_IDENTITY_MODE", value_enum)]
    pub identity_mode: Option<IdentityMode>,

    /// Contacts (not deleted) allowed per account.
    #[arg(long, env = "CONTACTD_MAX_CONTACTS", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_contacts: u32,

    /// Country calling codes accepted in phone numbers, comma-separated.
    #[arg(long, env = "CONTACTD_COUNTRY_CODES", default_value = "86", value_parser = CountryCodes::parse_list)]
    pub country_codes: CountryCodes,

    /// Do not apply pending migrations at start.
    #[arg(long, env = "CONTACTD_NO_MIGRATE")]
    pub no_migrate: bool,

    /// Contacts kept in memory as this process last wrote them, so that updating one again
    /// skips reading it back (the store's version check still decides). 0 turns it off.
    #[arg(long, env = "CONTACTD_DECIDED_CONTACTS", default_value_t = contactd_app::DEFAULT_DECIDED_CONTACTS)]
    pub decided_contacts: usize,

    /// Groups of concurrent updates written at once, each in one statement and transaction.
    /// 0 writes every update on its own.
    #[arg(long, env = "CONTACTD_GROUP_WRITERS", default_value_t = contactd_store::DEFAULT_GROUP_WRITERS)]
    pub group_writers: usize,

    /// Groups of concurrent contact reads run at once, each one `SELECT`. 0 reads every
    /// contact on its own.
    #[arg(long, env = "CONTACTD_GROUP_READERS", default_value_t = contactd_store::DEFAULT_GROUP_READERS)]
    pub group_readers: usize,

    /// The longest a call may run, in seconds.
    #[arg(long, env = "CONTACTD_CALL_TIMEOUT_SECS", default_value_t = 30)]
    pub call_timeout_secs: u64,
}

impl ServeSettings {
    /// The identity mode in force, or why the settings are refused.
    pub fn effective_identity_mode(&self) -> Result<IdentityMode, String> {
        match self.identity_mode {
            Some(mode) => Ok(mode),
            None if self.listen.ip().is_loopback() => Ok(IdentityMode::TrustedHeader),
            None => Err(format!(
                "listening on {} (not loopback) needs an explicit --identity-mode: trusting the \
                 x-acs-account-id header is only the default on loopback",
                self.listen
            )),
        }
    }

    /// How this process names itself to other processes (projection holders).
    pub fn instance_name(&self) -> String {
        format!("contactd pid {} on {}", std::process::id(), self.listen)
    }

    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("contactd").chain(args.iter().copied()))
    }

    #[test]
    fn trusting_the_header_is_the_default_only_on_loopback() {
        let Command::Serve(local) = parse(&["serve"]).unwrap().command else {
            panic!("serve")
        };
        assert_eq!(
            local.effective_identity_mode(),
            Ok(IdentityMode::TrustedHeader)
        );
        let Command::Serve(open) = parse(&["serve", "--listen", "0.0.0.0:50051"])
            .unwrap()
            .command
        else {
            panic!("serve")
        };
        assert!(open.effective_identity_mode().is_err());
        let Command::Serve(explicit) = parse(&[
            "serve",
            "--listen",
            "0.0.0.0:50051",
            "--identity-mode",
            "trusted-header",
        ])
        .unwrap()
        .command
        else {
            panic!("serve")
        };
        assert_eq!(
            explicit.effective_identity_mode(),
            Ok(IdentityMode::TrustedHeader)
        );
    }

    #[test]
    fn bad_settings_are_refused_at_start() {
        assert!(parse(&["serve", "--country-codes", "+86"]).is_err());
        assert!(parse(&["serve", "--max-contacts", "0"]).is_err());
        assert!(parse(&["serve", "--listen", "nowhere"]).is_err());
    }
}
