//! Scheduling benchmark: seeds doctors × 90 days of slots through the domain layer, then
//! prints slot search latency (one doctor, 14 days; one specialty, 14 days) and booking
//! throughput, each beside the raw-SQL equivalent measured in the same run.
//!
//! `cargo bench --bench scheduling` runs it on a fresh SQLite file; set
//! `BENCH_DATABASE_URL=postgres://…` to run it on PostgreSQL (a fresh schema is used),
//! `BENCH_DOCTORS` to change the 1,000 doctors.

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use clinic::config::DatabaseUrl;
use clinic::db::Db;
use clinic::domain::actor::{Actor, Grant, Principal, Role};
use clinic::domain::clinics::specialties;
use clinic::domain::identity::people::{self, NewUser};
use clinic::domain::scheduling::appointments;
use clinic::domain::scheduling::slots::{self, SlotQuery};
use clinic::on_db;
use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

const CLINICS: usize = 10;
const DAYS: i64 = 90;
const RUNS: usize = 5;
const SEARCHES_PER_RUN: usize = 400;
const BOOKINGS_PER_RUN: usize = 300;
#[path = "world.rs"]
mod world;
use world::AnyResult;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> AnyResult<()> {
    clinic::install_crypto_provider();
    let doctors: usize = std::env::var("BENCH_DOCTORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir()?;
    let db = open(&dir).await?;
    db.migrate().await?;
    specialties::seed(&db).await?;
    println!(
        "backend: {}; seeding {doctors} doctors × {DAYS} days of slots…",
        db.backend()
    );
    let started = Instant::now();
    let world = seed(&db, doctors).await?;
    println!(
        "seeded {} slots in {:.1} s (through the domain layer)\n",
        count(&db, "SELECT COUNT(*) FROM slots").await?,
        started.elapsed().as_secs_f64()
    );

    if db.backend() == "sqlite" {
        explain_specialty_search(&db, &world.specialties[0].0).await?;
    } else {
        // Fresh statistics after the bulk load, as autovacuum would soon gather: without
        // them PostgreSQL's generic plans for the searches are far off.
        on_db!(&db, |pool| sqlx::query("ANALYZE")
            .execute(pool)
            .await
            .map(|_| ()))?;
    }
    let mut doctor_p50 = Vec::new();
    let mut doctor_p99 = Vec::new();
    let mut raw_doctor_p50 = Vec::new();
    let mut raw_doctor_p99 = Vec::new();
    let mut spec_p50 = Vec::new();
    let mut spec_p99 = Vec::new();
    let mut raw_spec_p50 = Vec::new();
    let mut raw_spec_p99 = Vec::new();
    let mut booking_tps = Vec::new();
    let mut raw_tps = Vec::new();
    let mut raw_full_tps = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let mut free = world.bookable.iter();
    let db = &db;
    for _ in 0..RUNS {
        let (p50, p99) = percentiles(
            timed(SEARCHES_PER_RUN, || {
                let d = world.doctors[next(world.doctors.len())];
                async move { doctor_search(db, d).await }
            })
            .await?,
        );
        doctor_p50.push(p50);
        doctor_p99.push(p99);
        let (p50, p99) = percentiles(
            timed(SEARCHES_PER_RUN, || {
                let d = world.doctors[next(world.doctors.len())];
                async move { raw_doctor_search(db, d).await }
            })
            .await?,
        );
        raw_doctor_p50.push(p50);
        raw_doctor_p99.push(p99);
        let (p50, p99) = percentiles(
            timed(SEARCHES_PER_RUN, || {
                let s = world.specialties[next(world.specialties.len())].clone();
                async move { specialty_search(db, &s.0).await }
            })
            .await?,
        );
        spec_p50.push(p50);
        spec_p99.push(p99);
        let (p50, p99) = percentiles(
            timed(SEARCHES_PER_RUN, || {
                let s = world.specialties[next(world.specialties.len())].clone();
                async move { raw_specialty_search(db, s.1).await }
            })
            .await?,
        );
        raw_spec_p50.push(p50);
        raw_spec_p99.push(p99);

        let batch: Vec<Uuid> = free.by_ref().take(BOOKINGS_PER_RUN).copied().collect();
        let t = Instant::now();
        for slot in &batch {
            appointments::book_for(db, &world.staff, *slot, world.patient, "bench").await?;
        }
        booking_tps.push(batch.len() as f64 / t.elapsed().as_secs_f64());
        let batch: Vec<Uuid> = free.by_ref().take(BOOKINGS_PER_RUN).copied().collect();
        let t = Instant::now();
        for slot in &batch {
            raw_claim(db, *slot).await?;
        }
        raw_tps.push(batch.len() as f64 / t.elapsed().as_secs_f64());
        let batch: Vec<Uuid> = free.by_ref().take(BOOKINGS_PER_RUN).copied().collect();
        let t = Instant::now();
        for slot in &batch {
            raw_booking(db, *slot, world.patient).await?;
        }
        raw_full_tps.push(batch.len() as f64 / t.elapsed().as_secs_f64());
    }

    println!(
        "medians of {RUNS} runs ({SEARCHES_PER_RUN} searches and {BOOKINGS_PER_RUN} bookings per run and kind):"
    );
    println!(
        "{:<34} {:>10} {:>10} {:>12} {:>12} {:>7}",
        "", "p50 ms", "p99 ms", "raw p50 ms", "raw p99 ms", "ratio"
    );
    for (name, p50, p99, r50, r99) in [
        (
            "slot search, doctor, 14 days",
            &doctor_p50,
            &doctor_p99,
            &raw_doctor_p50,
            &raw_doctor_p99,
        ),
        (
            "slot search, specialty, 14 days",
            &spec_p50,
            &spec_p99,
            &raw_spec_p50,
            &raw_spec_p99,
        ),
    ] {
        let (p50, p99, r50, r99) = (median(p50), median(p99), median(r50), median(r99));
        println!(
            "{name:<34} {p50:>10.3} {p99:>10.3} {r50:>12.3} {r99:>12.3} {:>6.2}x",
            p50 / r50
        );
    }
    let (tps, raw, raw_full) = (
        median(&booking_tps),
        median(&raw_tps),
        median(&raw_full_tps),
    );
    println!(
        "{:<34} {:>10.0} tx/s through the domain (book_for: claim, appointment, audit record)",
        "booking", tps
    );
    println!(
        "{:<34} {:>10.0} tx/s raw conditional UPDATE alone: domain at {:.0} %",
        "",
        raw,
        100.0 * tps / raw
    );
    println!(
        "{:<34} {:>10.0} tx/s raw SQL of the same three writes: domain at {:.0} %",
        "",
        raw_full,
        100.0 * tps / raw_full
    );
    db.close().await;
    Ok(())
}

async fn open(dir: &tempfile::TempDir) -> AnyResult<Db> {
    match std::env::var("BENCH_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        Some(url) => {
            let options = PgConnectOptions::from_str(&url)?;
            let schema = format!("bench_{}", Uuid::now_v7().simple());
            let admin = Db::connect_postgres(options.clone(), 1).await?;
            on_db!(&admin, |pool| sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA {schema}"
            )))
            .execute(pool)
            .await
            .map(|_| ()))?;
            admin.close().await;
            Ok(
                Db::connect_postgres(options.options([("search_path", schema.as_str())]), 5)
                    .await?,
            )
        }
        None => {
            let url = format!("sqlite://{}/bench.db", dir.path().display());
            Ok(Db::connect(&DatabaseUrl::new(url), 5).await?)
        }
    }
}

