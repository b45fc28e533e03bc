//! SQLite's WAL copied into the database file in the background. By default SQLite does it in
//! whichever commit finds the WAL past 1 000 pages: while a script prints fast, that is a run's
//! log writer, which then copies and syncs 4 MB before it can store the next batch (12 % of the
//! server's CPU while `seq 2000000` streams, all of it on the run's path). Here a task does it
//! on whichever pooled connection is free, while the writers go on appending on theirs. The
//! commits keep a backstop at a higher mark, so the WAL stays bounded should this task fall
//! behind.
//!
//! Between bursts it copies only once the WAL holds `COPY_AT` pages not yet copied, as SQLite's
//! own mark would: the first commit after a complete checkpoint starts the WAL over and syncs
//! its header, so copying after every few runs would put an `fsync` on their path.

use std::os::unix::fs::FileExt;
use std::path::Path;
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
/// How soon otherwise: soon enough that a burst of output reaches the backstop only if this
/// task is held up.
const QUIET_EVERY: Duration = Duration::from_millis(250);
/// Pages not yet copied past which a quiet look copies them: SQLite's default mark.
const COPY_AT: u32 = 1000;

/// Pages in the WAL that no checkpoint has copied yet, read from the wal-index header SQLite
/// keeps in the `-shm` file (<https://www.sqlite.org/walformat.html>): `mxFrame` at byte 16,
/// the checkpoint's `nBackfill` at byte 96, both in the machine's byte order. `None` when the
/// header cannot be read or has a version this code does not know. Opened at each look: SQLite
/// deletes the file when its last connection closes and makes a new one with the next.
fn uncopied_pages(shm: &Path) -> Option<u32> {
    let mut header = [0u8; 100];
    std::fs::File::open(shm)
        .ok()?
        .read_exact_at(&mut header, 0)
        .ok()?;
    let word = |at: usize| {
        u32::from_ne_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    (word(0) == 3_007_000).then(|| word(16).saturating_sub(word(96)))
}

/// Checkpoints the database at `db` until `stop` is cancelled. A PASSIVE checkpoint waits for
/// no reader or writer; what a reader still needs is copied by a later one.
pub async fn run(pool: SqlitePool, db: std::path::PathBuf, stop: CancellationToken) {
    let mut shm = db.into_os_string();
    shm.push("-shm");
    let shm = std::path::PathBuf::from(shm);
    let mut last = 0;
    let mut since = std::time::Instant::now();
    let mut every = QUIET_EVERY;
    // A full disk fails every look until space is freed: said once, not four times a second.
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        // Where the header cannot be read, every look copies.
        if every == QUIET_EVERY && uncopied_pages(&shm).is_some_and(|pages| pages < COPY_AT) {
            continue;
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
                let rate = written as f64 / since.elapsed().as_secs_f64();
                since = std::time::Instant::now();
                every = if rate >= BUSY_PAGES_PER_SEC {
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

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    /// `t.db` in `dir`, in WAL mode with the given auto-checkpoint mark, holding a table `t`.
    async fn wal_table(dir: &Path, autocheckpoint: &str) -> (SqlitePool, std::path::PathBuf) {
        let db = dir.join("t.db");
        let options = SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma("wal_autocheckpoint", autocheckpoint.to_string());
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (x BLOB)")
            .execute(&pool)
            .await
            .unwrap();
        (pool, db)
    }

    #[tokio::test]
    async fn the_pages_not_yet_copied_are_read_as_sqlite_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, _) = wal_table(dir.path(), "0").await;
        let shm = dir.path().join("t.db-shm");
        for _ in 0..50 {
            sqlx::query("INSERT INTO t VALUES (randomblob(3000))")
                .execute(&pool)
                .await
                .unwrap();
        }
        let before = uncopied_pages(&shm).expect("a readable wal-index header");
        let (_, wal_pages, copied) =
            sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(wal_pages > 50, "{wal_pages}");
        // Nothing had been copied before this first checkpoint: every page was waiting.
        assert_eq!(i64::from(before), wal_pages);
        assert_eq!(copied, wal_pages);
        assert_eq!(uncopied_pages(&shm), Some(0));
        sqlx::query("INSERT INTO t VALUES (randomblob(3000))")
            .execute(&pool)
            .await
            .unwrap();
        // The WAL started over with that commit, holding its pages only.
        let after = uncopied_pages(&shm).unwrap();
        assert!((1..10).contains(&after), "{after}");
        assert_eq!(uncopied_pages(&dir.path().join("missing-shm")), None);
    }

    /// Between bursts the task leaves a few pages in the WAL, however long it waits, and copies
    /// them once they pass `COPY_AT`.
    #[tokio::test]
    async fn quiet_looks_copy_only_past_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, db) = wal_table(dir.path(), BACKSTOP_PAGES).await;
        let shm = dir.path().join("t.db-shm");
        let insert = |rows: usize| {
            let pool = pool.clone();
            async move {
                for _ in 0..rows {
                    sqlx::query("INSERT INTO t VALUES (randomblob(3000))")
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            }
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(pool.clone(), db.clone(), stop.clone()));
        insert(20).await;
        tokio::time::sleep(QUIET_EVERY * 3).await;
        let few = uncopied_pages(&shm).unwrap();
        assert!((20..COPY_AT).contains(&few), "{few} pages left for later");
        // Written until the mark is seen passed (a look may copy the WAL between an insert
        // and the read of its header, once the mark is passed: then more are written).
        let mut rows = 0;
        while uncopied_pages(&shm).unwrap() < COPY_AT {
            assert!(rows < 20 * COPY_AT, "the mark is never passed");
            insert(1).await;
            rows += 1;
        }
        let copied = async {
            while uncopied_pages(&shm).unwrap() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(QUIET_EVERY * 4, copied)
            .await
            .expect("the pages past the mark are copied at the next look");
        stop.cancel();
        task.await.unwrap();
    }
}
