//! What every handler can reach.

use std::ops::Deref;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::AdminAuth;
use crate::config::Settings;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::ratelimit::FailureLimiter;
use crate::store::DynStore;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub store: DynStore,
    /// Failed admin logins, counted per client for the audit log.
    pub login_failures: std::sync::Arc<crate::audit_keeper::LoginFailures>,
    pub engine: Engine,
    pub auth: AdminAuth,
    /// Failed admin logins, per client.
    pub admin_failures: FailureLimiter,
    /// Failed trigger-token attempts, per client: a budget of their own, so anonymous callers
    /// of the public trigger cannot spend the admin's.
    pub trigger_failures: FailureLimiter,
    /// Set once the missing client address has been reported.
    pub warned_no_client: std::sync::atomic::AtomicBool,
    /// Cancelled when the server begins to stop, so long-lived streams end.
    pub closing: CancellationToken,
    pub ui: super::ui::Templates,
    pub metrics: Arc<Metrics>,
    /// What the isolated runner's sandbox could turn on, found at startup.
    pub isolation: Option<crate::engine::isolate::IsolationLayers>,
    /// Sends notifications; the Test button uses it directly.
    pub notifier: crate::notifier::Notifier,
    /// The scripts list's entries as last written.
    pub list_json: super::list_json::ListJson,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl AppState {
    /// Tells the schedulers of every node to re-read schedules now rather than later.
    pub fn schedule_changed(&self) {
        self.engine.schedules_changed();
    }

    /// Script edits under this server's rules.
    pub fn catalog(&self) -> crate::catalog::Catalog {
        crate::catalog::Catalog {
            store: self.store.clone(),
            keep_versions: i64::from(self.settings.keep_versions),
            allowed_runners: self.settings.allowed_runners.clone(),
        }
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
