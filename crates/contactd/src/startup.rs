//! Wiring: connect the store, apply migrations, build the application and run the gRPC server
//! and the confirmation pages with the projections and the dispatcher until SIGINT or SIGTERM.
//! `run` takes its listeners so that tests can bind port 0. Also the offline commands: rebuild,
//! replay, forgetting a contact, the master key's rotation and sealing old events in place.

use std::sync::Arc;

use anyhow::Context;
use contactd_app::{
    AppError, AuditService, CallContext, ContactService, DispatchSettings, Dispatcher, EventLog,
    HealthSettings, LifecycleSettings, LifecycleWorker, Policy, Principal, ProjectionMetrics,
    RequestId, VerificationPolicy, monitor_database,
};
use contactd_delivery::{DeliverySettings, Senders};
use contactd_grpc::Server;
use contactd_metrics::Metrics;
use contactd_nats::{NatsPublisher, NatsSettings};
use contactd_web::{Exposition, Readiness};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::info;

use crate::backend::{Backend, Store, stopped, with_store};
use crate::security;
use crate::settings::{DatabaseSettings, ServeSettings};

/// `contactd serve`.
pub async fn serve(
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let problems = settings.problems();
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
    let store = Store::open_capped(
        &settings.database,
        !settings.no_migrate,
        Some(settings.call_timeout()),
    )
    .await?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let http = settings.verification.http_listen;
    let http = TcpListener::bind(http)
        .await
        .with_context(|| format!("binding {http}"))?;
    info!(address = %listener.local_addr()?, "contactd listening");
    run(listener, http, store, &settings, shutdown).await?;
    info!("contactd stopped");
    Ok(())
}

/// `contactd migrate`.
pub async fn migrate_only(settings: &DatabaseSettings) -> anyhow::Result<()> {
    Store::migrate(settings).await?;
    info!("migrations applied");
    Ok(())
}

/// Serves gRPC on `listener` and the confirmation pages on `http`, with `store`,
/// until `shutdown` completes; the projections, the dispatcher and the log relay run beside
/// them. On shutdown the servers stop accepting calls and let the calls in flight finish, then
/// the projections finish their batch and the dispatcher the sends in flight, and all stop;
/// if that takes longer than `--shutdown-timeout-secs`, what still runs is logged and the
/// error says so.
pub async fn run(
    listener: TcpListener,
    http: TcpListener,
    store: Store,
    settings: &ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // One registry per server, passed to whatever records (ADR 12).
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"));
    let store = match store {
        Store::Postgres(store) => Store::Postgres(
            store
                .group_commit(settings.group_writers)
                .group_reads(settings.group_readers)
                .recording(metrics.recording()),
        ),
        Store::Sqlite(store) => Store::Sqlite(
            store
                .group_commit(settings.group_writers)
                .recording(metrics.recording()),
        ),
    };
    with_store!(store, store => serve_with(listener, http, store, settings, metrics, shutdown).await)
}

