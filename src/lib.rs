//! scriptd: a self-hosted Scripts service. Define Bash, Node.js and browser scripts, run them
//! by hand, on a schedule or from an HTTP trigger, and watch their output live.
//!
//! The module mounts into any axum host: build an [`app::App`] from [`config::Settings`] and
//! merge `app.router` into your own router. A host must also call
//! [`run_supervisor_if_requested`] first thing in `main`, because each run is supervised by a
//! child process started from the host's own executable.
// Denied everywhere but in the launcher, which must fork (see `engine::launcher`).
#![deny(unsafe_code)]

pub mod app;
pub mod audit_keeper;
pub mod auth;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
mod fsutil;
pub mod http;
pub mod metrics;
pub mod notifier;
pub mod ratelimit;
pub mod rotate;
pub mod scheduler;
pub mod secrets;
mod slow_hash;
pub mod store;

/// If this process was started as the run launcher (`<exe> __launch`) or an isolated
/// JavaScript worker (`<exe> __isolate`), becomes it and never returns; otherwise returns at
/// once.
pub fn run_supervisor_if_requested() {
    match std::env::args_os()
        .nth(1)
        .as_deref()
        .and_then(std::ffi::OsStr::to_str)
    {
        Some("__launch") => engine::launcher::launcher_main(),
        Some("__isolate") => engine::isolate::worker::main(),
        _ => {}
    }
}
