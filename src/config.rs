//! Settings, layered: defaults in code, then the `--config` TOML file, then `SCRIPTD_*`
//! environment variables, then flags. The result travels in state; nothing reads the
//! environment later.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

/// Flags of `scriptd serve`. Every one has an environment variable and a TOML key (the flag
/// name without `--`, e.g. `max-concurrent-runs = 4`): the same struct reads the file.
#[derive(Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys as the flag names without `--`).
    #[arg(long, env = "SCRIPTD_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "SCRIPTD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite database, the admin password hash and the master key
    /// [default: ./scriptd-data]
    #[arg(long, env = "SCRIPTD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://… [default: sqlite://<data-dir>/scriptd.db]
    #[arg(
        long,
        env = "SCRIPTD_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Admin user name for the dashboard and admin API [default: admin]
    #[arg(long, env = "SCRIPTD_ADMIN_USER", value_name = "NAME")]
    pub admin_user: Option<String>,
    /// Admin password; when unset, one is generated on first start, printed once, and only its
    /// hash is kept in the data directory
    #[arg(
        long,
        env = "SCRIPTD_ADMIN_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub admin_password: Option<String>,
    /// Path of the admin dashboard; the Scripts page is <admin-path>/scripts [default: /admin]
    #[arg(long, env = "SCRIPTD_ADMIN_PATH", value_name = "PATH")]
    pub admin_path: Option<String>,
    /// Master key for secret env values, base64 of 32 bytes; when unset, one is generated into
    /// <data-dir>/master.key (mode 0600)
    #[arg(
        long,
        env = "SCRIPTD_MASTER_KEY",
        value_name = "BASE64",
        hide_env_values = true
    )]
    pub master_key: Option<String>,
    /// Runs allowed at once on this node; more wait as `queued` [default: CPUs × 2]
    #[arg(long, env = "SCRIPTD_MAX_CONCURRENT_RUNS", value_name = "N")]
    pub max_concurrent_runs: Option<usize>,
    /// Grace period between SIGTERM and SIGKILL when a run is canceled or times out, in
    /// milliseconds [default: 5000]
    #[arg(long, env = "SCRIPTD_KILL_GRACE_MS", value_name = "MS")]
    pub kill_grace_ms: Option<u64>,
    /// Bytes of output stored per run before the log is cut with a marker [default: 10485760]
    #[arg(long, env = "SCRIPTD_MAX_LOG_BYTES", value_name = "BYTES")]
    pub max_log_bytes: Option<u64>,
    /// Finished runs kept per script; older runs and their logs are deleted [default: 200]
    #[arg(long, env = "SCRIPTD_KEEP_RUNS", value_name = "N")]
    pub keep_runs: Option<u32>,
    /// Versions kept per script (those runs still point to are kept too) [default: 100]
    #[arg(long, env = "SCRIPTD_KEEP_VERSIONS", value_name = "N")]
    pub keep_versions: Option<u32>,
    /// Days the audit log keeps an entry [default: 365]
    #[arg(long, env = "SCRIPTD_AUDIT_RETENTION_DAYS", value_name = "DAYS")]
    pub audit_retention_days: Option<u32>,
    /// Memory limit of the isolated JavaScript runner per run, in MiB (a script may set its
    /// own) [default: 64]
    #[arg(long, env = "SCRIPTD_ISOLATE_MEMORY_MB", value_name = "MIB")]
    pub isolate_memory_mb: Option<u64>,
    /// With several nodes on one PostgreSQL database: seconds after which the unfinished runs
    /// of a node that stopped renewing them are marked failed by the others [default: 60]
    #[arg(long, env = "SCRIPTD_RUN_LEASE_SECS", value_name = "SECS")]
    pub run_lease_secs: Option<u64>,
    /// Failed logins or trigger-token attempts allowed per client address per minute before
    /// further attempts get 429 [default: 20]
    #[arg(long, env = "SCRIPTD_AUTH_FAILURE_LIMIT", value_name = "N")]
    pub auth_failure_limit: Option<u32>,
    /// Behind a reverse proxy: the request header that carries the client's address (e.g.
    /// X-Forwarded-For, whose last entry is taken, or X-Real-IP). Set it only when every
    /// request comes through that proxy, since clients could otherwise forge it
    #[arg(long, env = "SCRIPTD_CLIENT_IP_HEADER", value_name = "HEADER")]
    pub client_ip_header: Option<String>,
    /// Behind a reverse proxy: the URL browsers and callers use, e.g.
    /// https://scripts.example.com. Requests from that origin pass the cross-origin check
    /// whatever Host the proxy forwards, and trigger URLs are built from it
    #[arg(long, env = "SCRIPTD_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Open connections at most; at the cap the connection idle the longest is closed to make
    /// room [default: from the open-file limit, at most 10000]
    #[arg(long, env = "SCRIPTD_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Runs that may wait in the queue, across all scripts and nodes; past it, starts get 429
    /// [default: 10000]
    #[arg(long, env = "SCRIPTD_MAX_QUEUED_RUNS", value_name = "N")]
    pub max_queued_runs: Option<u32>,
    /// Runs of one script that may wait in the queue [default: 1000]
    #[arg(long, env = "SCRIPTD_MAX_QUEUED_PER_SCRIPT", value_name = "N")]
    pub max_queued_per_script: Option<u32>,
    /// Runners scripts may use, comma-separated, from host, isolated and browser: a script
    /// with another one can be neither saved nor run. `isolated,browser` keeps all code off
    /// the host [default: host,isolated,browser]
    #[arg(long, env = "SCRIPTD_ALLOWED_RUNNERS", value_name = "LIST")]
    pub allowed_runners: Option<String>,
    /// Serve /metrics without authentication (for a Prometheus scraper on a trusted network);
    /// by default it needs the admin credentials
    #[arg(long, env = "SCRIPTD_PUBLIC_METRICS")]
    pub public_metrics: bool,
}

