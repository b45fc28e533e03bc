//! The `scriptd` binary: one host of the Scripts module.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use scriptd::config::{ServeArgs, Settings};

#[derive(Parser)]
#[command(
    name = "scriptd",
    version,
    about = "Run Bash, Node.js and browser scripts from a web dashboard: by hand, on a schedule, or from an HTTP trigger, with live output."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr: `text` for people (coloured only on a terminal),
    /// `json` for log shippers (one JSON object a line, with the request's and the run's span
    /// fields, such as `run_id` and `script`)
    #[arg(long, global = true, env = "SCRIPTD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Server(Box<ServerCommand>),
    #[command(flatten)]
    Client(scriptd::cli::Request),
}

/// What runs the server or works on its data directory.
#[derive(Subcommand)]
enum ServerCommand {
    /// Start the HTTP server (dashboard at <admin-path>, API under /api)
    Serve(ServeArgs),
    /// Re-encrypt every stored secret under a new master key, in one transaction
    RotateMasterKey {
        #[command(flatten)]
        settings: ServeArgs,
        /// The new key (base64 of 32 bytes); generated when not given
        #[arg(long, env = "SCRIPTD_NEW_MASTER_KEY", hide_env_values = true)]
        new_key: Option<String>,
    },
    /// Copy the SQLite database to a new file while the server runs
    ///
    /// A consistent snapshot, readable by its owner only. Keep <data-dir>/master.key with it:
    /// the secrets in it are sealed with that key. For PostgreSQL use pg_dump.
    ///
    /// Example: scriptd backup --data-dir /var/lib/scriptd /backups/scriptd-$(date +%F).db
    Backup {
        #[command(flatten)]
        settings: ServeArgs,
        /// The file to write; it must not exist yet
        file: std::path::PathBuf,
    },
    /// Put a backup made by `scriptd backup` in place of the SQLite database
    ///
    /// Stop the server first: a database still in use is refused. The next start upgrades an
    /// older backup.
    ///
    /// Example: scriptd restore --data-dir /var/lib/scriptd /backups/scriptd-2026-11-25.db
    Restore {
        #[command(flatten)]
        settings: ServeArgs,
        /// The backup to restore
        file: std::path::PathBuf,
    },
    /// Write scripts as files, one <codeIdentifier>.toml each (the README shows the format)
    ///
    /// Reads the configured database, or a running server's API with --url. Secret values are
    /// left out unless --with-secrets seals them with a passphrase.
    Export {
        #[command(flatten)]
        settings: ServeArgs,
        #[command(flatten)]
        args: scriptd::cli::transfer::ExportArgs,
    },
    /// Create and update scripts from files; every file is checked before anything changes
    ///
    /// A script whose file matches it is left alone, so importing twice changes nothing.
    Import {
        #[command(flatten)]
        settings: ServeArgs,
        #[command(flatten)]
        args: scriptd::cli::transfer::ImportArgs,
    },
    /// Print the manual page (roff), as the Debian package installs it: scriptd man | man -l -
    #[command(hide = true)]
    Man,
    /// Print the API's OpenAPI 3.1 document
    ///
    /// What `/api/openapi.json` serves, for client generators and reviews; needs no server or
    /// database.
    Openapi,
}

fn main() -> std::process::ExitCode {
    scriptd::run_supervisor_if_requested();
    let cli = Cli::parse();
    match cli.command {
        // The client prints what it does itself; the logging below is the server's.
        Command::Client(request) => scriptd::cli::main(request),
        Command::Server(command) => serve_side(*command, cli.log_format),
    }
}

