//! PostgreSQL, for several nodes sharing one database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::codec::EnvCodec;
use super::sql::impl_sql_store;

pub struct PgStore {
    pool: PgPool,
    codec: EnvCodec,
}

impl PgStore {
    pub async fn connect(url: &str, codec: EnvCodec) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self { pool, codec })
    }
}

impl_sql_store!(PgStore, sqlx::Postgres);