/// The resolved configuration.
#[derive(Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub admin_user: String,
    pub admin_password: Option<String>,
    pub admin_path: String,
    pub master_key: Option<String>,
    pub max_concurrent_runs: usize,
    pub kill_grace: Duration,
    pub max_log_bytes: u64,
    pub keep_runs: u32,
    pub keep_versions: u32,
    pub audit_retention_days: u32,
    pub auth_failure_limit: u32,
    /// The header a trusted reverse proxy puts the client's address in.
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// The address clients use, when it is not the one the server sees (a reverse proxy).
    pub public_url: Option<PublicUrl>,
    pub isolate_memory_mb: u64,
    pub run_lease: Duration,
    /// The window `auth_failure_limit` counts over.
    pub auth_failure_window: Duration,
    /// How long a client may take to send its request headers, or to start its first request.
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may sit between requests.
    pub keep_alive_idle: Duration,
    /// How long a trigger caller whose token was accepted has to send the body.
    pub body_read_timeout: Duration,
    pub max_connections: Option<usize>,
    pub public_metrics: bool,
    pub allowed_runners: Vec<crate::domain::Runner>,
    pub max_queued_runs: u32,
    pub max_queued_per_script: u32,
    /// The environment scripts inherit before scriptd removes its own settings from it;
    /// `None` means this process's. Embedding hosts and tests may set it; there is no flag.
    pub child_env: Option<Vec<(String, String)>>,
    /// The executable providing `__launch` and `__isolate`; `None` means this process's own.
    pub supervisor_exe: Option<PathBuf>,
}

impl Settings {
    /// The settings a start records in the audit log when they change: no secret, only
    /// whether one is configured.
    pub fn recorded(&self) -> serde_json::Map<String, serde_json::Value> {
        let runners: Vec<&str> = self.allowed_runners.iter().map(|r| r.as_str()).collect();
        let json = serde_json::json!({
            "database": redact_url(&self.database_url),
            "adminUser": self.admin_user,
            "adminPassword": if self.admin_password.is_some() { "configured" } else { "stored" },
            "adminPath": self.admin_path,
            "masterKey": if self.master_key.is_some() { "configured" } else { "file" },
            "maxConcurrentRuns": self.max_concurrent_runs,
            "killGraceMs": self.kill_grace.as_millis() as u64,
            "maxLogBytes": self.max_log_bytes,
            "keepRuns": self.keep_runs,
            "keepVersions": self.keep_versions,
            "auditRetentionDays": self.audit_retention_days,
            "authFailureLimit": self.auth_failure_limit,
            "clientIpHeader": self.client_ip_header.as_ref().map(|h| h.as_str()),
            "publicUrl": self.public_url.as_ref().map(|p| p.base()),
            "isolateMemoryMb": self.isolate_memory_mb,
            "runLeaseSecs": self.run_lease.as_secs(),
            "maxConnections": self.max_connections,
            "publicMetrics": self.public_metrics,
            "allowedRunners": runners,
            "maxQueuedRuns": self.max_queued_runs,
            "maxQueuedPerScript": self.max_queued_per_script,
        });
        match json {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("admin_user", &self.admin_user)
            .field("admin_password", &redacted(&self.admin_password))
            .field("admin_path", &self.admin_path)
            .field("master_key", &redacted(&self.master_key))
            .field("max_concurrent_runs", &self.max_concurrent_runs)
            .field("kill_grace", &self.kill_grace)
            .field("max_log_bytes", &self.max_log_bytes)
            .field("keep_runs", &self.keep_runs)
            .field("keep_versions", &self.keep_versions)
            .field("audit_retention_days", &self.audit_retention_days)
            .field("auth_failure_limit", &self.auth_failure_limit)
            .field("client_ip_header", &self.client_ip_header)
            .field("public_url", &self.public_url)
            .field("allowed_runners", &self.allowed_runners)
            .field("isolate_memory_mb", &self.isolate_memory_mb)
            .field("run_lease", &self.run_lease)
            .finish()
    }
}

fn parse_runners(list: &str) -> anyhow::Result<Vec<crate::domain::Runner>> {
    let mut runners = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let runner = crate::domain::Runner::parse(name).ok_or_else(|| {
            anyhow::anyhow!(
                "--allowed-runners: unknown runner {name:?} (use host, isolated, browser)"
            )
        })?;
        if !runners.contains(&runner) {
            runners.push(runner);
        }
    }
    anyhow::ensure!(!runners.is_empty(), "--allowed-runners names no runner");
    Ok(runners)
}

