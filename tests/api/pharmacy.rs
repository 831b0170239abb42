//! The pharmacy over the API: the catalogue, deliveries, first-expiry-first-out dispensing
//! against prescriptions (refills counted) and over the counter, adjustments, expiry, the
//! append-only ledger whose sum is the stock, alerts, and 32 dispensers racing for the
//! last 10 units.

use chrono::{Duration, NaiveDate, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    the_pharmacy_keeps_its_ledger_dispenses_fefo_and_refuses_what_it_must,
    thirty_two_dispensers_racing_for_the_last_ten_units_dispense_exactly_ten,
);

fn today() -> NaiveDate {
    Utc::now()
        .with_timezone(&chrono_tz::Europe::Lisbon)
        .date_naive()
}

fn paracetamol() -> Value {
    json!({"name": "Paracetamol", "form": "tablet", "strength": "500 mg", "unit": "tablet",
           "unit_cost_cents": 2, "unit_price_cents": 5, "prescription_only": false, "low_stock_threshold": 20})
}

impl TestApp {
    async fn receive(
        &self,
        token: &str,
        medicine: &str,
        batch: &str,
        days: i64,
        quantity: i64,
    ) -> crate::helpers::Answer {
        self.post_as(
            token,
            &format!("/api/v1/medicines/{medicine}/batches"),
            json!({"batch_number": batch, "expiry_date": today() + Duration::days(days), "quantity": quantity, "location": "shelf A"}),
        )
        .await
    }

    /// Every batch's ledger sum against its stock on hand: (sum, on_hand) pairs.
    async fn ledger_against_stock(&self) -> Vec<(i64, i64)> {
        const SQL: &str = "SELECT CAST(COALESCE((SELECT SUM(l.quantity) FROM stock_ledger l WHERE l.batch_id = b.id), 0) AS BIGINT), b.on_hand FROM stock_batches b";
        clinic::on_db!(&self.db, |pool| sqlx::query_as(SQL).fetch_all(pool).await).unwrap()
    }
}

