//! Wiring: connect the store, apply migrations, build the application and run the server until
//! SIGINT or SIGTERM. `run` takes its listener so that tests can bind port 0.

use std::sync::Arc;

use anyhow::Context;
use contactd_app::{ContactService, Policy};
use contactd_grpc::{Server, ServerSettings};
use contactd_store::{PgStore, PoolSettings};
use sqlx::PgPool;
use sqlx::migrate::MigrateDatabase;
use tokio::net::TcpListener;
use tracing::info;

use crate::settings::{DatabaseSettings, ServeSettings};

/// `contactd serve`.
pub async fn serve(
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    settings
        .effective_identity_mode()
        .map_err(anyhow::Error::msg)?;
    let pool = connect(&settings.database, !settings.no_migrate).await?;
    if !settings.no_migrate {
        contactd_store::migrate(&pool)
            .await
            .context("applying migrations")?;
    }
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    info!(address = %listener.local_addr()?, "contactd listening");
    run(listener, pool, &settings, shutdown).await?;
    info!("contactd stopped");
    Ok(())
}

/// `contactd migrate`.
pub async fn migrate_only(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let pool = connect(settings, true).await?;
    contactd_store::migrate(&pool)
        .await
        .context("applying migrations")?;
    info!("migrations applied");
    Ok(())
}

/// Serves on `listener` with the store on `pool` until `shutdown` completes; the calls in flight
/// finish first.
pub async fn run(
    listener: TcpListener,
    pool: PgPool,
    settings: &ServeSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let policy = Policy {
        max_contacts: settings.max_contacts,
        country_codes: settings.country_codes.clone(),
        ..Policy::default()
    };
    let app = Arc::new(ContactService::new(PgStore::new(pool), policy));
    let server_settings = ServerSettings {
        call_timeout: settings.call_timeout(),
        ..ServerSettings::default()
    };
    Server::new(app, server_settings)
        .run(listener, shutdown)
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("serving gRPC")
}

async fn connect(settings: &DatabaseSettings, create_database: bool) -> anyhow::Result<PgPool> {
    let url = &settings.database_url;
    if create_database
        && !sqlx::Postgres::database_exists(url)
            .await
            .context("reaching PostgreSQL")?
    {
        sqlx::Postgres::create_database(url)
            .await
            .context("creating the database")?;
        info!("created the database");
    }
    let pool_settings = PoolSettings {
        max_connections: settings.db_max_connections,
        ..PoolSettings::default()
    };
    contactd_store::connect(url, &pool_settings)
        .await
        .context("connecting to PostgreSQL")
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => info!("SIGINT received, shutting down"),
        () = terminate => info!("SIGTERM received, shutting down"),
    }
}
