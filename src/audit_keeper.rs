//! The audit log's own background work: failed admin logins counted per client, the
//! settings a start changes, and retention.
//!
//! Failed logins record no stored change, so they are not written in a change's transaction.
//! The first failure of a client in a window is an entry at once; the ones after it add to
//! that entry's count, written at most once a second, so a flood of guesses costs a write per
//! second rather than one per guess.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::{Action, Author};
use crate::store::DynStore;

/// Failures from one client within this long are one entry.
const WINDOW: Duration = Duration::from_secs(600);
/// Counts are written at most this often.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Clients tracked at once; beyond it, failures are counted under "other clients".
const MAX_CLIENTS: usize = 10_000;
/// How often old entries are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

struct Window {
    entry: Option<String>,
    opened: Instant,
    unsaved: i64,
}

#[derive(Default)]
pub struct LoginFailures {
    clients: Mutex<HashMap<Option<IpAddr>, Window>>,
    wake: Notify,
}

impl LoginFailures {
    /// Counts one failed admin login from `client`.
    pub fn failed(&self, client: Option<IpAddr>) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let key = if clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
            None
        } else {
            client
        };
        let window = clients.entry(key).or_insert_with(|| Window {
            entry: None,
            opened: Instant::now(),
            unsaved: 0,
        });
        window.unsaved += 1;
        drop(clients);
        self.wake.notify_one();
    }

    /// Writes the counts not yet written; forgets windows that are over.
    async fn flush(&self, store: &DynStore) {
        let due: Vec<(Option<IpAddr>, Option<String>, i64)> = {
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            clients.retain(|_, w| w.unsaved > 0 || w.opened.elapsed() < WINDOW);
            clients
                .iter_mut()
                .filter(|(_, w)| w.unsaved > 0)
                .map(|(client, w)| {
                    if w.opened.elapsed() >= WINDOW {
                        w.entry = None;
                        w.opened = Instant::now();
                    }
                    let n = std::mem::take(&mut w.unsaved);
                    (*client, w.entry.clone(), n)
                })
                .collect()
        };
        for (client, entry, count) in due {
            let written = match &entry {
                Some(id) => store.count_audit(id, count).await.map(|_| None),
                None => {
                    let shown =
                        client.map_or_else(|| "other clients".to_string(), |c| c.to_string());
                    let mut e = Author {
                        actor: "anonymous".into(),
                        client: shown,
                    }
                    .entry(
                        Action::LoginFailed,
                        "admin-login",
                        json!({ "windowSeconds": WINDOW.as_secs() }),
                    );
                    e.count = count;
                    store.append_audit(&e).await.map(|_| Some(e.id))
                }
            };
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            match written {
                Ok(Some(id)) => {
                    if let Some(w) = clients.get_mut(&client) {
                        w.entry = Some(id);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not record failed logins in the audit log");
                    if let Some(w) = clients.get_mut(&client) {
                        w.unsaved += count;
                    }
                }
            }
        }
    }

    /// Writes counts as failures come, until `closing`; then writes what is left.
    pub async fn run(self: Arc<Self>, store: DynStore, closing: CancellationToken) {
        loop {
            tokio::select! {
                _ = closing.cancelled() => break,
                _ = self.wake.notified() => {}
            }
            self.flush(&store).await;
            tokio::select! {
                _ = closing.cancelled() => break,
                _ = tokio::time::sleep(FLUSH_EVERY) => {}
            }
        }
        self.flush(&store).await;
    }
}

/// Records the settings this start changes from the last recorded ones (names and values
/// that are not secret; a secret setting only as changed).
pub async fn record_settings(store: &DynStore, now: Map<String, Value>) {
    let last = match store.last_audit(Action::SettingsChange).await {
        Ok(last) => last,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the last recorded settings");
            return;
        }
    };
    let before = last
        .and_then(|e| e.summary.get("settings").cloned())
        .and_then(|s| s.as_object().cloned())
        .unwrap_or_default();
    let changed: Vec<&String> = now
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .chain(before.keys().filter(|k| !now.contains_key(*k)))
        .collect();
    if changed.is_empty() {
        return;
    }
    let entry = Author::server("system").entry(
        Action::SettingsChange,
        "settings",
        json!({ "changed": changed, "settings": now }),
    );
    if let Err(e) = store.append_audit(&entry).await {
        tracing::warn!(error = %e, "could not record the settings in the audit log");
    }
}

/// Removes entries older than `days`, now and every hour, until `closing`.
pub async fn keep_for(store: DynStore, days: u32, closing: CancellationToken) {
    loop {
        let before = Utc::now() - chrono::Duration::days(i64::from(days));
        match store.prune_audit(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, days, "removed old audit entries"),
            Err(e) => tracing::warn!(error = %e, "could not remove old audit entries"),
        }
        tokio::select! {
            _ = closing.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}
