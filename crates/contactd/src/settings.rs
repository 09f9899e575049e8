//! Command line and environment: every setting is a flag and an environment variable (and,
//! for `serve` and `config check`, a key of the `--config` file: see `layers`), parsed once and
//! passed explicitly (no globals). `ServeSettings::problems` is the one list of what makes a
//! start refuse settings that parse.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use contactd_access::RateLimits;
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

    /// How log lines are written to stderr: `json` (one object per line, for collectors),
    /// `text` (for people), or `auto`: text on a terminal, JSON otherwise.
    #[arg(long, global = true, env = "CONTACTD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Auto,
    Json,
    Text,
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
    /// The event log, for offline audits, and sealing old events in place.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Contacts, for the operator: forgetting a person.
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// The master keys that wrap the contacts' data keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The configuration `serve` would run with.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Ask a running server's readiness (`/readyz`): exit 0 when it answers 200, else 1 with
    /// why. For health checks of containers, which have no curl.
    Probe(ProbeSettings),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the settings (flags, environment, `--config` file) as `serve` would and print
    /// each with its value and where it came from, secrets masked; exit 2 with every problem.
    Check(Box<ServeSettings>),
}

#[derive(Debug, Clone, Args)]
pub struct ProbeSettings {
    /// The readiness URL asked (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
    pub url: String,

    /// The longest the probe waits for the answer, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout_secs: u64,
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
    /// Seal in place the personal fields of events stored in clear before encryption, and
    /// print how many were sealed; a second run seals nothing. Stop the servers of the
    /// embedded store first (it takes the file's lock).
    Encrypt {
        #[command(flatten)]
        database: DatabaseSettings,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Forget a contact as ForgetMessageContact does (deleted first if it was not, its
    /// personal data unreadable for good) and print the request id; the events record the
    /// operator (`$USER`) as the caller. Exit 1 with the contract's message when the account
    /// has no such contact.
    Forget {
        /// The account the contact belongs to.
        #[arg(long)]
        account: String,
        /// The contact's id (`c-` and 16 characters).
        #[arg(long)]
        contact: String,
        #[command(flatten)]
        database: DatabaseSettings,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Rewrap every data key under `--master-key-file` (the new key), opening those not under
    /// it with `--previous-master-key-file` (the old ones); no event is touched. Then restart
    /// the servers with the new key.
    Rotate {
        #[command(flatten)]
        database: DatabaseSettings,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// The store. Unset or `sqlite://PATH`: the embedded SQLite store (by default
    /// `contactd.db` in the data directory), for one process. `postgres://…`: PostgreSQL, for
    /// production and several processes; the database is created if it does not exist yet.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Where the embedded store's database, the development message sink and generated local
    /// secrets live; created on first start.
    #[arg(long, env = "CONTACTD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Connections in the pool (PostgreSQL; the embedded store's readers).
    #[arg(long, env = "CONTACTD_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// The master key that wraps every contact's data key: a file of 64 hexadecimal digits,
    /// read at start. Every process of a database must use the same one. Unset: the data
    /// directory's `master.key`, which `serve` generates on its first start (keep it and back
    /// it up: without it no personal data of the log can be read).
    #[arg(long, env = "CONTACTD_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,

    /// Master keys being rotated away from (files as for `--master-key-file`; repeatable or
    /// comma-separated): the data keys they still wrap open, and `keys rotate` rewraps them
    /// under the current one.
    #[arg(
        long = "previous-master-key-file",
        env = "CONTACTD_PREVIOUS_MASTER_KEY_FILES",
        value_delimiter = ','
    )]
    pub previous_master_key_files: Vec<PathBuf>,
}

impl DatabaseSettings {
    /// The database of `database_url` (the embedded store in `data_dir` when `None`), with the
    /// other settings at their defaults.
    pub fn new(database_url: Option<String>, data_dir: PathBuf) -> Self {
        Self {
            database_url,
            data_dir,
            db_max_connections: 16,
            master_key_file: None,
            previous_master_key_files: Vec::new(),
        }
    }

    /// What is wrong with the master key files named, one line each: a file that cannot be
    /// read, or that holds no key. The keys' bytes never appear in a line.
    pub fn key_problems(&self) -> Vec<String> {
        let named = self
            .master_key_file
            .iter()
            .map(|path| ("--master-key-file", path))
            .chain(
                self.previous_master_key_files
                    .iter()
                    .map(|path| ("--previous-master-key-file", path)),
            );
        named
            .filter_map(|(flag, path)| {
                crate::keys::read_master_key(path)
                    .err()
                    .map(|why| format!("{flag}: {why}"))
            })
            .collect()
    }
}

/// How callers are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdentityMode {
    /// Trust metadata `x-acs-account-id`: on loopback, or behind a gateway that proves itself
    /// with a client certificate (`--client-ca`).
    TrustedHeader,
    /// A signed JWT in `authorization: Bearer …` names the principal and its account.
    Token,
    /// The client certificate names the principal; `--certificate-accounts` its account.
    Mtls,
}

/// Transport security, authentication, authorization and abuse limits.
#[derive(Debug, Clone, Args)]
pub struct SecuritySettings {
    /// The server's certificate chain (PEM) for the gRPC and HTTP ports; with `--tls-key`.
    /// Reloaded when the file changes.
    #[arg(long, env = "CONTACTD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The server's private key (PEM); reloaded when the file changes.
    #[arg(long, env = "CONTACTD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// CA certificates (PEM) that client certificates must chain to: with it, every
    /// connection to the gRPC port must present one (mutual TLS); the HTTP port, opened by
    /// people's browsers, asks for none. Needs `--tls-cert`.
    #[arg(long, env = "CONTACTD_CLIENT_CA", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,

