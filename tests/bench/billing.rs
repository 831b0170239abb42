//! Billing benchmark: issuing invoices through the domain (permission, the clinic's
//! counter taken in the transaction, the status change checked in the same statement, the
//! audit entry) beside the bare numbering (the counter's upsert and the invoice's update,
//! nothing else), each its own transaction, one after another; and rendering an issued
//! invoice's PDF. Prints the rates and the ratio.
//!
//! `cargo bench --bench billing` (SQLite, a fresh file; `BENCH_DATABASE_URL` points it at
//! another, empty, database, e.g. PostgreSQL).

use std::time::Instant;

use chrono::Utc;
use clinic::domain::actor::Actor;
use clinic::domain::billing::{self, DraftForm, LineForm, LineKind};

#[path = "world.rs"]
mod world;
use world::AnyResult;

const ROUNDS: usize = 5;
const PER_ROUND: usize = 300;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> AnyResult<()> {
    clinic::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let (db, clinic_id) = world::one_clinic(&dir).await?;
    let files = clinic::storage::LocalFiles::new(dir.path().join("files"));
    let desk = Actor::System;
    let draft = || DraftForm {
        lines: vec![
            LineForm {
                kind: LineKind::Consultation,
                description: "Consultation".into(),
                quantity: 1,
                unit_cents: 6000,
                discount_cents: 0,
            },
            LineForm {
                kind: LineKind::Other,
                description: "Dressing".into(),
                quantity: 2,
                unit_cents: 250,
                discount_cents: 100,
            },
        ],
        bill_to: "Walk-in patient".into(),
        ..DraftForm::default()
    };
    // The drafts both sides issue, made beforehand.
    let mut drafts = Vec::with_capacity(ROUNDS * PER_ROUND * 2);
    for _ in 0..ROUNDS * PER_ROUND * 2 {
        drafts.push(
            billing::create_draft(&db, &desk, clinic_id, draft())
                .await?
                .id,
        );
    }
    let mut drafts = drafts.into_iter();

    let (mut domain, mut raw) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for id in drafts.by_ref().take(PER_ROUND) {
            last = Some(billing::issue(&db, &files, &desk, id).await?);
        }
        domain.push(PER_ROUND as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for id in drafts.by_ref().take(PER_ROUND) {
            // The year 2000, so the two sides' counters never meet.
            const NEXT: &str = "INSERT INTO invoice_counters (clinic_id, year, last_number) VALUES ($1, 2000, 1) \
                ON CONFLICT (clinic_id, year) DO UPDATE SET last_number = invoice_counters.last_number + 1 RETURNING last_number";
            const ISSUE: &str = "UPDATE invoices SET status = 'issued', number = $2, year = 2000, sequence = $3, issued_at = $4 \
                WHERE id = $1 AND status = 'draft'";
            let mut tx = db.begin().await?;
            let (n,): (i64,) = clinic::on_tx!(&mut tx, |conn| sqlx::query_as(NEXT)
                .bind(clinic_id)
                .fetch_one(&mut *conn)
                .await)?;
            clinic::exec_tx!(
                &mut tx,
                ISSUE,
                id,
                format!("BEN-2000-{n:06}"),
                n,
                Utc::now()
            )?;
            tx.commit().await?;
        }
        raw.push(PER_ROUND as f64 / t.elapsed().as_secs_f64());
    }
    let invoice = last.ok_or("an issued invoice")?;
    let clinic = clinic::domain::clinics::get(&db, clinic_id)
        .await?
        .ok_or("the clinic")?;
    let mut renders = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..PER_ROUND {
            std::hint::black_box(billing::pdf::render(&invoice, &clinic, None));
        }
        renders.push(PER_ROUND as f64 / t.elapsed().as_secs_f64());
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (d, r, p) = (median(domain), median(raw), median(renders));
    println!(
        "issue an invoice through the domain: {d:>8.0} tx/s (median of {ROUNDS} rounds of {PER_ROUND})"
    );
    println!("bare numbering (counter + update):   {r:>8.0} tx/s");
    println!("domain / bare:                       {:>8.2}", d / r);
    println!("render an invoice's PDF:             {p:>8.0} /s");
    Ok(())
}
