//! Assembly: settings in, a running service out. Tests drive `build` + `serve` on a random
//! port with their own shutdown future.

use std::future::Future;
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
use crate::secrets::{MasterKey, SecretBox};
use crate::store::EnvCodec;

pub struct App {
    pub router: Router,
    pub state: AppState,
    pub scheduler: Scheduler,
}

/// Opens the store, applies migrations, prepares admin credentials and starts the engine.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    crate::fsutil::create_private_dir(&settings.data_dir)?;
    let store = open_store(&settings).await?;
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
    let isolation = crate::engine::isolate::probe_layers(engine.helper_exe()).await;
    match &isolation {
        Some(l) if l.unavailable.is_empty() => {
            tracing::info!(layers = ?l.active, "isolated runner: every sandbox layer is active")
        }
        Some(l) => tracing::warn!(
            active = ?l.active,
            unavailable = ?l.unavailable,
            "isolated runner: some sandbox layers are unavailable here; the others still apply"
        ),
        None => {
            tracing::warn!("isolated runner: the worker did not start; isolated runs will fail")
        }
    }
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
        isolation,
        settings,
    });
    Ok(App {
        router: crate::http::router(state.clone()),
        state,
        scheduler,
    })
}

/// Opens the store with the master key that opens its secrets. A key that does not is a
/// startup error; a rotation interrupted after re-sealing is finished here.
async fn open_store(settings: &Settings) -> anyhow::Result<crate::store::DynStore> {
    let key = MasterKey::load(settings.master_key.as_deref(), &settings.data_dir)?;
    let store =
        crate::store::connect(&settings.database_url, EnvCodec::new(SecretBox::new(&key))).await?;
    let Err(e) = store.verify_secrets().await else {
        return Ok(store);
    };
    let file = crate::secrets::key_file(&settings.data_dir);
    let pending = file.with_extension("key.new");
    if settings.master_key.is_none() {
        if let Ok(text) = std::fs::read_to_string(&pending) {
            let next = MasterKey::parse(&text)?;
            let store =
                crate::store::connect(&settings.database_url, EnvCodec::new(SecretBox::new(&next)))
                    .await?;
            if store.verify_secrets().await.is_ok() {
                std::fs::rename(&pending, &file)?;
                tracing::warn!("finished an interrupted master key rotation");
                return Ok(store);
            }
        }
    }
    anyhow::bail!(
        "{e}. The master key (--master-key / SCRIPTD_MASTER_KEY, or {}) is not the one the \
         stored secrets were encrypted with.",
        file.display()
    )
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
    let leases = tokio::spawn({
        let engine = app.state.engine.clone();
        let closing = closing.clone();
        async move { engine.keep_leases(closing).await }
    });
    let header_timeout = app.state.settings.header_read_timeout;
    crate::http::server::serve(listener, app.router, header_timeout, closing).await;
    let _ = scheduler.await;
    let _ = leases.await;
    app.state.engine.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
