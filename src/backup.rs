//! `scriptd backup` and `scriptd restore`: a consistent copy of the SQLite database taken
//! while the server runs, and putting one back while it is stopped. (With PostgreSQL,
//! `pg_dump` does this job.)

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::config::Settings;

/// The database file behind a `sqlite://` URL; PostgreSQL is refused with what to use.
fn sqlite_file(database_url: &str) -> anyhow::Result<PathBuf> {
    if !database_url.starts_with("sqlite:") {
        bail!(
            "backup and restore work on the SQLite database; for PostgreSQL use pg_dump and \
             pg_restore (and keep the data directory's master.key with the dump)"
        );
    }
    let options = SqliteConnectOptions::from_str(database_url)?;
    Ok(options.get_filename().to_path_buf())
}

async fn open(file: &Path, read_only: bool) -> anyhow::Result<SqliteConnection> {
    SqliteConnectOptions::new()
        .filename(file)
        .read_only(read_only)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("cannot open {}", file.display()))
}

/// Checks that `file` is a whole scriptd database.
async fn check(file: &Path) -> anyhow::Result<()> {
    let mut conn = open(file, true).await?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .with_context(|| format!("{} is not a SQLite database", file.display()))?;
    if verdict != "ok" {
        bail!("{} is damaged: {verdict}", file.display());
    }
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
         AND name IN ('_sqlx_migrations', 'scripts', 'runs')",
    )
    .fetch_one(&mut conn)
    .await?;
    if tables != 3 {
        bail!("{} is not a scriptd database", file.display());
    }
    conn.close().await?;
    Ok(())
}

/// Writes a consistent copy of the live database to `out` (a new file, readable by its owner
/// only) and checks it. Runs beside a serving server: SQLite copies one snapshot while
/// writers go on.
pub async fn backup(settings: &Settings, out: &Path) -> anyhow::Result<u64> {
    let db = sqlite_file(&settings.database_url)?;
    if out.exists() {
        bail!("{} already exists; name a new file", out.display());
    }
    if !db.exists() {
        bail!("no database at {}", db.display());
    }
    let target = out
        .to_str()
        .context("the backup file's name must be valid UTF-8")?;
    let mut conn = open(&db, true).await?;
    // The copy holds every secret (sealed) and the runs' output: its owner's alone, from the
    // moment it exists.
    let previous = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let copied = sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut conn)
        .await;
    nix::sys::stat::umask(previous);
    copied.with_context(|| format!("cannot write {}", out.display()))?;
    conn.close().await?;
    check(out).await?;
    Ok(std::fs::metadata(out)?.len())
}

/// Puts a backup in place of the database. Refused while a server has the database open.
pub async fn restore(settings: &Settings, from: &Path) -> anyhow::Result<()> {
    let db = sqlite_file(&settings.database_url)?;
    check(from).await?;
    if db.exists() {
        ensure_unused(&db).await?;
    }
    let staged = db.with_extension("db.restoring");
    let _ = std::fs::remove_file(&staged);
    {
        let previous = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let copied = std::fs::copy(from, &staged);
        nix::sys::stat::umask(previous);
        copied.with_context(|| format!("cannot copy {}", from.display()))?;
        std::fs::File::open(&staged)?.sync_all()?;
    }
    // The old database's write-ahead log must not be applied to the restored file.
    for suffix in ["-wal", "-shm"] {
        let mut side = db.clone().into_os_string();
        side.push(suffix);
        match std::fs::remove_file(&side) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {side:?}"))
            }
            _ => {}
        }
    }
    std::fs::rename(&staged, &db)?;
    if let Some(dir) = db.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A server keeps its database open; in WAL mode every open connection holds a shared lock
/// on the file, so an exclusive lock is granted only when none is left.
async fn ensure_unused(db: &Path) -> anyhow::Result<()> {
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(Duration::ZERO)
        .pragma("locking_mode", "EXCLUSIVE")
        .connect()
        .await
        .with_context(|| format!("cannot open {}", db.display()))?;
    let locked = sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await;
    if locked.is_err() {
        bail!(
            "{} is in use: stop the server (every node using it) before restoring",
            db.display()
        );
    }
    // Folds the log into the file and leaves nothing of it behind.
    sqlx::query("COMMIT").execute(&mut conn).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}
