//! What every handler can reach.

use std::ops::Deref;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::ClientAddr;
use crate::auth::AdminAuth;
use crate::config::Settings;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::ratelimit::FailureLimiter;
use crate::store::DynStore;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub store: DynStore,
    pub engine: Engine,
    pub auth: AdminAuth,
    /// Failed admin logins and trigger-token attempts, per client address.
    pub limiter: FailureLimiter,
    /// Cancelled when the server begins to stop, so long-lived streams end.
    pub closing: CancellationToken,
    pub ui: super::ui::Templates,
    pub metrics: Arc<Metrics>,
    /// What the isolated runner's sandbox could turn on, found at startup.
    pub isolation: Option<crate::engine::isolate::IsolationLayers>,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl AppState {
    /// 429 if this client has used up its failed-authentication budget.
    pub fn refuse_if_limited(&self, client: ClientAddr) -> Result<(), ApiError> {
        match client.0.and_then(|ip| self.limiter.retry_after(ip)) {
            Some(secs) => Err(ApiError::RateLimited {
                retry_after_secs: secs,
            }),
            None => Ok(()),
        }
    }

    /// Counts a failed authentication against this client.
    pub fn count_failure(&self, client: ClientAddr) {
        if let Some(ip) = client.0 {
            self.limiter.record_failure(ip);
        }
    }

    /// Tells the schedulers of every node to re-read schedules now rather than later.
    pub fn schedule_changed(&self) {
        self.engine.schedules_changed();
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