    /// The keys bearer tokens are signed with: a JWKS document or PEM public keys. Reloaded
    /// when the file changes. Identity mode `token`.
    #[arg(long, env = "CONTACTD_TOKEN_KEYS")]
    pub token_keys: Option<PathBuf>,

    /// The issuer (`iss`) bearer tokens must name.
    #[arg(long, env = "CONTACTD_TOKEN_ISSUER")]
    pub token_issuer: Option<String>,

    /// The audience (`aud`) bearer tokens must name.
    #[arg(long, env = "CONTACTD_TOKEN_AUDIENCE")]
    pub token_audience: Option<String>,

    /// The signature algorithms accepted, comma-separated (never `none`, no shared secrets).
    #[arg(
        long,
        env = "CONTACTD_TOKEN_ALGORITHMS",
        default_value = "RS256,ES256,EdDSA"
    )]
    pub token_algorithms: String,

    /// The clock skew allowed on a token's `exp` and `nbf`, in seconds.
    #[arg(long, env = "CONTACTD_TOKEN_LEEWAY_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub token_leeway_secs: u64,

    /// Which account each client certificate acts for (a JSON object: certificate identity
    /// to account id). Reloaded when the file changes. Identity mode `mtls`.
    #[arg(long, env = "CONTACTD_CERTIFICATE_ACCOUNTS")]
    pub certificate_accounts: Option<PathBuf>,

    /// RAM-style policies and the principals they are attached to (JSON). Reloaded when the
    /// file changes; a malformed change keeps the last good policies. Unset: every principal
    /// may do everything on its own account's contacts.
    #[arg(long, env = "CONTACTD_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,

    /// How often the certificate, key, token keys, mapping and policy files are looked at for
    /// changes, in seconds.
    #[arg(long, env = "CONTACTD_RELOAD_INTERVAL_SECS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub reload_interval_secs: u64,

    /// Calls per second and burst per account, per class of RPC
    /// (`read=R:B,write=R:B,verify=R:B,stream=R:B`; a class left out is unlimited; `off`).
    #[arg(long, env = "CONTACTD_ACCOUNT_RATE_LIMITS", default_value = DEFAULT_RATE_LIMITS, value_parser = RateLimits::parse)]
    pub account_rate_limits: RateLimits,

    /// Calls per second and burst per principal, per class of RPC (as for accounts).
    #[arg(long, env = "CONTACTD_PRINCIPAL_RATE_LIMITS", default_value = DEFAULT_RATE_LIMITS, value_parser = RateLimits::parse)]
    pub principal_rate_limits: RateLimits,

    /// The largest request accepted, in bytes.
    #[arg(long, env = "CONTACTD_MAX_REQUEST_BYTES", default_value_t = 64 * 1024, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=16 * 1024 * 1024))]
    pub max_request_bytes: usize,

    /// The largest header block of a request, in bytes.
    #[arg(long, env = "CONTACTD_MAX_HEADER_BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u32).range(1024..=1024 * 1024))]
    pub max_header_bytes: u32,

    /// Connections open at once on each port.
    #[arg(long, env = "CONTACTD_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_connections: usize,

    /// Connections open at once from one client address on each port.
    #[arg(long, env = "CONTACTD_MAX_CONNECTIONS_PER_IP", default_value_t = 256, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_connections_per_ip: usize,

    /// A connection with no call in flight for this long is closed, in seconds.
    #[arg(long, env = "CONTACTD_IDLE_TIMEOUT_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,

    /// How often an HTTP/2 connection is pinged, in seconds; one that does not answer within
    /// as long again (at most 20 s) is closed.
    #[arg(long, env = "CONTACTD_KEEPALIVE_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub keepalive_secs: u64,

    /// Live event streams (`StreamEvents`) open at once, in all.
    #[arg(long, env = "CONTACTD_MAX_STREAMS", default_value_t = 1024, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_streams: usize,

    /// Live event streams one account may hold open.
    #[arg(long, env = "CONTACTD_MAX_STREAMS_PER_ACCOUNT", default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_streams_per_account: usize,

    /// How long a live stream whose client stopped reading is kept, in seconds; then it ends
    /// with `RESOURCE_EXHAUSTED` and where to resume.
    #[arg(long, env = "CONTACTD_STREAM_STALL_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub stream_stall_secs: u64,
}