async fn the_pharmacy_keeps_its_ledger_dispenses_fefo_and_refuses_what_it_must(app: TestApp) {
    let care = app.care_setup().await;
    let clinic = care.clinic.id;
    let (_, pharm) = app
        .user_with(
            "pharm@example.org",
            &[json!({"role": "pharmacist", "clinic_id": clinic})],
        )
        .await;
    let medicines = format!("/api/v1/clinics/{clinic}/medicines");
    let para = app
        .post_as(&care.clinic.admin, &medicines, paracetamol())
        .await;
    let para = para.assert_ok(201)["id"].as_str().unwrap().to_owned();
    app.post_as(&pharm, &medicines, paracetamol())
        .await
        .assert_problem(409, "conflict");
    let amox = app
        .post_as(&pharm, &medicines, json!({"name": "Amoxicillin", "form": "capsule", "strength": "500 mg", "unit": "capsule",
            "unit_cost_cents": 10, "unit_price_cents": 25}))
        .await;
    assert_eq!(amox.assert_ok(201)["prescription_only"], true);
    let amox = amox.str("id");
    app.post_as(&pharm, &medicines, json!({"name": "X", "form": "tablet", "unit": "tablet", "unit_cost_cents": -1, "unit_price_cents": 1}))
        .await
        .assert_problem(422, "validation_failed");
    app.get_as(&care.patient, &medicines)
        .await
        .assert_problem(403, "forbidden");

    // Deliveries: only pharmacists; an expired batch or no units are refused.
    app.receive(&pharm, &para, "P-LATE", 60, 10)
        .await
        .assert_ok(201);
    app.receive(&pharm, &para, "P-SOON", 20, 5)
        .await
        .assert_ok(201);
    app.receive(&pharm, &para, "P-OLD", -1, 5)
        .await
        .assert_problem(422, "validation_failed");
    app.receive(&pharm, &para, "P-NONE", 30, 0)
        .await
        .assert_problem(422, "validation_failed");
    app.receive(&care.clinic.admin, &para, "P-ADMIN", 30, 5)
        .await
        .assert_problem(403, "forbidden");

    // Over the counter: the soonest expiry first.
    let dispensings = format!("/api/v1/clinics/{clinic}/dispensings");
    let sale = app
        .post_as(
            &pharm,
            &dispensings,
            json!({"medicine_id": para, "quantity": 7}),
        )
        .await;
    let taken: Vec<(String, i64)> = sale.assert_ok(201)["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["batch_number"].as_str().unwrap().to_owned(),
                b["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(taken, [("P-SOON".to_owned(), 5), ("P-LATE".to_owned(), 2)]);
    app.post_as(
        &pharm,
        &dispensings,
        json!({"medicine_id": para, "quantity": 9}),
    )
    .await
    .assert_problem(409, "insufficient_stock");
    app.post_as(
        &pharm,
        &dispensings,
        json!({"medicine_id": para, "quantity": -1}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let listed = app.get_as(&pharm, &medicines).await;
    let on_hand = |list: &Value, id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()["on_hand"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(on_hand(listed.assert_ok(200), &para), 8);
    // A prescription-only medicine is not sold over the counter.
    app.receive(&pharm, &amox, "A-1", 100, 30)
        .await
        .assert_ok(201);
    app.post_as(
        &pharm,
        &dispensings,
        json!({"medicine_id": amox, "quantity": 1}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // Against a signed prescription of the clinic: up to what it and its refills allow.
    let record = app
        .post_as(
            &care.doctor,
            &format!("/api/v1/patients/{}/records", care.patient_id),
            json!({"appointment_id": care.appointment, "chief_complaint": "Sore throat",
                   "diagnoses": [{"text": "Tonsillitis"}],
                   "prescriptions": [{"medicine": "amoxicillin", "dose": "500 mg", "route": "oral", "times_per_day": 2,
                                      "duration_days": 7, "quantity": 14}]}),
        )
        .await;
    let record = record.assert_ok(201)["id"].as_str().unwrap().to_owned();
    app.post_as(
        &care.doctor,
        &format!("/api/v1/records/{record}/sign"),
        json!({}),
    )
    .await
    .assert_ok(200);
    let due = app
        .get_as(
            &pharm,
            &format!(
                "/api/v1/clinics/{clinic}/patients/{}/dispensable",
                care.patient_id
            ),
        )
        .await;
    let due = due.assert_ok(200).as_array().unwrap().clone();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0]["allowed"].as_i64(), due[0]["remaining"].as_i64()),
        (Some(14), Some(14))
    );
    let rx = due[0]["prescription_id"].as_str().unwrap().to_owned();
    // Others read nothing of it.
    app.get_as(
        &care.clinic.admin,
        &format!(
            "/api/v1/clinics/{clinic}/patients/{}/dispensable",
            care.patient_id
        ),
    )
    .await
    .assert_problem(403, "forbidden");
    let given = app
        .post_as(
            &pharm,
            &dispensings,
            json!({"medicine_id": amox, "quantity": 10, "prescription_id": rx}),
        )
        .await;
    assert_eq!(given.assert_ok(201)["remaining"], 4);
    assert_eq!(given.body["patient_id"], care.patient_id.to_string());
    app.post_as(
        &pharm,
        &dispensings,
        json!({"medicine_id": amox, "quantity": 5, "prescription_id": rx}),
    )
    .await
    .assert_problem(409, "exceeds_prescription");
    let rest = app
        .post_as(
            &pharm,
            &dispensings,
            json!({"medicine_id": amox, "quantity": 4, "prescription_id": rx}),
        )
        .await;
    assert_eq!(rest.assert_ok(201)["remaining"], 0);

    // Adjustments: a count needs a reason and never goes below zero.
    let batches = app
        .get_as(&pharm, &format!("/api/v1/medicines/{para}/batches"))
        .await;
    let late = batches
        .assert_ok(200)
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["batch_number"] == "P-LATE")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let adjust = format!("/api/v1/batches/{late}/adjustments");
    let counted = app
        .post_as(
            &pharm,
            &adjust,
            json!({"kind": "adjusted", "quantity": -3, "reason": "dropped"}),
        )
        .await;
    assert_eq!(counted.assert_ok(200)["on_hand"], 5);
    app.post_as(&pharm, &adjust, json!({"kind": "adjusted", "quantity": -1}))
        .await
        .assert_problem(422, "validation_failed");
    app.post_as(
        &pharm,
        &adjust,
        json!({"kind": "adjusted", "quantity": -100, "reason": "lost"}),
    )
    .await
    .assert_problem(409, "insufficient_stock");

    // An expired batch is never dispensed, and is listed to write off.
    let late_id: Uuid = late.parse().unwrap();
    clinic::on_db!(&app.db, |pool| sqlx::query(
        "UPDATE stock_batches SET expiry_date = $2 WHERE id = $1"
    )
    .bind(late_id)
    .bind(today() - Duration::days(1))
    .execute(pool)
    .await
    .map(|_| ()))
    .unwrap();
    app.post_as(
        &pharm,
        &dispensings,
        json!({"medicine_id": para, "quantity": 1}),
    )
    .await
    .assert_problem(409, "insufficient_stock");
    let alerts = app
        .get_as(&pharm, &format!("/api/v1/clinics/{clinic}/pharmacy-alerts"))
        .await;
    let alerts = alerts.assert_ok(200);
    assert_eq!(alerts["low_stock"][0]["name"], "Paracetamol");
    assert_eq!(alerts["expired"][0]["batch_number"], "P-LATE");
    let written_off = app
        .post_as(&pharm, &adjust, json!({"kind": "expired", "quantity": 5}))
        .await;
    assert_eq!(written_off.assert_ok(200)["on_hand"], 0);

    // The ledger is the stock: each batch's sum is its stock on hand, and it is append-only.
    let pairs = app.ledger_against_stock().await;
    assert_eq!(pairs.len(), 3);
    assert!(
        pairs
            .iter()
            .all(|(sum, on_hand)| sum == on_hand && *on_hand >= 0),
        "{pairs:?}"
    );
    let moves = app
        .get_as(&pharm, &format!("/api/v1/clinics/{clinic}/stock-ledger"))
        .await;
    assert_eq!(moves.assert_ok(200).as_array().unwrap().len(), 9);
    let rewrite = clinic::on_db!(&app.db, |pool| sqlx::query(
        "UPDATE stock_ledger SET quantity = 1000"
    )
    .execute(pool)
    .await
    .map(|_| ()));
    assert!(rewrite.is_err());
    let erase = clinic::on_db!(&app.db, |pool| sqlx::query("DELETE FROM stock_ledger")
        .execute(pool)
        .await
        .map(|_| ()));
    assert!(erase.is_err());

    // The daily alert reaches the clinic's pharmacist once a day.
    let now = Utc::now();
    clinic::domain::pharmacy::alerts::notify_all(&app.db, now)
        .await
        .unwrap();
    clinic::domain::pharmacy::alerts::notify_all(&app.db, now)
        .await
        .unwrap();
    let sent = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM outbox WHERE kind = $1",
            "pharmacy_alert",
        )
        .await;
    assert_eq!(sent, 1);
}

async fn thirty_two_dispensers_racing_for_the_last_ten_units_dispense_exactly_ten(app: TestApp) {
    let clinic = app.approved_clinic("Race Pharmacy", "Europe/Lisbon").await;
    let mut tokens = Vec::new();
    for i in 0..4 {
        let (_, t) = app
            .user_with(
                &format!("pharm{i}@race.example.org"),
                &[json!({"role": "pharmacist", "clinic_id": clinic.id})],
            )
            .await;
        tokens.push(t);
    }
    let medicines = format!("/api/v1/clinics/{}/medicines", clinic.id);
    let para = app
        .post_as(&tokens[0], &medicines, paracetamol())
        .await
        .str("id");
    app.receive(&tokens[0], &para, "R-1", 30, 6)
        .await
        .assert_ok(201);
    app.receive(&tokens[1], &para, "R-2", 60, 4)
        .await
        .assert_ok(201);
    let path = format!("/api/v1/clinics/{}/dispensings", clinic.id);
    let attempts = (0..32).map(|i| {
        let (app, path, token, para) = (&app, path.clone(), tokens[i % 4].clone(), para.clone());
        async move {
            app.post_as(&token, &path, json!({"medicine_id": para, "quantity": 1}))
                .await
        }
    });
    let answers = futures::future::join_all(attempts).await;
    let given = answers.iter().filter(|a| a.status == 201).count();
    let refused = answers
        .iter()
        .filter(|a| a.status == 409 && a.body["code"] == "insufficient_stock")
        .count();
    assert_eq!(
        (given, refused),
        (10, 22),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let pairs = app.ledger_against_stock().await;
    assert!(
        pairs
            .iter()
            .all(|(sum, on_hand)| sum == on_hand && *on_hand == 0),
        "{pairs:?}"
    );
}
