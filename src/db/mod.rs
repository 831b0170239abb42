//! The database: one SQLite file (the embedded default) or a PostgreSQL server.
//!
//! Domain modules write each query once, with `$n` placeholders and `RETURNING`, and run it
//! on either backend through [`on_db!`] and [`on_tx!`], which expand the same expression for
//! the concrete pool or transaction. Native `Uuid`, `DateTime<Utc>` and JSON work on both.

mod text_enum;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

use crate::config::DatabaseUrl;
use crate::crypto::seal::Sealer;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// A connection pool on one of the two supported backends, and what this process
/// remembers about the database between transactions.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    audit_tail: AuditTail,
    audit_log: Option<AuditLog>,
    /// Where `audit_log` is, to read its checkpoints back.
    audit_log_path: Option<Arc<std::path::Path>>,
    policy: Arc<Policy>,
    /// SQLite takes one writer at a time: this process's writers queue here, in order,
    /// instead of in SQLite's busy handler, which sleeps in steps of up to 100 ms and lets
    /// a late writer overtake one that has waited for long.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Counts the transactions this process committed: what is kept in memory from a read
    /// is good while the count has not moved.
    writes: Arc<AtomicU64>,
    /// Data that stays as it is while the process runs (the bundled specialty catalogue,
    /// seeded at start-up), read once per database.
    fixed:
        Arc<Mutex<std::collections::HashMap<&'static str, Arc<dyn std::any::Any + Send + Sync>>>>,
}

