//! The PostgreSQL store's schema, as numbered migrations. A new (empty)
//! database is brought to the latest version when a store opens it; an
//! older one is upgraded only by `cra store migrate`, so that replicas of
//! two versions never change a schema under each other. Each migration
//! runs in one transaction under an advisory lock, so replicas starting
//! together apply it once.

use postgres::Client;

use crate::error::{CoreError, Result};
use crate::pg::db::{fail, PgDb};

/// The advisory lock every migration holds (any fixed number).
const MIGRATION_LOCK: i64 = 0x6372_615f_7363_6d61;

/// Version `i + 1` is `MIGRATIONS[i]`.
pub const MIGRATIONS: &[&str] = &[
    // 1: sessions (the same row as the SQLite store's), their owners, the
    // events, one row each, keyed by session and sequence, and the batches
    // written (by their first event), so a retried batch is not written twice.
    "CREATE TABLE cra_sessions (
        session_id text PRIMARY KEY,
        trace_id text,
        root_span_id text,
        agent_id text,
        goal text,
        status text NOT NULL DEFAULT 'active',
        started_at text,
        ended_at text,
        event_count bigint NOT NULL DEFAULT 0,
        first_sequence bigint NOT NULL DEFAULT 0,
        anchor_hash text NOT NULL,
        last_sequence bigint NOT NULL DEFAULT -1,
        last_hash text NOT NULL
    );
    CREATE TABLE cra_owners (
        session_id text PRIMARY KEY,
        key_id text NOT NULL,
        claimed_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE cra_events (
        session_id text NOT NULL,
        sequence bigint NOT NULL,
        event_type text NOT NULL,
        line text NOT NULL,
        PRIMARY KEY (session_id, sequence)
    );
    CREATE TABLE cra_batches (
        first_event_id text PRIMARY KEY,
        written_at timestamptz NOT NULL DEFAULT now()
    );",
    // 2: the counters of rate limits (one row per counted call) and budgets.
    "CREATE TABLE cra_rate_calls (
        key text NOT NULL,
        at bigint NOT NULL
    );
    CREATE INDEX cra_rate_calls_key_at ON cra_rate_calls (key, at);
    CREATE TABLE cra_budgets (
        key text PRIMARY KEY,
        spent double precision NOT NULL
    );",
    // 3: resolutions (to be used by an execute on any replica), approvals
    // (decided on any replica), each a document, and idempotency keys.
    "CREATE TABLE cra_resolutions (
        resolution_id text PRIMARY KEY,
        session_id text NOT NULL,
        expires_at bigint NOT NULL,
        doc text NOT NULL
    );
    CREATE INDEX cra_resolutions_expires ON cra_resolutions (expires_at);
    CREATE TABLE cra_approvals (
        approval_id text PRIMARY KEY,
        session_id text NOT NULL,
        expires_at bigint NOT NULL,
        doc text NOT NULL
    );
    CREATE INDEX cra_approvals_session ON cra_approvals (session_id, expires_at);
    CREATE TABLE cra_idempotency (
        session_id text NOT NULL,
        key text NOT NULL,
        fingerprint text NOT NULL,
        response text,
        PRIMARY KEY (session_id, key)
    );",
];

pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

const VERSIONS: &str = "CREATE TABLE IF NOT EXISTS cra_schema_versions (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

fn version_in(c: &mut impl postgres::GenericClient) -> std::result::Result<i64, postgres::Error> {
    let exists: bool = c
        .query_one("SELECT to_regclass('cra_schema_versions') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i32> = c
        .query_one("SELECT max(version) FROM cra_schema_versions", &[])?
        .get(0);
    Ok(v.map_or(0, i64::from))
}

/// The schema version of the database (0: none yet).
pub fn version(db: &PgDb) -> Result<i64> {
    db.with(version_in)
}

/// Applies the migrations after the database's version up to `target`
/// (default: the latest); returns the versions before and after. A
/// database newer than this version of cra is refused.
pub fn migrate(db: &PgDb, target: Option<i64>) -> Result<(i64, i64)> {
    let target = target.unwrap_or_else(latest);
    if !(1..=latest()).contains(&target) {
        return Err(CoreError::invalid(
            "INVALID_SCHEMA_VERSION",
            "/target",
            format!("schema version {target} does not exist (1 to {})", latest()),
        ));
    }
    let dsn = db.dsn().to_string();
    let mut client = db.connect()?;
    let out = run(&mut client, target).map_err(|e| fail(&dsn, &e))?;
    match out {
        Ok(v) => Ok(v),
        Err(found) => Err(too_new(found)),
    }
}

fn run(
    c: &mut Client,
    target: i64,
) -> std::result::Result<std::result::Result<(i64, i64), i64>, postgres::Error> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(VERSIONS)?;
    let from = version_in(&mut tx)?;
    if from > latest() {
        return Ok(Err(from));
    }
    for v in from + 1..=target {
        tx.batch_execute(MIGRATIONS[(v - 1) as usize])?;
        tx.execute(
            "INSERT INTO cra_schema_versions (version) VALUES ($1)",
            &[&(v as i32)],
        )?;
    }
    tx.commit()?;
    Ok(Ok((from, target.max(from))))
}

fn too_new(found: i64) -> CoreError {
    CoreError::invalid(
        "SCHEMA_TOO_NEW",
        "/store",
        format!(
            "the store's schema is version {found}, newer than this cra knows ({}); upgrade cra",
            latest()
        ),
    )
}

/// Opens a store for use: an empty database gets the latest schema; an
/// older one must be upgraded first (`cra store migrate`), a newer one
/// needs a newer cra.
pub fn ready(db: &PgDb) -> Result<()> {
    match version(db)? {
        0 => migrate(db, None).map(|_| ()),
        v if v == latest() => Ok(()),
        v if v > latest() => Err(too_new(v)),
        v => Err(CoreError::invalid(
            "SCHEMA_OUTDATED",
            "/store",
            format!(
                "the store's schema is version {v}, this cra needs version {}: run `cra store migrate --store URL`",
                latest()
            ),
        )),
    }
}
