//! PostgreSQL, for several nodes sharing one database. What only it does: claims lock their
//! candidate row `FOR UPDATE SKIP LOCKED`, and nodes hear each other through `pg_feed`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::codec::EnvCodec;
use super::pg_feed::PgFeed;
use super::{DynFeed, StoreResult};

pub struct PgStore {
    pool: PgPool,
    codec: EnvCodec,
    feed: Arc<PgFeed>,
    listing: super::listing::ListingCache,
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
        let feed = Arc::new(PgFeed::start(pool.clone()).await?);
        Ok(Self {
            pool,
            codec,
            feed,
            listing: Default::default(),
        })
    }
}

super::scripts::impl_script_store!(
    PgStore,
    sqlx::Postgres,
    "COALESCE(json_agg(json_build_array({}))::text, '[]')",
    "LEFT JOIN LATERAL (SELECT * FROM runs r2 WHERE r2.script_id = {s}.id \
     ORDER BY r2.id DESC LIMIT 1) r ON TRUE"
);
super::runs::impl_run_store!(PgStore, sqlx::Postgres);
// `ARRAY(…)` runs the locking query once. Under `IN (…)` the planner may join it as a nested
// loop, running it again for each queued run, and each run it skips as changed by this very
// statement lets the next one in: a claim for one run took every queued run.
super::queue::impl_queue_store!(
    PgStore,
    |candidates| format!("= ANY(ARRAY({candidates} FOR UPDATE OF q SKIP LOCKED))"),
    super::queue::pg_admission_sql
);
super::leases::impl_lease_store!(PgStore);
super::logs::impl_log_store!(PgStore, sqlx::Postgres, " FOR SHARE");
super::schedules::impl_schedule_store!(PgStore);
super::nodes::impl_node_store!(PgStore);
super::versions::impl_version_store!(PgStore);
super::audit::impl_audit_store!(PgStore, sqlx::Postgres);
super::deliveries::impl_delivery_store!(PgStore, "FOR UPDATE SKIP LOCKED");

#[async_trait]
impl super::Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn feed(&self) -> DynFeed {
        self.feed.clone()
    }
}
