//! Pharmacy benchmark: over-the-counter dispensing through the domain (permission, the
//! medicine's lock, first-expiry-first-out over the batches, the dispensing row, the
//! ledger row whose trigger moves the stock, the audit entry) beside the bare ledger
//! insert (the same trigger, nothing else), each its own transaction, one after another.
//! Prints both rates and their ratio.
//!
//! `cargo bench --bench pharmacy` (SQLite, a fresh file; `BENCH_DATABASE_URL` points it at
//! another, empty, database, e.g. PostgreSQL).

use std::time::Instant;

use chrono::Utc;
use clinic::domain::actor::{Actor, Grant, Principal, Role};
use clinic::domain::identity::people::{self, NewUser};
use clinic::domain::pharmacy::{self, Delivery, MedicineForm, dispensing};
use uuid::Uuid;

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
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let user = people::insert(
        &mut tx,
        NewUser {
            email: "pharmacist@bench.example.org",
            display_name: "Bench Pharmacist",
            password_hash: None,
            verified: true,
            language: Default::default(),
        },
        now,
    )
    .await?;
    let grant = Grant::in_clinic(Role::Pharmacist, clinic_id);
    people::insert_grant(&mut tx, user, grant, now).await?;
    tx.commit().await?;
    let pharmacist = Actor::User(Principal {
        user_id: user,
        session_id: Uuid::nil(),
        email: String::new(),
        grants: vec![grant],
    });
    let form = MedicineForm {
        name: "Paracetamol".into(),
        generic_name: String::new(),
        form: "tablet".into(),
        strength: "500 mg".into(),
        dosage_guidance: String::new(),
        unit: "tablet".into(),
        unit_cost_cents: 2,
        unit_price_cents: 6,
        currency: None,
        prescription_only: false,
        low_stock_threshold: 0,
        active: true,
    };
    let medicine = pharmacy::add_medicine(&db, &pharmacist, clinic_id, form).await?;
    // Three batches, so first-expiry-first-out has a choice to make.
    let mut batch = None;
    for (n, days) in [("B-1", 400), ("B-2", 300), ("B-3", 500)] {
        let d = Delivery {
            batch_number: n.into(),
            expiry_date: now.date_naive() + chrono::Days::new(days),
            quantity: 1_000_000,
            location: String::new(),
        };
        batch = Some(pharmacy::receive(&db, &pharmacist, medicine.id, d).await?);
    }
    let batch = batch.ok_or("a batch")?;

    let (mut domain, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..PER_ROUND {
            let sale = dispensing::DispenseForm {
                medicine_id: medicine.id,
                quantity: 1,
                prescription_id: None,
            };
            dispensing::dispense(&db, &pharmacist, clinic_id, sale).await?;
        }
        domain.push(PER_ROUND as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..PER_ROUND {
            const SQL: &str = "INSERT INTO stock_ledger (id, clinic_id, medicine_id, batch_id, kind, quantity, reason, created_at) \
                VALUES ($1, $2, $3, $4, 'dispensed', -1, '', $5)";
            let mut tx = db.begin().await?;
            clinic::exec_tx!(
                &mut tx,
                SQL,
                Uuid::now_v7(),
                clinic_id,
                medicine.id,
                batch.id,
                Utc::now()
            )?;
            tx.commit().await?;
        }
        raw.push(PER_ROUND as f64 / t.elapsed().as_secs_f64());
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (d, r) = (median(domain), median(raw));
    println!(
        "dispense 1 unit through the domain: {d:>8.0} tx/s (median of {ROUNDS} rounds of {PER_ROUND})"
    );
    println!("bare ledger insert (trigger only):  {r:>8.0} tx/s");
    println!("domain / bare:                      {:>8.2}", d / r);
    let stock = pharmacy::batches(&db, &pharmacist, medicine.id).await?;
    let on_hand: i64 = stock.iter().map(|b| b.on_hand).sum();
    println!("stock left: {on_hand} (from 3,000,000)");
    Ok(())
}
