//! scriptd: a self-hosted Scripts service. Define Bash, Node.js and browser scripts, run them
//! by hand, on a schedule or from an HTTP trigger, and watch their output live.
//!
//! The module mounts into any axum host: build an [`app::App`] from [`config::Settings`] and
//! merge `app.router` into your own router. A host must also call
//! [`run_supervisor_if_requested`] first thing in `main`, because each run is supervised by a
//! child process started from the host's own executable.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
mod fsutil;
pub mod http;
pub mod metrics;
pub mod ratelimit;
pub mod rotate;
pub mod scheduler;
pub mod secrets;
mod slow_hash;
pub mod store;

/// If this process was started as a run supervisor (`<exe> __supervise …`) or an isolated
/// JavaScript worker (`<exe> __isolate`), becomes it and never returns; otherwise returns at
/// once.
pub fn run_supervisor_if_requested() {
    let mut args = std::env::args_os().skip(1);
    match args.next().as_deref().and_then(std::ffi::OsStr::to_str) {
        Some("__supervise") => {}
        Some("__isolate") => engine::isolate::worker::main(),
        _ => return,
    }
    let mut grace = std::time::Duration::from_secs(5);
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--grace-ms") => {
                if let Some(ms) = args.next().and_then(|v| v.to_str()?.parse().ok()) {
                    grace = std::time::Duration::from_millis(ms);
                }
            }
            Some("--") => {
                rest.extend(args.by_ref());
            }
            _ => {}
        }
    }
    if rest.is_empty() {
        eprintln!("scriptd: __supervise needs a command after --");
        std::process::exit(125);
    }
    let program = rest.remove(0);
    engine::supervise::main(grace, program, rest)
}
