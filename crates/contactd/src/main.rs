//! `contactd`: the message-contact service. `serve` runs it; `migrate`, `projections rebuild`
//! and `events replay` are the operator's tools.

use clap::Parser;
use contactd::settings::{Cli, Command, EventsCommand, ProjectionsCommand};
use contactd::{startup, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let otlp_endpoint = match &cli.command {
        Command::Serve(settings) => settings.otlp_endpoint.as_ref(),
        _ => None,
    };
    let telemetry = telemetry::init(cli.log_format, otlp_endpoint)?;
    let outcome = match cli.command {
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
    };
    // Once `serve` has drained its calls, their last spans leave too.
    telemetry.shutdown().await;
    outcome
}
