//! Sends the notifications runs queue (see `store::deliveries`): each node's notifier claims
//! due deliveries, POSTs them to their webhook, signed when the webhook has a secret, and
//! records the answer. A failed attempt is tried again after a growing wait, up to
//! [`ATTEMPTS`] in all. Sending never touches the run path: a slow or dead receiver holds up
//! only its own deliveries, a few at a time.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::domain::webhook::{self, Event, Webhook};
use crate::domain::{Run, ScriptDefinition};
use crate::store::{Attempted, Delivery, DynStore};

/// Attempts per delivery, and the waits after each failed one.
pub const ATTEMPTS: i32 = 4;
const BACKOFF: [Duration; 3] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
];
/// How long a receiver has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries in flight on one node.
const IN_FLIGHT: usize = 8;
/// A claim holds a delivery this long: well past one attempt's timeout.
const LEASE: Duration = Duration::from_secs(60);
const POLL_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Notifier {
    store: DynStore,
    client: reqwest::Client,
    owner: String,
    wake: Arc<Notify>,
    /// Where the dashboard is, for links to runs; none without `--public-url`.
    dashboard: Option<String>,
}

/// What a test send got back, per webhook.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub url: String,
    /// Whether the receiver answered 2xx.
    pub ok: bool,
    /// Its HTTP status; null when there was no answer.
    #[schema(required = true)]
    pub response: Option<u16>,
    #[schema(required = true)]
    pub error: Option<String>,
}

impl Notifier {
    pub fn new(
        store: DynStore,
        owner: String,
        wake: Arc<Notify>,
        dashboard: Option<String>,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("scriptd/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with static settings builds");
        Self {
            store,
            client,
            owner,
            wake,
            dashboard,
        }
    }