fn serve_side(command: ServerCommand, log_format: LogFormat) -> std::process::ExitCode {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match log_format {
        // Escape codes only where a terminal turns them into colours, not into a log file.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    let result = match command {
        ServerCommand::Serve(args) => serve(args),
        ServerCommand::RotateMasterKey { settings, new_key } => rotate(settings, new_key),
        ServerCommand::Backup { settings, file } => backup(settings, &file),
        ServerCommand::Restore { settings, file } => restore(settings, &file),
        ServerCommand::Export { settings, args } => {
            transfer(settings, |s| scriptd::cli::transfer::export(s, args))
        }
        ServerCommand::Import { settings, args } => {
            transfer(settings, |s| scriptd::cli::transfer::import(s, args))
        }
        ServerCommand::Man => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
            .render(&mut std::io::stdout())
            .map_err(anyhow::Error::from),
        ServerCommand::Openapi => {
            println!("{}", scriptd::http::api_doc::json());
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scriptd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// glibc gives threads that allocate at once arenas of their own (up to eight per core), and
/// each arena keeps what was freed in it: after a burst of output handled on several threads
/// (reader, sink, writer, the stream, SQLite's) the server held up to 20 MiB more than its
/// live heap. Two arenas keep that down at no cost measured on the run path. The standard
/// `MALLOC_ARENA_MAX`, when set, still decides. Called while the process has one thread.
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator limit; no other thread allocates yet.
        unsafe {
            nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    hide_secret_flags()?;
    // Scripts run as the same user: without this, any of them could read this process's
    // environment and memory through /proc (the admin password, the master key).
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %e, "could not make the server undumpable");
    }
    limit_malloc_arenas();
    let settings = Settings::load(args)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        tracing::info!(settings = ?settings, "starting");
        let listen = settings.listen;
        let app = scriptd::app::build(settings).await?;
        let listener = tokio::net::TcpListener::bind(listen).await?;
        tracing::info!(address = %listener.local_addr()?, "listening");
        scriptd::app::serve(app, listener, shutdown_signal()).await
    })
}

/// A secret given as a flag (`config::secret_flags`) would stay in the process list for the server's
/// whole life: the server starts itself again, the same process, with those values in its
/// environment instead. Called while the process has one thread.
fn hide_secret_flags() -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let (kept, taken) = scriptd::config::take_secret_flags(&args);
    if taken.is_empty() {
        return Ok(());
    }
    let flags: Vec<&str> = taken.iter().map(|(flag, _, _)| flag.as_str()).collect();
    let vars: Vec<&str> = taken.iter().map(|(_, var, _)| var.as_str()).collect();
    tracing::warn!(
        "{} given on the command line, where any local user can read them: moved out of it; \
         set {} or the config file instead",
        flags.join(", "),
        vars.join(", ")
    );
    let error = std::process::Command::new("/proc/self/exe")
        .arg0(&kept[0])
        .args(&kept[1..])
        .envs(taken.into_iter().map(|(_, var, value)| (var, value)))
        .exec();
    Err(anyhow::anyhow!(
        "could not start again without the secret flags: {error}"
    ))
}

fn backup(args: ServeArgs, file: &std::path::Path) -> anyhow::Result<()> {
    let settings = Settings::load(args)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let bytes = runtime.block_on(scriptd::backup::backup(&settings, file))?;
    println!(
        "wrote {} ({bytes} bytes); keep {} with it",
        file.display(),
        settings.data_dir.join("master.key").display()
    );
    Ok(())
}

fn restore(args: ServeArgs, file: &std::path::Path) -> anyhow::Result<()> {
    let settings = Settings::load(args)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(scriptd::backup::restore(&settings, file))?;
    println!("restored {}; start the server to use it", file.display());
    Ok(())
}

fn rotate(args: ServeArgs, new_key: Option<String>) -> anyhow::Result<()> {
    let settings = Settings::load(args)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let done = runtime.block_on(scriptd::rotate::rotate_master_key(
        &settings,
        new_key.as_deref(),
    ))?;
    println!("re-encrypted the secrets of {} script(s)", done.scripts);
    match done.stored_at {
        Some(path) => println!("the new master key is in {}", path.display()),
        None => println!(
            "the master key comes from configuration: set --master-key / SCRIPTD_MASTER_KEY to\n  {}",
            done.new_key.to_base64()
        ),
    }
    Ok(())
}

fn transfer<F: std::future::Future<Output = anyhow::Result<()>>>(
    args: ServeArgs,
    work: impl FnOnce(Settings) -> F,
) -> anyhow::Result<()> {
    let settings = Settings::load(args)?;
    tokio::runtime::Runtime::new()?.block_on(work(settings))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