async fn serve_with<S: Backend>(
    listener: TcpListener,
    http: TcpListener,
    store: S,
    settings: &ServeSettings,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mode = settings
        .effective_identity_mode()
        .map_err(anyhow::Error::msg)?;
    let access = security::access(settings, mode)?;
    let listener =
        security::listener(listener, settings, security::GRPC_PORT).context("the gRPC port")?;
    let http = security::listener(http, settings, security::HTTP_PORT).context("the HTTP port")?;
    let verification = &settings.verification;
    let lease = verification.dispatch_lease().map_err(anyhow::Error::msg)?;
    let secret = crate::secret::code_secret(
        verification.code_secret.as_deref(),
        &settings.database.data_dir,
    )?;
    let senders = Senders::new(DeliverySettings {
        smtp_url: verification.smtp_url.clone(),
        mail_from: verification.mail_from.clone(),
        sms_webhook_url: verification.sms_webhook_url.clone(),
        sink_dir: settings.database.data_dir.join("messages"),
        timeout: verification.send_timeout(),
        smtp_connections: u32::try_from(verification.dispatch_concurrency).unwrap_or(u32::MAX),
    })
    .context("setting up the verification messages")?;
    info!(senders = %senders.describe(), "verification messages");
    let public_url =
        verification.public_url(http.local_addr()?, settings.security.tls_cert.is_some());

    let (stop_workers, stopping) = watch::channel(false);
    let running = Running::default();
    let projection_status = ProjectionMetrics::default();
    metrics.read_projections(projection_status.clone());
    let pool = store.clone();
    let _pool_reading = metrics.read_pool(move || pool.pool_usage());
    let mut projections = JoinSet::new();
    store.spawn_workers(
        &mut projections,
        settings.instance_name(),
        projection_status,
        stopping.clone(),
    );
    let mut workers = JoinSet::new();
    workers.spawn(
        running.track("the projections (and the log relay)", async move {
            projections.join_all().await;
        }),
    );
    let dispatcher = Arc::new(
        Dispatcher::new(
            store.clone(),
            senders,
            secret.clone(),
            DispatchSettings {
                owner: settings.instance_name(),
                lease,
                max_attempts: verification.dispatch_max_attempts,
                retry_base: std::time::Duration::from_millis(verification.dispatch_retry_base_ms),
                send_timeout: verification.send_timeout(),
                concurrency: verification.dispatch_concurrency,
                public_url,
                ..DispatchSettings::default()
            },
        )
        .with_recording(metrics.recording()),
    );
    workers.spawn(running.track("the dispatcher", dispatcher.run(stopping.clone())));

    let policy = Policy {
        max_contacts: settings.max_contacts,
        country_codes: settings.country_codes.clone(),
        decided_contacts: settings.decided_contacts,
        verification: VerificationPolicy {
            code_ttl: chrono::TimeDelta::from_std(verification.code_ttl())
                .context("--code-ttl-secs")?,
            sends_per_account_day: verification.send_limit_per_account_day,
            sends_per_target_minute: verification.send_limit_per_target_minute,
            secret,
        },
        ..Policy::default()
    };
    let app =
        Arc::new(ContactService::new(store.clone(), policy).with_recording(metrics.recording()));
    let lifecycle = &settings.lifecycle;
    let publisher = match &lifecycle.nats_url {
        Some(url) => {
            let publisher = NatsPublisher::connect(NatsSettings {
                stream: lifecycle.nats_stream.clone(),
                timeout: lifecycle.publish_timeout(),
                ..NatsSettings::new(url.clone())
            })
            .await
            .map_err(|e| anyhow::anyhow!("setting up NATS: {e}"))?;
            info!(stream = %lifecycle.nats_stream, "integration events go to NATS JetStream");
            Some(publisher)
        }
        None => {
            info!("no --nats-url: integration events are not published");
            None
        }
    };
    let worker = Arc::new(LifecycleWorker::new(
        app.clone(),
        publisher,
        LifecycleSettings {
            owner: settings.instance_name(),
            max_attempts: lifecycle.publish_max_attempts,
            retry_base: std::time::Duration::from_millis(lifecycle.publish_retry_base_ms),
            publish_timeout: lifecycle.publish_timeout(),
            // Longer than a publish may take, so that one is never taken over while it runs.
            lease: (4 * lifecycle.publish_timeout()).max(std::time::Duration::from_secs(60)),
            ..LifecycleSettings::default()
        },
    ));
    let (database, monitor) =
        monitor_database(store.clone(), HealthSettings::default(), stopping.clone()).await;
    workers.spawn(running.track("the database health monitor", monitor));
    metrics.read_database(database.clone());
    workers.spawn(running.track(
        "the lifecycle worker (integration events)",
        worker.run(stopping),
    ));
    let audit = Arc::new(AuditService::new(store));
    // Both servers stop on the one signal.
    let (stop_servers, servers_stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_servers.send(true);
    });
    let readiness = Readiness {
        database: database.clone(),
        stopping: servers_stopping.clone(),
    };
    let pages = contactd_web::serve(
        http,
        app.clone(),
        readiness,
        Exposition::new(contactd_metrics::CONTENT_TYPE, {
            let metrics = metrics.clone();
            move || metrics.render()
        }),
        stopped(servers_stopping.clone()),
    );
    let grpc = Server::new(app, audit, access, security::server_settings(settings))
        .with_database_health(database)
        .with_recording(metrics.recording())
        .run(listener, stopped(servers_stopping.clone()));
    let drain = async {
        let (pages, grpc) = tokio::join!(
            running.track("the HTTP server", pages),
            running.track("the gRPC server (calls in flight)", grpc)
        );
        let served = grpc
            .map_err(|e| anyhow::anyhow!(e))
            .context("serving gRPC")
            .and(pages.context("serving the confirmation pages"));
        let _ = stop_workers.send(true);
        workers.join_all().await;
        served
    };
    let bound = settings.shutdown_timeout();
    let overdue = async {
        stopped(servers_stopping.clone()).await;
        tokio::time::sleep(bound).await;
    };
    tokio::select! {
        served = drain => served,
        () = overdue => {
            let still = running.names().join(", ");
            tracing::error!(still_running = %still, "shutdown did not finish within --shutdown-timeout-secs");
            anyhow::bail!("shutdown did not finish within {} s; still running: {still}", bound.as_secs())
        }
    }
}

