//! A host application that mounts scriptd next to its own routes: one call (`app::build`)
//! gives the router and starts the background work behind it (claiming runs, leases, the
//! scheduler, the node feed); `shutdown` stops it cleanly.
//!
//! ```sh
//! HOST_ADMIN_PASSWORD=change-me cargo run --example embed
//! curl http://127.0.0.1:8090/                                  # the host's own page
//! curl -u admin:change-me http://127.0.0.1:8090/api/admin/scripts
//! ```

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;

fn main() -> anyhow::Result<()> {
    // Each run is supervised by a child started from this very executable: when this process
    // is that child, it becomes the supervisor here and never returns.
    scriptd::run_supervisor_if_requested();
    tokio::runtime::Runtime::new()?.block_on(host())
}

async fn host() -> anyhow::Result<()> {
    let data_dir = std::env::var("HOST_DATA_DIR").unwrap_or_else(|_| "host-data".into());
    let mut settings = scriptd::config::Settings::with_data_dir(data_dir);
    settings.admin_password = std::env::var("HOST_ADMIN_PASSWORD").ok();
    if let Ok(url) = std::env::var("HOST_DATABASE_URL") {
        settings.database_url = url;
    }

    let scripts = scriptd::app::build(settings).await?;
    let app = Router::new()
        .route("/", get(|| async { "my host application" }))
        .merge(scripts.router.clone());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:8090").await?;
    let closing = scripts.closing();
    axum::serve(
        listener,
        // The admin routes rate-limit failed logins by client address.
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = tokio::signal::ctrl_c().await;
        closing.cancel();
    })
    .await?;
    scripts.shutdown().await;
    Ok(())
}