    pub async fn run(self, closing: CancellationToken) {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let sending = tokio_util::task::TaskTracker::new();
        loop {
            let earliest = match self.store.earliest_pending_delivery().await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "notifier: could not read the deliveries");
                    None
                }
            };
            let now = Utc::now();
            // A claim takes the write lock: only try when something is due.
            if earliest.is_some_and(|due| due <= now) {
                loop {
                    let Ok(slot) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let now = Utc::now();
                    let until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
                    match self.store.claim_delivery(&self.owner, now, until).await {
                        Ok(Some(d)) => {
                            let me = self.clone();
                            sending.spawn(async move {
                                me.deliver(d).await;
                                drop(slot);
                            });
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "notifier: could not claim a delivery");
                            break;
                        }
                    }
                }
            }
            // Until the earliest one is due; one due but held by another node's claim is
            // looked at again after the poll.
            let wait = match earliest {
                Some(due) if due > now => (due - now).to_std().unwrap_or_default().min(POLL_EVERY),
                _ => POLL_EVERY,
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = closing.cancelled() => {
                    sending.close();
                    sending.wait().await;
                    return;
                }
            }
        }
    }

    fn link(&self, script_id: &str, run_id: &str) -> Option<String> {
        self.dashboard
            .as_ref()
            .map(|d| format!("{d}/scripts#s/{script_id}/runs/{run_id}"))
    }

    /// One attempt of a claimed delivery, and its record.
    async fn deliver(&self, d: Delivery) {
        let sent = self.send_stored(&d).await;
        let attempt = d.attempts + 1;
        let now = Utc::now();
        let (status, next_at) = match &sent {
            Ok(code) if (200..300).contains(code) => ("delivered", now),
            _ if attempt >= ATTEMPTS => ("failed", now),
            _ => {
                let wait = BACKOFF[(attempt as usize - 1).min(BACKOFF.len() - 1)];
                (
                    "pending",
                    now + chrono::Duration::from_std(wait).unwrap_or_default(),
                )
            }
        };
        let (response, error) = match sent {
            Ok(code) if (200..300).contains(&code) => (Some(i32::from(code)), None),
            Ok(code) => (
                Some(i32::from(code)),
                Some(format!("the receiver answered {code}")),
            ),
            Err(e) => (None, Some(e)),
        };
        if status != "delivered" {
            tracing::warn!(delivery = %d.id, run_id = %d.run_id, attempt, error = ?error, "notifier: delivery failed");
        }
        let record = Attempted {
            status,
            next_at,
            response,
            error,
            at: now,
        };
        if let Err(e) = self
            .store
            .finish_delivery(&d.id, &self.owner, &record)
            .await
        {
            tracing::warn!(delivery = %d.id, error = %e, "notifier: could not record a delivery");
        }
    }

    /// Builds the body from the run and script as they are now and POSTs it; the receiver's
    /// status, or why there was none.
    async fn send_stored(&self, d: &Delivery) -> Result<u16, String> {
        let script = self
            .store
            .get_script(&d.script_id)
            .await
            .map_err(|e| format!("the script: {e}"))?;
        let hook = script
            .notifications
            .iter()
            .find(|w| w.url == d.url)
            .ok_or("the webhook was removed from the script")?;
        let run = self
            .store
            .get_run(&d.run_id)
            .await
            .map_err(|e| format!("the run: {e}"))?;
        let event = Event::parse(&d.event).ok_or("an unknown event")?;
        self.post(hook, event, &script, &run, &d.id).await
    }

    async fn post(
        &self,
        hook: &Webhook,
        event: Event,
        script: &ScriptDefinition,
        run: &Run,
        delivery_id: &str,
    ) -> Result<u16, String> {
        let now: DateTime<Utc> = Utc::now();
        let link = self.link(&script.id, &run.id);
        let body = webhook::body(
            hook.format,
            event,
            script,
            run,
            link.as_deref(),
            &crate::domain::timestamp(now),
        );
        let mut req = self
            .client
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Scriptd-Event", event.as_str())
            .header("X-Scriptd-Delivery", delivery_id);
        if let Some(secret) = &hook.secret {
            req = req.header(
                "X-Scriptd-Signature",
                webhook::signature(secret, now.timestamp(), &body),
            );
        }
        match req.body(body).send().await {
            Ok(resp) => Ok(resp.status().as_u16()),
            Err(e) if e.is_timeout() => Err(format!("no answer within {} s", TIMEOUT.as_secs())),
            Err(e) if e.is_connect() => Err("could not connect".into()),
            Err(e) => Err(e.without_url().to_string()),
        }
    }

    /// Sends a `test` notification about the script's latest run (or a made-up one) to each
    /// of its webhooks, now, and says how each answered. Not recorded as deliveries.
    pub async fn test(&self, script: &ScriptDefinition, latest: Option<Run>) -> Vec<TestResult> {
        let run = latest.unwrap_or_else(|| sample_run(script));
        let mut out = Vec::new();
        for hook in &script.notifications {
            let id = format!("test-{}", uuid::Uuid::now_v7());
            let sent = self.post(hook, Event::Test, script, &run, &id).await;
            out.push(TestResult {
                url: hook.url.clone(),
                ok: sent.as_ref().is_ok_and(|c| (200..300).contains(c)),
                response: sent.as_ref().ok().copied(),
                error: match sent {
                    Ok(c) if (200..300).contains(&c) => None,
                    Ok(c) => Some(format!("the receiver answered {c}")),
                    Err(e) => Some(e),
                },
            });
        }
        out
    }
}

/// A run to describe in a test notification of a script that has not run yet.
fn sample_run(script: &ScriptDefinition) -> Run {
    let mut run = Run::queued(
        &script.id,
        crate::domain::Trigger::Manual,
        serde_json::json!({ "test": true }),
        None,
    );
    run.status = crate::domain::RunStatus::Succeeded;
    run.started_at = Some(run.queued_at);
    run.finished_at = Some(run.queued_at);
    run.exit_code = Some(0);
    run
}
