//! Integration tests through the real HTTP API, with real bash and node, against SQLite and
//! PostgreSQL. One binary, modules by subject.

mod helpers;

mod audit;
mod auth;
mod backup;
mod binary;
mod cli;
mod embed;
mod events;
mod hardening;
mod inputs;
mod isolate;
mod nodes;
mod notify;
mod observability;
mod process;
mod proxy;
mod retries;
mod run_log;
mod runs;
mod schedule;
mod scripts;
mod secrets;
mod security;
mod stream;
mod supervision;
mod terminal;
mod transfer;
mod trigger;
mod upgrade;
mod versions;