struct World {
    doctors: Vec<Uuid>,
    /// (slug, id) of specialties that have doctors.
    specialties: Vec<(String, Uuid)>,
    staff: Actor,
    patient: Uuid,
    /// Free slots to book, spread over doctors, each used once.
    bookable: Vec<Uuid>,
}

async fn seed(db: &Db, doctor_count: usize) -> AnyResult<World> {
    let (clinic_ids, doctor_ids) =
        world::clinics_and_doctors(db, CLINICS, doctor_count, DAYS).await?;
    let catalogue = specialties::all(db).await?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let staff_id = people::insert(
        &mut tx,
        NewUser {
            email: "staff@bench.example.org",
            display_name: "Staff",
            password_hash: None,
            verified: true,
            language: Default::default(),
        },
        now,
    )
    .await?;
    let patient = people::insert(
        &mut tx,
        NewUser {
            email: "patient@bench.example.org",
            display_name: "Patient",
            password_hash: None,
            verified: true,
            language: Default::default(),
        },
        now,
    )
    .await?;
    people::insert_grant(&mut tx, patient, Grant::global(Role::Patient), now).await?;
    tx.commit().await?;
    // The desk books only patients its clinic knows: this one shares their record with all.
    const SHARE: &str =
        "INSERT INTO record_shares (patient_id, clinic_id, created_at) VALUES ($1, $2, $3)";
    for clinic in &clinic_ids {
        on_db!(db, |pool| sqlx::query(SHARE)
            .bind(patient)
            .bind(clinic)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
    }
    let staff = Actor::User(Principal {
        user_id: staff_id,
        session_id: Uuid::now_v7(),
        email: "staff@bench.example.org".into(),
        grants: clinic_ids
            .iter()
            .map(|c| Grant::in_clinic(Role::ClinicStaff, *c))
            .collect(),
    });
    // Slots 3 to 10 days out, interleaved across doctors, never booked twice.
    let from = now + chrono::Duration::days(3);
    let to = now + chrono::Duration::days(10);
    const FREE: &str = "SELECT id FROM slots WHERE status = 'open' AND starts_at >= $1 AND starts_at < $2 ORDER BY id";
    let rows: Vec<(Uuid,)> = on_db!(db, |pool| sqlx::query_as(FREE)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await)?;
    let mut bookable: Vec<Uuid> = rows.into_iter().map(|(id,)| id).collect();
    // UUIDv7 order is creation order (doctor by doctor); shuffle deterministically.
    bookable.sort_by_key(|id| id.as_u128().wrapping_mul(0x9e37_79b9_7f4a_7c15));
    bookable.truncate(RUNS * BOOKINGS_PER_RUN * 3);
    let specialties = catalogue
        .iter()
        .take(doctor_count.min(catalogue.len()))
        .map(|s| (s.slug.clone(), s.id))
        .collect();
    Ok(World {
        doctors: doctor_ids,
        specialties,
        staff,
        patient,
        bookable,
    })
}

fn fortnight() -> SlotQuery {
    let today = Utc::now().date_naive();
    SlotQuery {
        from: Some(today),
        to: Some(today + Days::new(14)),
        limit: Some(50),
        ..SlotQuery::default()
    }
}

async fn doctor_search(db: &Db, doctor: Uuid) -> AnyResult<usize> {
    Ok(slots::free_for_doctor(db, doctor, &fortnight(), Utc::now())
        .await?
        .len())
}

async fn specialty_search(db: &Db, slug: &str) -> AnyResult<usize> {
    Ok(
        slots::free_for_specialty(db, slug, &fortnight(), Utc::now())
            .await?
            .len(),
    )
}

/// The doctor search's slot query alone, with the notice and window already known.
async fn raw_doctor_search(db: &Db, doctor: Uuid) -> AnyResult<usize> {
    const SQL: &str = "SELECT s.id, s.starts_at FROM slots s JOIN clinics c ON c.id = s.clinic_id \
        WHERE s.doctor_id = $1 AND c.status = 'active' AND s.starts_at >= $4 AND s.starts_at < $5 \
        AND s.local_date >= $2 AND s.local_date < $3 AND s.status = 'open' ORDER BY s.starts_at LIMIT 50";
    let today = Utc::now().date_naive();
    let rows: Vec<(Uuid, chrono::DateTime<Utc>)> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(doctor)
        .bind(today)
        .bind(today + Days::new(14))
        .bind(Utc::now() + chrono::Duration::minutes(60))
        .bind(
            (today + Days::new(14))
                .and_time(chrono::NaiveTime::MIN)
                .and_utc()
                + chrono::Duration::hours(12)
        )
        .fetch_all(pool)
        .await)?;
    Ok(rows.len())
}

