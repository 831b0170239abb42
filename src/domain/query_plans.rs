//! The plans of the hot queries: the searches, holding and booking, a patient's and a
//! day's appointments, the lapsed-holds job and the sign-in check. None may read the
//! whole of `slots` or `appointments`: their cost must not grow with the tables.

use crate::domain::identity::{self, people};
use crate::domain::scheduling::{appointments, slots};

/// (what it is, its SQL), as the domain runs them.
const HOT: &[(&str, &str)] = &[
    ("doctor search: notice", slots::DOCTOR_SEARCH_NOTICE_SQL),
    ("doctor search", slots::DOCTOR_SEARCH_SQL),
    ("lapsed holds", slots::RELEASE_EXPIRED_HOLDS_SQL),
    ("a patient's live holds", appointments::ACTIVE_HOLDS_SQL),
    ("a slot to hold", appointments::BOOKABLE_SQL),
    ("hold", appointments::HOLD_CLAIM_SQL),
    ("a patient's hold", appointments::PATIENT_HOLD_CLAIM_SQL),
    ("release", appointments::RELEASE_HOLD_SQL),
    ("confirm", appointments::CONFIRM_CLAIM_SQL),
    ("a patient's appointments", appointments::MINE_SQL),
    ("a doctor's day", appointments::DOCTOR_DAY_SQL),
    ("a clinic's day", appointments::CLINIC_DAY_SQL),
    ("sign-in check", identity::AUTHENTICATE_SQL),
    ("roles", people::GRANTS_SQL),
];

/// Statements only SQLite runs.
const SQLITE_ONLY: &[(&str, &str)] = &[("specialty search", slots::SPECIALTY_SEARCH_SQL)];

/// Statements only PostgreSQL runs.
const POSTGRES_ONLY: &[(&str, &str)] = &[(
    "specialty search (PostgreSQL)",
    slots::SPECIALTY_SEARCH_PG_SQL,
)];

/// The names `slots` and `appointments` go by in the hot queries.
const BIG_TABLES: &[&str] = &["slots", "s", "appointments", "a"];

/// A SQLite plan step that reads all of a big table (or all of one of its indexes).
fn sqlite_full_scan(detail: &str) -> bool {
    detail
        .strip_prefix("SCAN ")
        .and_then(|rest| rest.split_whitespace().next())
        .is_some_and(|table| BIG_TABLES.contains(&table))
}

/// A PostgreSQL plan line that reads all of a big table.
fn postgres_full_scan(line: &str) -> bool {
    ["slots", "appointments"].iter().any(|t| {
        line.contains(&format!("Seq Scan on {t} "))
            || line.trim_end().ends_with(&format!("Seq Scan on {t}"))
    })
}

/// How many `$n` parameters a statement takes.
fn parameters(sql: &str) -> usize {
    (1..=32)
        .rev()
        .find(|n| sql.contains(&format!("${n}")))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::db::{Db, Pool};

    #[test]
    fn the_checks_tell_scans_from_searches() {
        assert!(sqlite_full_scan("SCAN s"));
        assert!(sqlite_full_scan("SCAN slots USING INDEX slots_starts_idx"));
        assert!(!sqlite_full_scan(
            "SEARCH s USING INDEX slots_doctor_idx (doctor_id=?)"
        ));
        assert!(!sqlite_full_scan("SCAN c"));
        assert!(postgres_full_scan(
            "  ->  Seq Scan on slots s  (cost=0.00..1.00 rows=1 width=8)"
        ));
        assert!(!postgres_full_scan(
            "  ->  Index Scan using slots_pkey on slots s"
        ));
        assert!(!postgres_full_scan("  ->  Seq Scan on slots_archive x"));
        assert_eq!(parameters(appointments::HOLD_CLAIM_SQL), 4);
    }

    #[tokio::test]
    async fn hot_queries_never_scan_slots_or_appointments_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url =
            crate::config::DatabaseUrl::new(format!("sqlite://{}/plans.db", dir.path().display()));
        let db = Db::connect(&url, 1).await.unwrap();
        db.migrate().await.unwrap();
        let Pool::Sqlite(pool) = db.pool() else {
            unreachable!()
        };
        let mut scans = Vec::new();
        for (name, sql) in HOT.iter().chain(SQLITE_ONLY) {
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .fetch_all(pool)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            scans.extend(
                rows.into_iter()
                    .filter(|(_, _, _, detail)| sqlite_full_scan(detail))
                    .map(|(_, _, _, detail)| format!("{name}: {detail}")),
            );
        }
        assert!(scans.is_empty(), "full scans: {scans:#?}");
    }

    /// On PostgreSQL the generic plan (what a prepared statement may settle on), with
    /// sequential scans priced out: a `Seq Scan` left means no index serves the query.
    #[tokio::test]
    async fn hot_queries_never_scan_slots_or_appointments_on_postgres() {
        let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
            eprintln!("TEST_DATABASE_URL is not set: the PostgreSQL plans are not checked");
            return;
        };
        let base = sqlx::postgres::PgConnectOptions::from_str(&url).unwrap();
        let schema = format!("plans_{}", uuid::Uuid::now_v7().simple());
        let admin = Db::connect_postgres(base.clone(), 1).await.unwrap();
        let Pool::Postgres(admin_pool) = admin.pool() else {
            unreachable!()
        };
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(admin_pool)
            .await
            .unwrap();
        let db = Db::connect_postgres(base.options([("search_path", schema.as_str())]), 1)
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let Pool::Postgres(pool) = db.pool() else {
            unreachable!()
        };
        let mut conn = pool.acquire().await.unwrap();
        for setting in [
            "SET enable_seqscan = off",
            "SET plan_cache_mode = force_generic_plan",
        ] {
            sqlx::query(setting).execute(&mut *conn).await.unwrap();
        }
        let mut scans = Vec::new();
        for (name, sql) in HOT.iter().chain(POSTGRES_ONLY) {
            sqlx::query(sqlx::AssertSqlSafe(format!("PREPARE hot AS {sql}")))
                .execute(&mut *conn)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let nulls = vec!["NULL"; parameters(sql)].join(", ");
            let execute = if nulls.is_empty() {
                "EXPLAIN EXECUTE hot".to_owned()
            } else {
                format!("EXPLAIN EXECUTE hot({nulls})")
            };
            let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(execute))
                .fetch_all(&mut *conn)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            sqlx::query("DEALLOCATE hot")
                .execute(&mut *conn)
                .await
                .unwrap();
            scans.extend(
                plan.into_iter()
                    .filter(|(line,)| postgres_full_scan(line))
                    .map(|(line,)| format!("{name}: {line}")),
            );
        }
        drop(conn);
        db.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(admin_pool)
            .await
            .unwrap();
        assert!(scans.is_empty(), "full scans: {scans:#?}");
    }
}