/// Generous enough for any well-behaved service; there to stop a runaway one.
const DEFAULT_RATE_LIMITS: &str = "read=20000:40000,write=5000:10000,verify=20:40,stream=10:20";

impl SecuritySettings {
    pub fn reload_interval(&self) -> Duration {
        Duration::from_secs(self.reload_interval_secs)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    pub fn keepalive(&self) -> (Duration, Duration) {
        let interval = Duration::from_secs(self.keepalive_secs);
        (interval, interval.min(Duration::from_secs(20)))
    }

    pub fn stream_stall(&self) -> Duration {
        Duration::from_secs(self.stream_stall_secs)
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeSettings {
    /// A TOML file of settings, keyed by their long flag names (`http-listen = "0.0.0.0:8080"`);
    /// flags and environment variables win over it.
    #[arg(long, env = "CONTACTD_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address to listen on for gRPC.
    #[arg(long, env = "CONTACTD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseSettings,

    /// How callers are identified. Required when listening on a non-loopback address, so that
    /// trusting a header is never a silent default there; `trusted-header` there needs
    /// mutual TLS.
    #[arg(long, env = "CONTACTD_IDENTITY_MODE", value_enum)]
    pub identity_mode: Option<IdentityMode>,

    #[command(flatten)]
    pub security: SecuritySettings,

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

    /// How long a SIGTERM or SIGINT may take, in seconds: the calls in flight, the messages
    /// being sent and the events being published are given this long to finish; then what
    /// still runs is logged and the process exits with status 1.
    #[arg(long, env = "CONTACTD_SHUTDOWN_TIMEOUT_SECS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub shutdown_timeout_secs: u64,
    /// The OpenTelemetry collector that traces are exported to over OTLP/gRPC, in plaintext
    /// (`http://host:4317`). Unset: no trace is recorded or sent.
    #[arg(long, env = "CONTACTD_OTLP_ENDPOINT", value_parser = otlp_endpoint)]
    pub otlp_endpoint: Option<url::Url>,

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
    /// Address of the HTTP server: the confirmation pages, the probes and `/metrics`.
    #[arg(long, env = "CONTACTD_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,

    /// The base of the links that messages carry; `http://` (with TLS `https://`) + the HTTP
    /// address when unset.
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

    /// The base of confirmation links, given where the HTTP server listens and whether it
    /// speaks TLS.
    pub fn public_url(&self, http: SocketAddr, tls: bool) -> String {
        let scheme = if tls { "https" } else { "http" };
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{http}"))
    }
}

impl ServeSettings {
    /// The identity mode in force, or why the settings are refused.
    pub fn effective_identity_mode(&self) -> Result<IdentityMode, String> {
        let security = &self.security;
        let loopback = self.listen.ip().is_loopback();
        let mode = match self.identity_mode {
            Some(mode) => mode,
            None if loopback => IdentityMode::TrustedHeader,
            None => {
                return Err(format!(
                    "listening on {} (not loopback) needs an explicit --identity-mode: trusting \
                     the x-acs-account-id header is only the default on loopback",
                    self.listen
                ));
            }
        };
        let missing = |what: &[(&str, bool)]| {
            let absent: Vec<&str> = what
                .iter()
                .filter(|(_, present)| !present)
                .map(|(flag, _)| *flag)
                .collect();
            if absent.is_empty() {
                Ok(mode)
            } else {
                Err(format!(
                    "--identity-mode {} needs {}",
                    mode.to_possible_value()
                        .map(|value| value.get_name().to_owned())
                        .unwrap_or_default(),
                    absent.join(" and ")
                ))
            }
        };
        match mode {
            IdentityMode::TrustedHeader if !loopback && security.client_ca.is_none() => {
                Err(format!(
                    "--identity-mode trusted-header on {} (not loopback) needs mutual TLS \
                 (--tls-cert, --tls-key and --client-ca): anyone who can reach the port could \
                 name any account",
                    self.listen
                ))
            }
            IdentityMode::TrustedHeader => Ok(mode),
            IdentityMode::Token => missing(&[
                ("--token-keys", security.token_keys.is_some()),
                ("--token-issuer", security.token_issuer.is_some()),
                ("--token-audience", security.token_audience.is_some()),
            ]),
            IdentityMode::Mtls => missing(&[
                ("--client-ca", security.client_ca.is_some()),
                (
                    "--certificate-accounts",
                    security.certificate_accounts.is_some(),
                ),
            ]),
        }
    }

    /// How this process names itself to other processes (projection holders).
    pub fn instance_name(&self) -> String {
        format!("contactd pid {} on {}", std::process::id(), self.listen)
    }

    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout_secs)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// Everything that makes these settings unfit to start with, one line each: conflicting
    /// settings, files that are not there, a secret too short. Values that do not parse never
    /// get this far (clap refuses them, `layers` all at once).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(why) = self.effective_identity_mode() {
            problems.push(why);
        }
        if let Err(why) = self.verification.dispatch_lease() {
            problems.push(why);
        }
        if let Some(secret) = &self.verification.code_secret
            && contactd_app::CodeSecret::new(secret.trim().as_bytes().to_vec()).is_err()
        {
            problems.push(format!(
                "--code-secret: must be at least {} bytes",
                contactd_app::MIN_SECRET_BYTES
            ));
        }
        let security = &self.security;
        let files = [
            ("--tls-cert", &security.tls_cert),
            ("--tls-key", &security.tls_key),
            ("--client-ca", &security.client_ca),
            ("--token-keys", &security.token_keys),
            ("--certificate-accounts", &security.certificate_accounts),
            ("--policy-file", &security.policy_file),
        ];
        for (flag, path) in files {
            if let Some(path) = path
                && let Err(error) = std::fs::File::open(path)
            {
                problems.push(format!("{flag}: cannot read {}: {error}", path.display()));
            }
        }
        if let Err(why) = contactd_access::parse_algorithms(&security.token_algorithms) {
            problems.push(format!("--token-algorithms: {why}"));
        }
        problems.extend(self.database.key_problems());
        if let Err(why) = crate::backend::StoreChoice::from_settings(&self.database) {
            problems.push(format!("--database-url: {why}"));
        }
        let http = self.verification.http_listen;
        if self.listen == http && self.listen.port() != 0 {
            problems.push(format!(
                "--listen and --http-listen are both {http}: the gRPC and HTTP ports need two \
                 addresses"
            ));
        }
        if let Some(public) = &self.verification.public_url
            && url::Url::parse(public).is_err()
        {
            problems.push(format!("--public-url: {public:?} is not a URL"));
        }
        problems
    }
}