/// The specialty search reduced to its core: slots of the specialty's doctors in the
/// window, without the doctor, clinic and schedule filters.
async fn raw_specialty_search(db: &Db, specialty: Uuid) -> AnyResult<usize> {
    const SQL: &str = "SELECT s.id, s.starts_at FROM doctor_specialties ds JOIN slots s ON s.doctor_id = ds.doctor_id \
        WHERE ds.specialty_id = $1 AND s.starts_at >= $4 AND s.starts_at < $5 AND s.local_date >= $2 \
        AND s.local_date < $3 AND s.status = 'open' ORDER BY s.starts_at LIMIT 50";
    let today = Utc::now().date_naive();
    let rows: Vec<(Uuid, chrono::DateTime<Utc>)> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(specialty)
        .bind(today)
        .bind(today + Days::new(14))
        .bind(Utc::now() + chrono::Duration::minutes(60))
        .bind(
            (today + Days::new(14))
                .and_time(chrono::NaiveTime::MIN)
                .and_utc()
                + chrono::Duration::hours(12)
        )
        .fetch_all(pool)
        .await)?;
    Ok(rows.len())
}

/// The bare claim: one conditional UPDATE in its own transaction.
async fn raw_claim(db: &Db, slot: Uuid) -> AnyResult<()> {
    const SQL: &str =
        "UPDATE slots SET status = 'booked', updated_at = $2 WHERE id = $1 AND status = 'open'";
    let mut tx = db.begin().await?;
    let n = clinic::on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(slot)
        .bind(Utc::now())
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?;
    tx.commit().await?;
    if n == 1 {
        Ok(())
    } else {
        Err("raw claim found the slot taken".into())
    }
}

