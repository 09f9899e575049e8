//! Command line and environment: every setting is a flag and an environment variable, parsed
//! once and passed explicitly (no globals).

use std::net::SocketAddr;
use std::path::PathBuf;
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
    Serve(Box<ServeSettings>),
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
        /// `contacts` (the inline read models: contacts and directories), `account_activity` or
        /// `member_contacts`.
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
    /// The store. Unset or `sqlite://PATH`: the embedded SQLite store (by default
    /// `contactd.db` in the data directory), for one process. `postgres://…`: PostgreSQL, for
    /// production and several processes; the database is created if it does not exist yet.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Where the embedded store's database, the development message sink and generated local
    /// secrets live; created on first start.
    #[arg(long, env = "CONTACTD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Connections in the pool (PostgreSQL; the embedded store's readers).
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
    #[arg(long, env = "CONTACTD_GROUP_WRITERS", default_value_t = contactd_store_pg::DEFAULT_GROUP_WRITERS)]
    pub group_writers: usize,

    /// Groups of concurrent contact reads run at once, each one `SELECT`. 0 reads every
    /// contact on its own.
    #[arg(long, env = "CONTACTD_GROUP_READERS", default_value_t = contactd_store_pg::DEFAULT_GROUP_READERS)]
    pub group_readers: usize,

    /// The longest a call may run, in seconds.
    #[arg(long, env = "CONTACTD_CALL_TIMEOUT_SECS", default_value_t = 30)]
    pub call_timeout_secs: u64,

    #[command(flatten)]
    pub verification: VerificationSettings,

    #[command(flatten)]
    pub lifecycle: LifecycleSettings,
}

/// Integration events on NATS JetStream, and the jobs of the contact's lifecycle (the
/// removals of an asynchronous delete, unbinding what the directory dropped).
#[derive(Debug, Clone, Args)]
pub struct LifecycleSettings {
    /// The NATS server(s) integration events are published to (`nats://host:4222`, several
    /// comma-separated). Unset: nothing is published and asynchronous deletes complete locally.
    #[arg(long, env = "CONTACTD_NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,

    /// The JetStream stream the events are stored in; created if missing.
    #[arg(long, env = "CONTACTD_NATS_STREAM", default_value = contactd_nats::DEFAULT_STREAM)]
    pub nats_stream: String,

    /// The longest one publish may take (until JetStream acknowledges it), in seconds.
    #[arg(long, env = "CONTACTD_PUBLISH_TIMEOUT_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub publish_timeout_secs: u64,

    /// Attempts to publish one of an asynchronous delete's removals before the delete fails
    /// for its member. Other events are tried until they are published.
    #[arg(long, env = "CONTACTD_PUBLISH_MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub publish_max_attempts: u32,

    /// The wait after a job's first failed attempt, in milliseconds; it doubles after each
    /// further one (up to a minute), jittered.
    #[arg(long, env = "CONTACTD_PUBLISH_RETRY_BASE_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub publish_retry_base_ms: u64,
}

impl LifecycleSettings {
    pub fn publish_timeout(&self) -> Duration {
        Duration::from_secs(self.publish_timeout_secs)
    }
}

/// Verification codes, the messages that carry them, and the page their links lead to.
#[derive(Debug, Clone, Args)]
pub struct VerificationSettings {
    /// Address of the HTTP server: the confirmation pages (and later metrics and health).
    #[arg(long, env = "CONTACTD_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,

    /// The base of the links that messages carry; `http://` + the HTTP address when unset.
    #[arg(long, env = "CONTACTD_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The secret codes and links are derived under (at least 16 bytes of text). Every process
    /// of a database must share it. Unset: read from (or generated once into) the data
    /// directory's `code-secret` file.
    #[arg(long, env = "CONTACTD_CODE_SECRET", hide_env_values = true)]
    pub code_secret: Option<String>,

    /// How long a code (and its link) may be used, in seconds.
    #[arg(long, env = "CONTACTD_CODE_TTL_SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    pub code_ttl_secs: u64,

    /// Verification messages an account may send per UTC day.
    #[arg(long, env = "CONTACTD_SEND_LIMIT_PER_ACCOUNT_DAY", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub send_limit_per_account_day: u32,

