//! The feed between PostgreSQL nodes: `NOTIFY` on one channel per database schema (so
//! installations sharing a database do not hear each other), `LISTEN` on a dedicated
//! connection. Payloads are short text: `<origin> <kind> [run id] [value]`; a node drops its
//! own echoes by origin.

use async_trait::async_trait;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::broadcast;

use super::feed::{Feed, Signal};
use crate::domain::RunStatus;

pub struct PgFeed {
    pool: PgPool,
    channel: String,
    origin: String,
    tx: broadcast::Sender<Signal>,
    listener: tokio::task::AbortHandle,
}

impl PgFeed {
    pub async fn start(pool: PgPool) -> anyhow::Result<Self> {
        let (schema,): (String,) = sqlx::query_as("SELECT current_schema()")
            .fetch_one(&pool)
            .await?;
        let mut channel: String = format!("scriptd_{schema}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        // PostgreSQL identifiers are at most 63 bytes.
        channel.truncate(63);
        let origin = uuid::Uuid::now_v7().simple().to_string();
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(&channel).await?;
        let (tx, _) = broadcast::channel(1024);
        let task = tokio::spawn(listen(listener, origin.clone(), tx.clone()));
        Ok(Self {
            pool,
            channel,
            origin,
            tx,
            listener: task.abort_handle(),
        })
    }
}

impl Drop for PgFeed {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

async fn listen(mut listener: PgListener, origin: String, tx: broadcast::Sender<Signal>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => {
                if let Some((from, signal)) = decode(n.payload()) {
                    if from != origin {
                        let _ = tx.send(signal);
                    }
                }
            }
            // The connection dropped; the next call reconnects. What was sent meanwhile is lost.
            Ok(None) => {
                let _ = tx.send(Signal::Resync);
            }
            Err(e) => {
                tracing::warn!(error = %e, "node feed: listening failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let _ = tx.send(Signal::Resync);
            }
        }
    }
}

fn encode(origin: &str, signal: &Signal) -> String {
    match signal {
        Signal::Work => format!("{origin} work"),
        Signal::Schedules => format!("{origin} schedules"),
        Signal::Resync => format!("{origin} resync"),
        Signal::Cancel { run_id } => format!("{origin} cancel {run_id}"),
        Signal::Lines { run_id, to_seq } => format!("{origin} lines {run_id} {to_seq}"),
        Signal::Status { run_id, status } => {
            format!("{origin} status {run_id} {}", status.as_str())
        }
    }
}

fn decode(payload: &str) -> Option<(&str, Signal)> {
    let mut parts = payload.split(' ');
    let origin = parts.next()?;
    let kind = parts.next()?;
    let mut run_id = || parts.next().map(str::to_string);
    let signal = match kind {
        "work" => Signal::Work,
        "schedules" => Signal::Schedules,
        "resync" => Signal::Resync,
        "cancel" => Signal::Cancel { run_id: run_id()? },
        "lines" => {
            let run_id = run_id()?;
            let to_seq = parts.next()?.parse().ok()?;
            Signal::Lines { run_id, to_seq }
        }
        "status" => {
            let run_id = run_id()?;
            let status = RunStatus::parse(parts.next()?)?;
            Signal::Status { run_id, status }
        }
        _ => return None,
    };
    Some((origin, signal))
}

#[async_trait]
impl Feed for PgFeed {
    async fn publish(&self, signal: &Signal) {
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(encode(&self.origin, signal))
            .execute(&self.pool)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "node feed: could not notify the other nodes");
        }
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<Signal>> {
        Some(self.tx.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_survives_the_wire() {
        let signals = [
            Signal::Work,
            Signal::Schedules,
            Signal::Resync,
            Signal::Cancel {
                run_id: "r1".into(),
            },
            Signal::Lines {
                run_id: "r2".into(),
                to_seq: 42,
            },
            Signal::Status {
                run_id: "r3".into(),
                status: RunStatus::TimedOut,
            },
        ];
        for s in signals {
            let wire = encode("node-a", &s);
            assert_eq!(decode(&wire), Some(("node-a", s)));
        }
        assert_eq!(decode("node-a lines r1 notanumber"), None);
        assert_eq!(decode("node-a bogus"), None);
    }
}