/// The parts of a running server that have not finished yet, by name, for the log of a
/// shutdown that overran its bound.
#[derive(Clone, Default)]
struct Running(Arc<std::sync::Mutex<Vec<&'static str>>>);

impl Running {
    /// `work`, counted as running from now until it completes.
    fn track<F: Future>(
        &self,
        name: &'static str,
        work: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        self.lock().push(name);
        let running = self.clone();
        async move {
            let output = work.await;
            running.lock().retain(|other| *other != name);
            output
        }
    }

    fn names(&self) -> Vec<&'static str> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<&'static str>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `contactd projections rebuild [NAME]`.
pub async fn rebuild(name: Option<&str>, settings: &DatabaseSettings) -> anyhow::Result<()> {
    let store = Store::open(settings, false).await?;
    with_store!(store, store => rebuild_with(&store, name).await)
}

async fn rebuild_with<S: Backend>(store: &S, name: Option<&str>) -> anyhow::Result<()> {
    let names = store.rebuildable();
    let chosen: Vec<&str> = match name {
        None => names.clone(),
        Some(name) if names.contains(&name) => vec![name],
        Some(contactd_app::VerificationOutbox::NAME) => anyhow::bail!(
            "{} sends messages: it is never rebuilt, so that no rebuild sends anything again",
            contactd_app::VerificationOutbox::NAME
        ),
        Some(other) => anyhow::bail!(
            "no read model is called {other:?}; there are: {}",
            names.join(", ")
        ),
    };
    for name in chosen {
        let started = std::time::Instant::now();
        let report = store
            .rebuild(name)
            .await
            .with_context(|| format!("rebuilding {name}"))?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "rebuilt {name}: {} events in {seconds:.2} s ({:.0} events/s){}",
            report.events,
            report.events as f64 / seconds.max(f64::EPSILON),
            report
                .rows
                .map(|rows| format!(", {rows} rows"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// `contactd events replay`: events in log order as JSON lines on stdout: every event committed
/// before the command started (it waits for the writes running then to end), none after an
/// event of a write that started later.
pub async fn replay(
    contact: Option<&str>,
    from: i64,
    settings: &DatabaseSettings,
) -> anyhow::Result<()> {
    let store = Store::open_to_read(settings).await?;
    with_store!(store, store => replay_with(&store, contact, from).await)
}

async fn replay_with<S: EventLog>(
    store: &S,
    contact: Option<&str>,
    from: i64,
) -> anyhow::Result<()> {
    use std::io::Write;

    let start = store.start_at(from).await?;
    // Every event committed by now is before this; the replay is complete once nothing can
    // commit before it any more and the log has been read to it.
    let end = store.log_end().await?;
    let mut after = start.after;
    let mut end_readable = false;
    let mut waiting_said = false;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    'read: loop {
        let batch = match contact {
            Some(contact) => store.read_stream_log(contact, after, 1000).await?,
            None => store.read_log(after, None, 1000).await?,
        };
        let Some(last) = batch.last() else {
            if end_readable {
                break;
            }
            // Read once more after the writes running at the start have all ended.
            end_readable = store.readable_to(end).await?;
            if !end_readable {
                if !waiting_said {
                    tracing::warn!("waiting for writes that were running at the start to end");
                    waiting_said = true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            continue;
        };
        after = last.position;
        for event in &batch {
            if event.position >= end {
                break 'read;
            }
            if event.global_position >= start.min_global_position {
                writeln!(out, "{}", contactd_store_core::event_json_line(event))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// `contactd contacts forget --account ID --contact ID`: forgets the contact on the store
/// directly, as ForgetMessageContact does, and prints the request id; the events name the
/// operator as the caller (`service:cli:<user>`). A contact the account does not have fails
/// with the contract's message.
pub async fn forget(
    account: &str,
    contact: &str,
    settings: &DatabaseSettings,
) -> anyhow::Result<()> {
    let account = contactd_domain::AccountId::parse(account)
        .map_err(|_| anyhow::anyhow!("--account {account:?} is not an account id"))?;
    let request_id = RequestId::generate();
    let contact_id = contactd_domain::ContactId::parse(contact).map_err(|error| {
        anyhow::anyhow!(
            "{}",
            contactd_grpc::contract_error(&AppError::Parameter(error), &request_id.to_string())
        )
    })?;
    let store = Store::open(settings, false).await?;
    with_store!(store, store => forget_with(store, account, &contact_id, request_id).await)
}

async fn forget_with<S: Backend>(
    store: S,
    account: contactd_domain::AccountId,
    contact_id: &contactd_domain::ContactId,
    request_id: RequestId,
) -> anyhow::Result<()> {
    let app = ContactService::new(store, Policy::default());
    let ctx = CallContext::for_principal(
        Principal::service(account, &format!("cli:{}", operator())),
        request_id,
        None,
    );
    match app.forget_contact(&ctx, contact_id).await {
        Ok(_) => {
            println!("{request_id}");
            Ok(())
        }
        Err(error) => Err(anyhow::anyhow!(
            "{}",
            contactd_grpc::contract_error(&error, &request_id.to_string())
        )),
    }
}

/// Who runs an operator's command, for the events it records: the login name.
fn operator() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|user| !user.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `contactd keys rotate`: every data key rewrapped under the current master key.
pub async fn rotate_keys(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let keyring = crate::keys::keyring(settings, crate::keys::WhenMissing::Refuse)?;
    let current = keyring.current_id().to_owned();
    let store = Store::open_keyed(settings, false, None, keyring).await?;
    let rotation = with_store!(store, store => store.rotate_keys().await)
        .context("rewrapping the data keys")?;
    println!(
        "rewrapped {} data keys; {} already under {current}",
        rotation.rewrapped, rotation.current
    );
    Ok(())
}

/// `contactd events encrypt`: the personal fields of events stored in clear sealed in place.
pub async fn seal_clear_events(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let store = Store::open(settings, false).await?;
    let sealing = with_store!(store, store => store.seal_clear_events().await)
        .context("sealing the events stored in clear")?;
    println!("sealed {} events", sealing.sealed);
    Ok(())
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