/// Drops credentials from a database URL for display: the user info, and any query
/// parameter whose name mentions a password.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://<redacted>@{}", &base[..scheme_end], &base[at + 1..])
        }
        _ => base.to_string(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("pass") => {
                    format!("{k}=<redacted>")
                }
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// The URL clients reach the server by: scheme, host and port, no path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host:port`, lower-cased, the port always written.
    origin: String,
    /// The URL as given, without a trailing slash, to build links from.
    base: String,
}

impl PublicUrl {
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        let bad = |why: &str| anyhow::anyhow!("--public-url {raw:?}: {why}");
        let base = raw.trim().trim_end_matches('/');
        let (scheme, authority) = base
            .split_once("://")
            .ok_or_else(|| bad("expected http://HOST[:PORT] or https://HOST[:PORT]"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(bad("the scheme must be http or https")),
        };
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad(
                "give only the scheme, host and port: scriptd serves from the root path",
            ));
        }
        Ok(Self {
            origin: crate::auth::origin_of(&scheme, authority, default_port),
            base: base.to_string(),
        })
    }

    /// The URL as given, without a trailing slash: links are built from it.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The URL of `path` (which starts with `/`) as clients see it.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Settings {
    /// Defaults suitable for a test or an embedding host: everything under `data_dir`.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self::resolve(ServeArgs {
            data_dir: Some(data_dir.into()),
            ..Default::default()
        })
        .expect("defaults are valid")
    }

    pub fn load(args: ServeArgs) -> anyhow::Result<Self> {
        Self::resolve(args)
    }

    fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => ServeArgs::default(),
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./scriptd-data"));
        let database_url = args
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("scriptd.db").display()));
        let mut admin_path = args
            .admin_path
            .or(file.admin_path)
            .unwrap_or_else(|| "/admin".into());
        if !admin_path.starts_with('/') {
            admin_path.insert(0, '/');
        }
        while admin_path.len() > 1 && admin_path.ends_with('/') {
            admin_path.pop();
        }
        anyhow::ensure!(
            admin_path != "/"
                && !SERVER_PATHS
                    .iter()
                    .any(|p| admin_path == *p || admin_path.starts_with(&format!("{p}/"))),
            "--admin-path must not be /, nor one of the server's own paths ({}) or under one",
            SERVER_PATHS.join(", ")
        );
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let max_concurrent_runs = args
            .max_concurrent_runs
            .or(file.max_concurrent_runs)
            .unwrap_or(cpus * 2);
        anyhow::ensure!(
            max_concurrent_runs >= 1,
            "--max-concurrent-runs must be at least 1"
        );
        let admin_user = args
            .admin_user
            .or(file.admin_user)
            .unwrap_or_else(|| "admin".into());
        anyhow::ensure!(
            !admin_user.is_empty() && !admin_user.contains(':'),
            "--admin-user must be non-empty and contain no ':'"
        );
        Ok(Self {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir,
            database_url,
            admin_user,
            admin_password: args
                .admin_password
                .or(file.admin_password)
                .filter(|p| !p.is_empty()),
            admin_path,
            master_key: args
                .master_key
                .or(file.master_key)
                .filter(|k| !k.is_empty()),
            max_concurrent_runs,
            kill_grace: Duration::from_millis(
                args.kill_grace_ms.or(file.kill_grace_ms).unwrap_or(5000),
            ),
            max_log_bytes: args
                .max_log_bytes
                .or(file.max_log_bytes)
                .unwrap_or(10 * 1024 * 1024),
            keep_runs: args.keep_runs.or(file.keep_runs).unwrap_or(200).max(1),
            keep_versions: args
                .keep_versions
                .or(file.keep_versions)
                .unwrap_or(crate::domain::DEFAULT_VERSIONS_KEPT)
                .max(1),
            audit_retention_days: args
                .audit_retention_days
                .or(file.audit_retention_days)
                .unwrap_or(365)
                .max(1),
            auth_failure_limit: args
                .auth_failure_limit
                .or(file.auth_failure_limit)
                .unwrap_or(20)
                .max(1),
            public_url: args
                .public_url
                .or(file.public_url)
                .filter(|u| !u.is_empty())
                .map(|u| PublicUrl::parse(&u))
                .transpose()?,
            client_ip_header: args
                .client_ip_header
                .or(file.client_ip_header)
                .filter(|h| !h.is_empty())
                .map(|h| axum::http::HeaderName::try_from(h.as_str()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--client-ip-header: {e}"))?,
            auth_failure_window: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            keep_alive_idle: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(10),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .map(|n| n.max(1)),
            public_metrics: args.public_metrics || file.public_metrics,
            allowed_runners: parse_runners(
                args.allowed_runners
                    .or(file.allowed_runners)
                    .as_deref()
                    .unwrap_or("host,isolated,browser"),
            )?,
            max_queued_runs: args
                .max_queued_runs
                .or(file.max_queued_runs)
                .unwrap_or(10_000)
                .max(1),
            max_queued_per_script: args
                .max_queued_per_script
                .or(file.max_queued_per_script)
                .unwrap_or(1000)
                .max(1),
            run_lease: Duration::from_secs(
                args.run_lease_secs
                    .or(file.run_lease_secs)
                    .unwrap_or(60)
                    .max(1),
            ),
            isolate_memory_mb: args
                .isolate_memory_mb
                .or(file.isolate_memory_mb)
                .unwrap_or(64)
                .clamp(8, 4096),
            child_env: None,
            supervisor_exe: None,
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<ServeArgs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

/// The `serve` flags whose values are secrets (those whose variables `--help` does not show),
/// with the variables that carry them as well. On a command line a value stays readable by
/// every local user and every script, through `/proc/<pid>/cmdline`, for the server's whole
/// life; the environment of an undumpable process does not.
pub fn secret_flags() -> Vec<(String, String)> {
    ServeArgs::augment_args(clap::Command::new("serve"))
        .get_arguments()
        .filter(|arg| arg.is_hide_env_values_set())
        .filter_map(|arg| {
            let var = arg.get_env()?.to_str()?;
            Some((format!("--{}", arg.get_long()?), var.to_string()))
        })
        .collect()
}

/// A secret flag taken off a command line: the flag, its variable, its value.
pub type TakenFlag = (String, String, OsString);

/// `args` without the secret flags (`--flag value` or `--flag=value`), and what was taken.
pub fn take_secret_flags(args: &[OsString]) -> (Vec<OsString>, Vec<TakenFlag>) {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let secrets = secret_flags();
    let mut kept = Vec::with_capacity(args.len());
    let mut taken = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            kept.push(arg.clone());
            kept.extend(rest.cloned());
            break;
        }
        let bytes = arg.as_bytes();
        let secret = secrets.iter().find_map(|(flag, var)| {
            let after = bytes.strip_prefix(flag.as_bytes())?;
            match after.strip_prefix(b"=") {
                Some(value) => Some((flag, var, Some(OsString::from_vec(value.to_vec())))),
                None => after.is_empty().then_some((flag, var, None)),
            }
        });
        match secret {
            Some((flag, var, Some(value))) => taken.push((flag.clone(), var.clone(), value)),
            Some((flag, var, None)) => match rest.next() {
                Some(value) => taken.push((flag.clone(), var.clone(), value.clone())),
                None => kept.push(arg.clone()),
            },
            None => kept.push(arg.clone()),
        }
    }
    (kept, taken)
}

/// The paths the server answers itself, which the dashboard cannot take over.
const SERVER_PATHS: [&str; 4] = ["/api", "/assets", "/healthz", "/metrics"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_flags_are_taken_off_the_command_line_in_either_form() {
        // The flags whose variables `--help` hides.
        let flags: Vec<String> = secret_flags().into_iter().map(|(flag, _)| flag).collect();
        assert_eq!(
            flags,
            ["--database-url", "--admin-password", "--master-key"]
        );
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        let (kept, taken) = take_secret_flags(&args(&[
            "scriptd",
            "--log-format",
            "json",
            "serve",
            "--admin-password",
            "pw one",
            "--listen",
            "127.0.0.1:1",
            "--master-key=a2V5PT0=",
            "--database-url",
            "postgres://u:p@db/x",
            "--admin-user",
            "ops",
        ]));
        assert_eq!(
            kept,
            args(&[
                "scriptd",
                "--log-format",
                "json",
                "serve",
                "--listen",
                "127.0.0.1:1",
                "--admin-user",
                "ops"
            ])
        );
        let taken: Vec<(&str, &str, OsString)> = taken
            .iter()
            .map(|(flag, var, value)| (flag.as_str(), var.as_str(), value.clone()))
            .collect();
        assert_eq!(
            taken,
            vec![
                (
                    "--admin-password",
                    "SCRIPTD_ADMIN_PASSWORD",
                    "pw one".into()
                ),
                ("--master-key", "SCRIPTD_MASTER_KEY", "a2V5PT0=".into()),
                (
                    "--database-url",
                    "SCRIPTD_DATABASE_URL",
                    "postgres://u:p@db/x".into()
                ),
            ]
        );
        // Nothing to take: the same arguments, untouched, including a look-alike flag.
        let plain = args(&[
            "scriptd",
            "serve",
            "--admin-passwords",
            "--",
            "--master-key",
        ]);
        assert_eq!(take_secret_flags(&plain), (plain.clone(), vec![]));
    }

    #[test]
    fn the_admin_path_cannot_take_the_servers_own_paths() {
        let resolve = |path: &str| {
            Settings::resolve(ServeArgs {
                admin_path: Some(path.into()),
                ..Default::default()
            })
        };
        for bad in [
            "/",
            "/api",
            "/api/x",
            "api",
            "/assets",
            "/assets/",
            "/healthz",
            "/metrics/",
            "/metrics/x",
        ] {
            let err = resolve(bad).unwrap_err().to_string();
            assert!(err.contains("--admin-path"), "{bad}: {err}");
        }
        for good in ["/admin", "ops/", "/apis", "/healthz-ui", "/x/metrics"] {
            let path = resolve(good).unwrap().admin_path;
            assert!(
                path.starts_with('/') && !path.ends_with('/'),
                "{good}: {path}"
            );
        }
    }

    #[test]
    fn a_public_url_is_an_origin_without_a_path() {
        let url = PublicUrl::parse("https://Scripts.Example.com/").unwrap();
        assert_eq!(url.origin(), "https://scripts.example.com:443");
        assert_eq!(
            url.join("/api/scripts/x/run"),
            "https://Scripts.Example.com/api/scripts/x/run"
        );
        assert_eq!(
            PublicUrl::parse("http://10.0.0.5:8443").unwrap().origin(),
            "http://10.0.0.5:8443"
        );
        for bad in [
            "scripts.example.com",
            "ftp://x",
            "https://x/scriptd",
            "https://",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn database_urls_are_shown_without_credentials() {
        assert_eq!(
            redact_url("postgres://u:secret@db:5432/x?sslmode=require&password=secret2"),
            "postgres://<redacted>@db:5432/x?sslmode=require&password=<redacted>"
        );
        assert_eq!(
            redact_url("sqlite://./d/scriptd.db"),
            "sqlite://./d/scriptd.db"
        );
        assert!(!redact_url("postgres://db/x?PassWord=s3").contains("s3"));
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "max-concurrent-runs = 3\nadmin-user = \"ops\"\n").unwrap();
        let s = Settings::resolve(ServeArgs {
            config: Some(path),
            admin_user: Some("root2".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.max_concurrent_runs, 3);
        assert_eq!(s.admin_user, "root2");
        assert_eq!(s.admin_path, "/admin");
        assert!(s.database_url.ends_with("scriptd-data/scriptd.db"));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut s = Settings::with_data_dir("/tmp/x");
        s.admin_password = Some("hunter2".into());
        s.database_url = "postgres://u:pw@db/x".into();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("pw@"));
    }
}