/// The booking's three writes in raw SQL: the claim, the appointment, an audit row.
async fn raw_booking(db: &Db, slot: Uuid, patient: Uuid) -> AnyResult<()> {
    const CLAIM: &str = "UPDATE slots SET status = 'booked', updated_at = $2 WHERE id = $1 AND status = 'open' \
        RETURNING doctor_id, clinic_id, starts_at, ends_at";
    const APPOINTMENT: &str = "INSERT INTO appointments (id, slot_id, patient_id, doctor_id, clinic_id, starts_at, ends_at, \
        status, reason, booked_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'booked', '', $3, $8, $8)";
    const AUDIT: &str = "INSERT INTO audit (seq, id, at, actor_id, action, subject, clinic_id, details, prev_hash, hash) \
        SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, 'bench', 'bench', NULL, '{}', '', '' FROM audit";
    let now = Utc::now();
    let mut tx = db.begin().await?;
    clinic::on_tx!(&mut tx, |conn| {
        let (doctor, clinic, starts, ends): (
            Uuid,
            Uuid,
            chrono::DateTime<Utc>,
            chrono::DateTime<Utc>,
        ) = sqlx::query_as(CLAIM)
            .bind(slot)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
        sqlx::query(APPOINTMENT)
            .bind(Uuid::now_v7())
            .bind(slot)
            .bind(patient)
            .bind(doctor)
            .bind(clinic)
            .bind(starts)
            .bind(ends)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        sqlx::query(AUDIT)
            .bind(Uuid::now_v7())
            .bind(now)
            .bind(patient)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    tx.commit().await?;
    Ok(())
}

/// Prints how SQLite runs the specialty search.
async fn explain_specialty_search(db: &Db, slug: &str) -> AnyResult<()> {
    let today = Utc::now().date_naive();
    let sql = format!(
        "EXPLAIN QUERY PLAN {}",
        clinic::domain::scheduling::slots::SPECIALTY_SEARCH_SQL
    );
    let rows: Vec<(i64, i64, i64, String)> =
        on_db!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(slug)
            .bind(today)
            .bind(today + Days::new(14))
            .bind(0i64)
            .bind(1440i64)
            .bind(Utc::now())
            .bind(None::<String>)
            .bind(None::<Uuid>)
            .bind(None::<i64>)
            .bind(100i64)
            .bind(Utc::now())
            .bind(Utc::now() + chrono::Duration::days(15))
            .bind(8i64)
            .fetch_all(pool)
            .await)?;
    println!("specialty search plan (SQLite):");
    for (_, _, _, detail) in rows {
        println!("  {detail}");
    }
    println!();
    Ok(())
}

async fn timed<F, Fut>(n: usize, mut call: F) -> AnyResult<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = AnyResult<usize>>,
{
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let found = call().await?;
        out.push(t.elapsed());
        if found == 0 {
            return Err("a search found no free slots; the seed is wrong".into());
        }
    }
    Ok(out)
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort_unstable();
    let at =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    (at(0.50), at(0.99))
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn count(db: &Db, sql: &'static str) -> AnyResult<i64> {
    let (n,): (i64,) = on_db!(db, |pool| sqlx::query_as(sql).fetch_one(pool).await)?;
    Ok(n)
}
