//! SQLite's WAL copied into the database file in the background. By default SQLite does it in
//! whichever commit finds the WAL past 1 000 pages: while a script prints fast, that is a run's
//! log writer, which then copies and syncs 4 MB before it can store the next batch (12 % of the
//! server's CPU while `seq 2000000` streams, all of it on the run's path). Here a task does it
//! on whichever pooled connection is free, while the writers go on appending on theirs. The
//! commits keep a backstop at a higher mark, so the WAL stays bounded should this task fall
//! behind.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio_util::sync::CancellationToken;

/// Pages past which a commit checkpoints itself (about 40 MB): reached only if this task
/// cannot keep up.
pub const BACKSTOP_PAGES: &str = "10000";
/// Pages written a second (about 40 MB) past which the next look comes sooner: output
/// streaming in. Runs starting and ending write a few thousand a second even at hundreds of
/// runs a second, and checkpointing those more often would only copy their hot pages more
/// often.
const BUSY_PAGES_PER_SEC: f64 = 10_000.0;
/// How soon to look again while output streams in.
const BUSY_EVERY: Duration = Duration::from_millis(50);
/// How soon otherwise: a few checkpoints a second under a steady flow of runs, about what
/// SQLite's own 1 000-page mark gives, and soon enough that a burst of output reaches the
/// backstop only if this task is held up.
const QUIET_EVERY: Duration = Duration::from_millis(250);

/// Checkpoints until `stop` is cancelled. A PASSIVE checkpoint waits for no reader or
/// writer; what a reader still needs is copied by a later one.
pub async fn run(pool: SqlitePool, stop: CancellationToken) {
    let mut last = 0;
    let mut every = QUIET_EVERY;
    // A full disk fails every look until space is freed: said once, not four times a second.
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await
        {
            Ok((_, wal_pages, _)) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("the SQLite WAL is being checkpointed again");
                }
                // Once all of it has been copied the WAL starts over: every page in it is new.
                let written = if wal_pages >= last {
                    wal_pages - last
                } else {
                    wal_pages
                };
                every = if written as f64 >= BUSY_PAGES_PER_SEC * every.as_secs_f64() {
                    BUSY_EVERY
                } else {
                    QUIET_EVERY
                };
                last = wal_pages;
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "could not checkpoint the SQLite WAL");
                }
                every = QUIET_EVERY;
            }
        }
    }
}
