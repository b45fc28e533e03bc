//! Assembly: settings in, a running service out. Tests drive `build` + `serve` on a random
//! port with their own shutdown future.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::{AdminAuth, PasswordOrigin};
use crate::config::Settings;
use crate::engine::{Engine, EngineConfig};
use crate::http::state::{AppState, Inner};
use crate::metrics::Metrics;
use crate::ratelimit::FailureLimiter;
use crate::scheduler::Scheduler;

pub struct App {
    pub router: Router,
    pub state: AppState,
    pub scheduler: Scheduler,
}

/// Opens the store, applies migrations, prepares admin credentials and starts the engine.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let store = crate::store::connect(&settings.database_url).await?;
    let (auth, origin) = AdminAuth::load(
        &settings.admin_user,
        settings.admin_password.as_deref(),
        &settings.data_dir,
    )?;
    if let PasswordOrigin::Generated(password) = origin {
        // Printed once, to the console only (never to the log): only the hash is kept.
        println!(
            "scriptd: generated an admin password on first start.\n  user:     {}\n  password: {password}\n\
             Only its hash is stored ({}); this is the only time it is shown.",
            settings.admin_user,
            settings.data_dir.join("admin-password.argon2").display()
        );
    }
    let node_id = crate::fsutil::node_id(&settings.data_dir)?;
    let metrics = Arc::new(Metrics::default());
    let engine = Engine::start(
        store.clone(),
        EngineConfig::from_settings(&settings, node_id)?,
        metrics.clone(),
    )
    .await?;
    let schedule_wake = Arc::new(Notify::new());
    let scheduler = Scheduler {
        store: store.clone(),
        engine: engine.clone(),
        metrics: metrics.clone(),
        wake: schedule_wake.clone(),
    };
    let state = AppState::new(Inner {
        store,
        engine,
        auth,
        limiter: FailureLimiter::new(settings.auth_failure_limit, settings.auth_failure_window),
        closing: CancellationToken::new(),
        ui: Default::default(),
        schedule_wake,
        metrics,
        settings,
    });
    Ok(App {
        router: crate::http::router(state.clone()),
        state,
        scheduler,
    })
}

/// Serves until `shutdown` resolves, then ends streams, cancels runs and records them.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let closing = app.state.closing.clone();
    tokio::spawn({
        let closing = closing.clone();
        async move {
            shutdown.await;
            closing.cancel();
        }
    });
    let scheduler = tokio::spawn(app.scheduler.run(closing.clone()));
    let service = app
        .router
        .into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(closing.cancelled_owned())
        .await?;
    let _ = scheduler.await;
    app.state.engine.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