/// An OTLP/gRPC endpoint: `http://` with a host (the exporter speaks no TLS).
fn otlp_endpoint(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|error| format!("not a URL: {error}"))?;
    if url.scheme() != "http" || !url.has_host() {
        return Err("expected http://HOST:PORT (OTLP/gRPC in plaintext)".to_owned());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_otlp_endpoint_is_a_plaintext_http_url() {
        assert!(otlp_endpoint("http://127.0.0.1:4317").is_ok());
        assert!(otlp_endpoint("https://collector:4317").is_err());
        assert!(otlp_endpoint("collector:4317").is_err());
        let Command::Serve(serve) = parse(&["serve"]).unwrap().command else {
            panic!("serve")
        };
        assert_eq!(serve.otlp_endpoint, None);
    }

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
        let serve = |args: &[&str]| {
            let Command::Serve(serve) = parse(args).unwrap().command else {
                panic!("serve")
            };
            serve.effective_identity_mode()
        };
        let open = ["serve", "--listen", "0.0.0.0:50051", "--identity-mode"];
        let header_alone = serve(&[&open[..], &["trusted-header"]].concat());
        assert!(
            header_alone
                .as_ref()
                .is_err_and(|why| why.contains("needs mutual TLS")),
            "{header_alone:?}"
        );
        let behind_mtls = [
            "trusted-header",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--client-ca",
            "ca.pem",
        ];
        assert_eq!(
            serve(&[&open[..], &behind_mtls].concat()),
            Ok(IdentityMode::TrustedHeader)
        );
        assert_eq!(
            serve(&[&open[..], &["token", "--token-keys", "keys.json"]].concat()),
            Err("--identity-mode token needs --token-issuer and --token-audience".to_owned())
        );
        assert_eq!(
            serve(
                &[
                    &open[..],
                    &[
                        "mtls",
                        "--client-ca",
                        "ca.pem",
                        "--tls-cert",
                        "c",
                        "--tls-key",
                        "k"
                    ]
                ]
                .concat()
            ),
            Err("--identity-mode mtls needs --certificate-accounts".to_owned())
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
        assert!(parse(&["serve", "--account-rate-limits", "read=fast"]).is_err());
        assert!(
            parse(&["serve", "--tls-cert", "cert.pem"]).is_err(),
            "no key"
        );
        assert!(
            parse(&["serve", "--client-ca", "ca.pem"]).is_err(),
            "no TLS"
        );
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
                .public_url("127.0.0.1:8080".parse().unwrap(), false),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            serve
                .verification
                .public_url("127.0.0.1:8443".parse().unwrap(), true),
            "https://127.0.0.1:8443"
        );
    }
}
