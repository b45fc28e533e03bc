//! Assembly: settings in, a running service out. `build` is the one call a host application
//! makes: it returns the router to mount and has already started the background work behind
//! it (claiming runs, the node feed, leases, the scheduler); `App::shutdown` stops it. The
//! standalone server is `build` + `serve`, which tests drive on a random port with their own
//! shutdown future.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
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
    background: Vec<JoinHandle<()>>,
    leases: JoinHandle<()>,
    leases_stop: CancellationToken,
}

/// Where a generated admin password is left when no one is at a terminal to read it.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// Shows a first start's generated password once, never to the log: on a terminal, printed;
/// otherwise (a service, whose stdout goes to the journal) written to a file readable by this
/// user only, whose place is printed instead.
fn show_generated_password(settings: &Settings, password: &str) -> anyhow::Result<()> {
    let hash = settings.data_dir.join("admin-password.argon2");
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        println!(
            "scriptd: generated an admin password on first start.\n  user:     {}\n  password: {password}\n\
             Only its hash is stored ({}); this is the only time it is shown.",
            settings.admin_user,
            hash.display()
        );
        return Ok(());
    }
    let file = settings.data_dir.join(INITIAL_PASSWORD_FILE);
    crate::fsutil::write_private(&file, format!("{password}\n").as_bytes())?;
    println!(
        "scriptd: generated an admin password on first start for user {}; it is in {} \
         (readable by this user only). Delete that file once you have it: only the hash ({}) \
         is needed.",
        settings.admin_user,
        file.display(),
        hash.display()
    );
    Ok(())
}

/// Opens the store, applies migrations, prepares admin credentials, starts the engine and its
/// background work, and returns the router to serve or mount.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    crate::fsutil::create_private_dir(&settings.data_dir)?;
    let store = open_store(&settings).await?;
    let (auth, origin) = AdminAuth::load(
        &settings.admin_user,
        settings.admin_password.as_deref(),
        &settings.data_dir,
    )?;
    if let PasswordOrigin::Generated(password) = origin {
        show_generated_password(&settings, &password)?;
    }
    match store.record_first_versions().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            scripts = n,
            "recorded the first version of scripts stored before versions were kept"
        ),
        Err(e) => tracing::warn!(error = %e, "could not record scripts' first versions"),
    }
    crate::audit_keeper::record_settings(&store, settings.recorded()).await;
    let node_id = crate::fsutil::node_id(&settings.data_dir)?;
    let metrics = Arc::new(Metrics::new(&node_id));
    let engine = Engine::start(
        store.clone(),
        EngineConfig::from_settings(&settings, node_id)?,
        metrics.clone(),
    )
    .await?;
    let isolation = engine.isolation_layers().await;
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
    let scheduler = Scheduler::new(
        store.clone(),
        engine.clone(),
        metrics.clone(),
        engine.schedule_wake(),
    );
    let notifier = crate::notifier::Notifier::new(
        store.clone(),
        format!("{}/{}", engine.node_id(), uuid::Uuid::now_v7()),
        engine.delivery_wake(),
        settings
            .public_url
            .as_ref()
            .map(|p| format!("{}{}", p.base(), settings.admin_path)),
    );
    let closing = CancellationToken::new();
    let login_failures = Arc::new(crate::audit_keeper::LoginFailures::default());
    let background = vec![
        tokio::spawn(login_failures.clone().run(store.clone(), closing.clone())),
        tokio::spawn(crate::audit_keeper::keep_for(
            store.clone(),
            settings.audit_retention_days,
            closing.clone(),
        )),
        tokio::spawn(notifier.clone().run(closing.clone())),
        tokio::spawn({
            let (engine, closing) = (engine.clone(), closing.clone());
            async move { engine.work(closing).await }
        }),
        tokio::spawn({
            let (engine, closing) = (engine.clone(), closing.clone());
            async move { engine.follow_feed(closing).await }
        }),
        tokio::spawn(scheduler.run(closing.clone())),
    ];
    // Leases are kept until the runs stopped at shutdown are recorded, so no other node takes
    // them over meanwhile.
    let leases_stop = CancellationToken::new();
    let leases = tokio::spawn({
        let (engine, stop) = (engine.clone(), leases_stop.clone());
        async move { engine.keep_leases(stop).await }
    });
    let state = AppState::new(Inner {
        store,
        engine,
        auth,
        admin_failures: FailureLimiter::new(
            settings.auth_failure_limit,
            settings.auth_failure_window,
        ),
        trigger_failures: FailureLimiter::new(
            settings.auth_failure_limit,
            settings.auth_failure_window,
        ),
        warned_no_client: Default::default(),
        login_failures,
        closing,
        ui: Default::default(),
        metrics,
        isolation,
        notifier,
        settings,
        list_json: Default::default(),
    });
    Ok(App {
        router: crate::http::router(state.clone()),
        state,
        background,
        leases,
        leases_stop,
    })
}

impl App {
    /// Cancelled when the module begins to stop. A host serving the router with its own server
    /// cancels it when its graceful shutdown starts, so live streams end and the server can
    /// drain, then calls `shutdown`.
    pub fn closing(&self) -> CancellationToken {
        self.state.closing.clone()
    }

    /// Ends live streams and the background work, stops the runs executing on this node and
    /// records them. Queued runs stay queued for the other nodes or the next start.
    pub async fn shutdown(self) {
        self.state.closing.cancel();
        for task in self.background {
            let _ = task.await;
        }
        self.state.engine.shutdown().await;
        self.leases_stop.cancel();
        let _ = self.leases.await;
        tracing::info!("stopped");
    }
}

/// Opens the store with the master key that opens its secrets (the server, and the commands
/// that work on its database). A key that does not is a
/// startup error; a rotation interrupted after re-sealing is finished here.
pub async fn open_store(settings: &Settings) -> anyhow::Result<crate::store::DynStore> {
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

/// Serves until `shutdown` resolves, then stops as `App::shutdown` does.
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
    let settings = &app.state.settings;
    let limits = crate::http::server::Limits {
        header_timeout: settings.header_read_timeout,
        keep_alive_idle: settings.keep_alive_idle,
        max_connections: settings.max_connections,
    };
    crate::http::server::serve(listener, app.router.clone(), limits, closing).await;
    app.shutdown().await;
    Ok(())
}
