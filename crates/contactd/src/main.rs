//! `contactd`: the message-contact service. `serve` runs it; `migrate` applies migrations.

use clap::Parser;
use contactd::settings::{Cli, Command};
use contactd::{startup, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init();
    match cli.command {
        Command::Serve(settings) => startup::serve(settings, startup::shutdown_signal()).await,
        Command::Migrate(database) => startup::migrate_only(&database).await,
    }
}