/// How long a SQLite writer waits for the others before giving up with "database is locked".
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the domain needs beside the pool: the key that seals data at rest (notes, plans,
/// notification bodies) and the care and notification rules from the configuration.
#[derive(Clone)]
pub struct Policy {
    pub sealer: Sealer,
    /// Signs the audit chain's checkpoints in `logs/audit.log` (a key the database does
    /// not hold, so a rewritten or shortened chain no longer matches them).
    pub audit_key: crate::crypto::Digester,
    /// Appointment reminders, this long before the visit.
    pub appointment_reminders: Vec<chrono::Duration>,
    /// Every notification also goes to the signed webhook.
    pub webhook: bool,
    /// An SMS/WhatsApp provider is configured (else those users get email).
    pub sms: bool,
    pub reminder_grace: chrono::Duration,
    pub plan_extension_limit: i64,
    pub open_plan_days: u32,
    /// How long an erased patient's clinical record is kept before it is purged.
    pub record_retention: chrono::Duration,
    pub waitlist_offer: chrono::Duration,
    /// The oldest an offline front-desk command may be when synced.
    pub sync_max_age: chrono::Duration,
    /// The service's public address (`PUBLIC_URL`), for links in mails.
    pub site: Option<String>,
}

impl Default for Policy {
    /// A key of this process only (what it seals is lost at exit): for tools and benches
    /// that open a database without the service's configuration.
    fn default() -> Self {
        Self {
            sealer: Sealer::new(&rand::random(), &[]),
            audit_key: crate::crypto::Digester::new(&rand::random::<[u8; 32]>()),
            appointment_reminders: vec![chrono::Duration::hours(24), chrono::Duration::hours(2)],
            webhook: false,
            sms: false,
            reminder_grace: chrono::Duration::hours(2),
            plan_extension_limit: 3,
            open_plan_days: 30,
            record_retention: chrono::Duration::days(3650),
            waitlist_offer: chrono::Duration::hours(1),
            sync_max_age: chrono::Duration::hours(72),
            site: None,
        }
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("appointment_reminders", &self.appointment_reminders)
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

/// The size, in bytes, SQLite's write-ahead log is truncated to after a checkpoint.
pub const SQLITE_WAL_LIMIT: i64 = 64 * 1024 * 1024;

/// The digest purpose of the audit chain's checkpoints.
pub const CHECKPOINT_PURPOSE: &str = "audit_checkpoint";

/// A signed checkpoint of the audit chain's head, the line written to `logs/audit.log`
/// after the records of each transaction (`domain::audit::verify` reads them back).
pub fn checkpoint_line(key: &crate::crypto::Digester, seq: i64, hash: &str) -> String {
    let mac = key.digest(CHECKPOINT_PURPOSE, &format!("{seq}:{hash}"));
    serde_json::json!({"checkpoint": {"seq": seq, "hash": hash}, "mac": mac}).to_string()
}

/// Adds a record's place in the chain, `(seq, prev_hash, hash)`, to its audit log line.
pub(crate) fn link_line(line: &mut serde_json::Value, (seq, prev, hash): (i64, &str, &str)) {
    if let Some(fields) = line.as_object_mut() {
        fields.insert("seq".into(), seq.into());
        fields.insert("prev_hash".into(), prev.into());
        fields.insert("hash".into(), hash.into());
    }
}

/// Reads back where PostgreSQL's commit put a transaction's audit records in the chain,
/// and turns them into log lines in chain order, with the head to checkpoint.
async fn link_lines(
    pool: &PgPool,
    unlinked: &mut Vec<(uuid::Uuid, serde_json::Value)>,
    lines: &mut Vec<String>,
    head: &mut Option<(i64, String)>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "SELECT id, seq, prev_hash, hash FROM audit WHERE id = ANY($1) ORDER BY seq";
    let ids: Vec<uuid::Uuid> = unlinked.iter().map(|(id, _)| *id).collect();
    let linked: Vec<(uuid::Uuid, i64, String, String)> =
        sqlx::query_as(SQL).bind(&ids).fetch_all(pool).await?;
    for (id, seq, prev, hash) in linked {
        if let Some((_, mut line)) = unlinked
            .iter()
            .position(|(mine, _)| *mine == id)
            .map(|at| unlinked.swap_remove(at))
        {
            link_line(&mut line, (seq, &prev, &hash));
            lines.push(line.to_string());
            *head = Some((seq, hash));
        }
    }
    Ok(())
}

/// `logs/audit.log`: committed audit records, one JSON line each.
pub type AuditLog = Arc<Mutex<std::fs::File>>;

#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The last audit record this process wrote or read, as (seq, hash): a guess that saves a
/// read per audited write. The audit module checks it inside the insert and falls back to
/// reading the tail when another writer (or a rolled-back transaction) made it stale.
pub type AuditTail = Arc<Mutex<Option<(i64, String)>>>;

/// An open transaction; commit it with [`Tx::commit`], or drop it to roll back.
pub struct Tx {
    conn: TxConn,
    /// This process's SQLite writer turn, held until commit or rollback.
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    writes: Arc<AtomicU64>,
    pub(crate) audit_tail: AuditTail,
    audit_log: Option<AuditLog>,
    /// Audit lines to mirror to the log once the transaction has committed.
    pub(crate) audit_lines: Vec<String>,
    /// The chain's head after this transaction's records, checkpointed after them.
    pub(crate) audit_head: Option<(i64, String)>,
    /// PostgreSQL: records linked into the chain at commit, by id, with their log lines
    /// still to be given their place in the chain (read back after the commit).
    pub(crate) audit_unlinked: Vec<(uuid::Uuid, serde_json::Value)>,
    /// Where the records' place in the chain is read back from (PostgreSQL).
    pg_pool: Option<PgPool>,
    policy: Arc<Policy>,
}

pub enum TxConn {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// Runs `$body` with `$pool` bound to the concrete pool (`&SqlitePool` or `&PgPool`).
/// What a batch of independent writes did: rows done, and rows that failed (each logged
/// where it failed; one bad row never stops the others).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub done: u64,
    pub failed: u64,
}

impl Batch {
    /// Counts one row's result, logging a failure with what the batch was doing.
    pub fn count<T>(
        &mut self,
        what: &str,
        row: impl std::fmt::Display,
        result: crate::error::Result<T>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.failed += 1;
                tracing::warn!(target: "jobs", error = %e, %row, "{what} failed for one row");
                None
            }
        }
    }
}

#[macro_export]
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db.pool() {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the transaction's connection; use `&mut *$conn`.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx.conn_mut() {
            $crate::db::TxConn::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::db::TxConn::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

/// Runs one statement with its arguments on either pool; the rows it changed.
#[macro_export]
macro_rules! exec {
    ($db:expr, $sql:expr $(, $arg:expr)* $(,)?) => {
        $crate::on_db!($db, |pool| sqlx::query($sql)
            $(.bind($arg))*
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
    };
}

/// Runs one statement with its arguments in a transaction; the rows it changed.
#[macro_export]
macro_rules! exec_tx {
    ($tx:expr, $sql:expr $(, $arg:expr)* $(,)?) => {
        $crate::on_tx!($tx, |conn| sqlx::query($sql)
            $(.bind($arg))*
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected()))
    };
}

impl Db {
    /// Opens the pool; a SQLite file (and its folder) is created on first use.
    pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> Result<Self, sqlx::Error> {
        if url.is_postgres() {
            let options = PgConnectOptions::from_str(url.expose())?;
            Self::connect_postgres(options, max_connections).await
        } else {
            let options = SqliteConnectOptions::from_str(url.expose())?;
            if let Some(dir) = options.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
            }
            Self::connect_sqlite(options, max_connections).await
        }
    }

    pub async fn connect_sqlite(
        options: SqliteConnectOptions,
        max_connections: u32,
    ) -> Result<Self, sqlx::Error> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            // After a checkpoint the write-ahead log is cut back to this size: a large load
            // would otherwise leave gigabytes of WAL beside the database for good.
            .pragma("journal_size_limit", SQLITE_WAL_LIMIT.to_string());
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self::new(Pool::Sqlite(pool)))
    }

    pub async fn connect_postgres(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, sqlx::Error> {
        // Statements are prepared once per connection. After five runs PostgreSQL plans a
        // statement once for any values when that plan costs no more than planning it
        // with the values each time: the hot queries are written so their plans for any
        // values read through indexes (`domain::query_plans` checks them), and planning
        // the specialty search with its values took three times as long as running it
        // (1.4 ms against 0.45 ms at 1,000 doctors). PostgreSQL's default, set here so a
        // server configured otherwise does not change it.
        let options = options.options([("plan_cache_mode", "auto")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self::new(Pool::Postgres(pool)))
    }

    fn new(pool: Pool) -> Self {
        Self {
            pool,
            audit_tail: AuditTail::default(),
            audit_log: None,
            audit_log_path: None,
            policy: Arc::new(Policy::default()),
            writer: Arc::default(),
            writes: Arc::default(),
            fixed: Arc::default(),
        }
    }

    /// What `load` reads, read once and kept under `key` for the life of the process: only
    /// for data nothing changes after start-up, or a helper every clone of this `Db` shares
    /// (the audit module's queue of records written alone).
    pub async fn fixed<T, E, F>(&self, key: &'static str, load: F) -> Result<Arc<T>, E>
    where
        T: Send + Sync + 'static,
        F: Future<Output = Result<T, E>>,
    {
        let kept = self.fixed.lock().ok().and_then(|m| m.get(key).cloned());
        if let Some(value) = kept.and_then(|v| v.downcast::<T>().ok()) {
            return Ok(value);
        }
        let value = Arc::new(load.await?);
        if let Ok(mut m) = self.fixed.lock() {
            m.insert(key, value.clone());
        }
        Ok(value)
    }

    /// Drops what [`Db::fixed`] kept under `key` (after the data was written again).
    pub fn forget(&self, key: &'static str) {
        if let Ok(mut m) = self.fixed.lock() {
            m.remove(key);
        }
    }

    /// How many transactions this process has committed (what [`Db::begin`] opened).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Mirrors committed audit records to `path` (appending, one JSON line each).
    pub fn with_audit_log(mut self, path: &std::path::Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        self.audit_log = Some(Arc::new(Mutex::new(file)));
        self.audit_log_path = Some(Arc::from(path));
        Ok(self)
    }

    /// The audit log this process mirrors to, if any.
    pub fn audit_log_path(&self) -> Option<&std::path::Path> {
        self.audit_log_path.as_deref()
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Applies the migrations this build carries that the database has not seen yet.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match &self.pool {
            Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        }
    }

    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let (conn, turn) = match &self.pool {
            Pool::Sqlite(pool) => {
                // First the turn among this process's writers, then IMMEDIATE takes SQLite's
                // write lock up front (another process's writer is waited for by the busy
                // handler), so no transaction fails at its first write with SQLITE_BUSY.
                let turn =
                    tokio::time::timeout(SQLITE_BUSY_TIMEOUT, self.writer.clone().lock_owned())
                        .await
                        .map_err(|_| sqlx::Error::PoolTimedOut)?;
                let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                (TxConn::Sqlite(tx), Some(turn))
            }
            Pool::Postgres(pool) => (TxConn::Postgres(pool.begin().await?), None),
        };
        Ok(Tx {
            conn,
            turn,
            writes: self.writes.clone(),
            audit_tail: self.audit_tail.clone(),
            audit_log: self.audit_log.clone(),
            audit_lines: Vec::new(),
            audit_head: None,
            audit_unlinked: Vec::new(),
            pg_pool: match &self.pool {
                Pool::Postgres(pool) if self.audit_log.is_some() => Some(pool.clone()),
                _ => None,
            },
            policy: self.policy.clone(),
        })
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_db!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))
    }

    pub async fn close(&self) {
        on_db!(self, |pool| pool.close().await)
    }
}