    /// Verification messages one target may be sent in any minute.
    #[arg(long, env = "CONTACTD_SEND_LIMIT_PER_TARGET_MINUTE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub send_limit_per_target_minute: u32,

    /// The SMTP server (`smtp://host:port`, `smtp://host:port?tls=required` for STARTTLS,
    /// `smtps://host:port` for implicit TLS, credentials as `user:password@`). Unset: emails
    /// go into the development sink.
    #[arg(long, env = "CONTACTD_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// The sender of verification emails.
    #[arg(
        long,
        env = "CONTACTD_MAIL_FROM",
        default_value = "contactd <noreply@localhost>"
    )]
    pub mail_from: String,

    /// The SMS gateway's webhook (an HTTP POST of JSON per message). Unset: SMS go into the
    /// development sink.
    #[arg(long, env = "CONTACTD_SMS_WEBHOOK_URL", hide_env_values = true)]
    pub sms_webhook_url: Option<String>,

    /// Attempts to send a message before it is dead-lettered.
    #[arg(long, env = "CONTACTD_DISPATCH_MAX_ATTEMPTS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub dispatch_max_attempts: u32,

    /// The wait after a message's first failed attempt, in milliseconds; it doubles after each
    /// further one (up to 5 minutes), jittered.
    #[arg(long, env = "CONTACTD_DISPATCH_RETRY_BASE_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub dispatch_retry_base_ms: u64,

    /// The longest one send (SMTP or webhook) may take, in seconds.
    #[arg(long, env = "CONTACTD_SEND_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub send_timeout_secs: u64,

    /// How long a claimed message stays this process's, in seconds: after a crash, another
    /// process (or this one restarted) sends it once the lease has run out. At least twice
    /// the send timeout.
    #[arg(long, env = "CONTACTD_DISPATCH_LEASE_SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub dispatch_lease_secs: u64,

    /// Messages sent at once by this process.
    #[arg(long, env = "CONTACTD_DISPATCH_CONCURRENCY", default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub dispatch_concurrency: usize,
}

impl VerificationSettings {
    pub fn code_ttl(&self) -> Duration {
        Duration::from_secs(self.code_ttl_secs)
    }

    pub fn send_timeout(&self) -> Duration {
        Duration::from_secs(self.send_timeout_secs)
    }

    /// The lease, or why it is refused: a lease shorter than twice the send timeout could run
    /// out while a slow send still runs, and another process would send the message again.
    pub fn dispatch_lease(&self) -> Result<Duration, String> {
        if self.dispatch_lease_secs < 2 * self.send_timeout_secs {
            return Err(format!(
                "--dispatch-lease-secs ({}) must be at least twice --send-timeout-secs ({})",
                self.dispatch_lease_secs, self.send_timeout_secs
            ));
        }
        Ok(Duration::from_secs(self.dispatch_lease_secs))
    }

    /// The base of confirmation links, given where the HTTP server listens.
    pub fn public_url(&self, http: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{http}"))
    }
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
        assert!(parse(&["serve", "--http-listen", "nowhere"]).is_err());
        assert!(parse(&["serve", "--code-ttl-secs", "0"]).is_err());
        assert!(parse(&["serve", "--send-limit-per-account-day", "0"]).is_err());
        assert!(parse(&["serve", "--dispatch-concurrency", "0"]).is_err());
    }

    #[test]
    fn a_lease_shorter_than_two_send_timeouts_is_refused() {
        let Command::Serve(serve) = parse(&[
            "serve",
            "--send-timeout-secs",
            "30",
            "--dispatch-lease-secs",
            "59",
        ])
        .unwrap()
        .command
        else {
            panic!("serve")
        };
        assert!(serve.verification.dispatch_lease().is_err());
        let Command::Serve(serve) = parse(&["serve"]).unwrap().command else {
            panic!("serve")
        };
        assert_eq!(
            serve.verification.dispatch_lease(),
            Ok(Duration::from_secs(120))
        );
        assert_eq!(
            serve
                .verification
                .public_url("127.0.0.1:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
    }
}
