//! `contactd`: the message-contact service. `serve` runs it; `config check` shows what it would
//! run with; `probe` asks a running one whether it is ready; `migrate`, `projections rebuild`,
//! `events replay`, `events encrypt`, `contacts forget` and `keys rotate` are the operator's
//! tools.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use contactd::settings::{
    Cli, Command, ConfigCommand, ContactsCommand, EventsCommand, KeysCommand, ProjectionsCommand,
};
use contactd::{layers, probe, startup, telemetry};

/// The exit status of settings that are refused, as clap's own for a bad command line.
const BAD_SETTINGS: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = if layers::takes_config_file(&args) {
        match layers::resolve(&args) {
            Ok(effective) => {
                if let Command::Config(ConfigCommand::Check(_)) = effective.cli.command {
                    print!("{}", effective.describe());
                    return ExitCode::SUCCESS;
                }
                effective.cli
            }
            Err(problems) => {
                for problem in problems {
                    eprintln!("{problem}");
                }
                return ExitCode::from(BAD_SETTINGS);
            }
        }
    } else {
        Cli::parse_from(args)
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let otlp_endpoint = match &cli.command {
        Command::Serve(settings) => settings.otlp_endpoint.clone(),
        _ => None,
    };
    let outcome = runtime.block_on(async {
        // Within the runtime: the traces' exporter has its gRPC channel there.
        let telemetry = telemetry::init(cli.log_format, otlp_endpoint.as_ref())?;
        let outcome = run(cli.command).await;
        // Once `serve` has drained its calls, their last spans leave too (within 5 s).
        telemetry.shutdown().await;
        outcome
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:?}");
            // At once: a shutdown that overran its bound must not wait for what still runs.
            std::process::exit(1)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(settings) => startup::serve(*settings, startup::shutdown_signal()).await,
        Command::Migrate(database) => startup::migrate_only(&database).await,
        Command::Projections(ProjectionsCommand::Rebuild { name, database }) => {
            startup::rebuild(name.as_deref(), &database).await
        }
        Command::Events(EventsCommand::Replay {
            contact,
            from,
            database,
        }) => startup::replay(contact.as_deref(), from, &database).await,
        Command::Events(EventsCommand::Encrypt { database }) => {
            startup::seal_clear_events(&database).await
        }
        Command::Contacts(ContactsCommand::Forget {
            account,
            contact,
            database,
        }) => startup::forget(&account, &contact, &database).await,
        Command::Keys(KeysCommand::Rotate { database }) => startup::rotate_keys(&database).await,
        // Resolved above, with the settings' layers.
        Command::Config(ConfigCommand::Check(_)) => Ok(()),
        Command::Probe(probe) => {
            probe::probe(
                &probe.url,
                std::time::Duration::from_secs(probe.timeout_secs),
            )
            .await
        }
    }
}