impl Tx {
    pub fn conn_mut(&mut self) -> &mut TxConn {
        &mut self.conn
    }

    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let turn = self.turn.take();
        match self.conn {
            TxConn::Sqlite(tx) => tx.commit().await?,
            TxConn::Postgres(tx) => tx.commit().await?,
        }
        self.writes.fetch_add(1, Ordering::AcqRel);
        drop(turn);
        let Some(log) = &self.audit_log else {
            return Ok(());
        };
        if let Some(pool) = &self.pg_pool
            && !self.audit_unlinked.is_empty()
        {
            // Committed: a failure here loses the log's copy only, never the record.
            if let Err(e) = link_lines(
                pool,
                &mut self.audit_unlinked,
                &mut self.audit_lines,
                &mut self.audit_head,
            )
            .await
            {
                tracing::warn!(error = %e, "reading the audit records' place in the chain failed");
            }
        }
        if self.audit_lines.is_empty() {
            return Ok(());
        }
        if let Ok(mut file) = log.lock() {
            use std::io::Write;
            let checkpoint = self
                .audit_head
                .as_ref()
                .map(|(seq, hash)| checkpoint_line(&self.policy.audit_key, *seq, hash));
            // The transaction's lines in one write call (the file is unbuffered).
            let mut text = String::new();
            for line in self.audit_lines.iter().chain(checkpoint.as_ref()) {
                text.push_str(line);
                text.push('\n');
            }
            if let Err(e) = file.write_all(text.as_bytes()) {
                tracing::warn!(error = %e, "mirroring to audit.log failed");
            }
        }
        Ok(())
    }
}
