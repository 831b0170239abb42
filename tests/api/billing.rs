//! Billing over the API: a visit's invoice from draft to paid (consultation from the price
//! list, a dispensing, a discounted line, tax per kind), partial payments, what may not be
//! done, voiding only by a credit note, the patient's view, and 64 invoices issued at once
//! getting 64 consecutive numbers; lab tests billed at the clinic's lab prices, revenue by
//! specialty, and the pharmacy's stock value and movements.

use chrono::Datelike;
use serde_json::json;

use crate::helpers::{Answer, TestApp};
use crate::on_both_backends;

on_both_backends!(
    an_invoice_goes_from_draft_to_paid_and_is_voided_only_by_a_credit_note,
    sixty_four_invoices_issued_at_once_get_sixty_four_consecutive_numbers,
    a_visits_lab_tests_are_billed_once_at_the_clinics_prices_and_the_reports_add_up,
);

/// A front-desk member and a pharmacist of the clinic, signed in.
async fn desk_and_pharmacist(app: &TestApp, clinic: uuid::Uuid) -> (String, String) {
    let (_, desk) = app
        .user_with(
            "desk@example.org",
            &[json!({"role": "clinic_staff", "clinic_id": clinic})],
        )
        .await;
    let (_, pharm) = app
        .user_with(
            "pharm@example.org",
            &[json!({"role": "pharmacist", "clinic_id": clinic})],
        )
        .await;
    (desk, pharm)
}

async fn an_invoice_goes_from_draft_to_paid_and_is_voided_only_by_a_credit_note(app: TestApp) {
    let care = app.care_setup().await;
    let clinic = care.clinic.id;
    let admin = &care.clinic.admin;
    let (desk, pharm) = desk_and_pharmacist(&app, clinic).await;
    app.request(
        reqwest::Method::PUT,
        &format!("/api/v1/clinics/{clinic}/prices"),
        Some(admin),
        Some(json!({"prices": [{"visit_type": "consultation", "amount_cents": 6000, "currency": "EUR"}]})),
    )
    .await
    .assert_ok(200);
    app.request(
        reqwest::Method::PUT,
        &format!("/api/v1/clinics/{clinic}/tax-rates"),
        Some(admin),
        Some(json!({"rates": [{"name": "consultation", "rate_bp": 0}, {"name": "medicine", "rate_bp": 600}, {"name": "other", "rate_bp": 2300}]})),
    )
    .await
    .assert_ok(200);
    app.request(
        reqwest::Method::PUT,
        &format!("/api/v1/clinics/{clinic}/tax-rates"),
        Some(&desk),
        Some(json!({"rates": []})),
    )
    .await
    .assert_problem(403, "forbidden");
    // A sale at the pharmacy to bill with the visit.
    let medicine = app
        .post_as(
            &pharm,
            &format!("/api/v1/clinics/{clinic}/medicines"),
            json!({"name": "Paracetamol", "form": "tablet", "strength": "500 mg", "unit": "tablet",
                   "unit_cost_cents": 10, "unit_price_cents": 25, "prescription_only": false}),
        )
        .await
        .str("id");
    let expiry = (chrono::Utc::now() + chrono::Duration::days(90)).date_naive();
    app.post_as(
        &pharm,
        &format!("/api/v1/medicines/{medicine}/batches"),
        json!({"batch_number": "B", "expiry_date": expiry, "quantity": 50}),
    )
    .await
    .assert_ok(201);
    let sale = app
        .post_as(
            &pharm,
            &format!("/api/v1/clinics/{clinic}/dispensings"),
            json!({"medicine_id": medicine, "quantity": 10}),
        )
        .await
        .str("id");

    let invoices = format!("/api/v1/clinics/{clinic}/invoices");
    let draft = app
        .post_as(&desk, &invoices, json!({"appointment_id": care.appointment, "dispensing_ids": [sale],
            "lines": [{"kind": "other", "description": "Dressing", "quantity": 2, "unit_cents": 250, "discount_cents": 100}]}))
        .await;
    let draft = draft.assert_ok(201).clone();
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["number"], serde_json::Value::Null);
    assert_eq!(draft["patient_id"], care.patient_id.to_string());
    let totals = |v: &serde_json::Value| {
        [
            "subtotal_cents",
            "discount_cents",
            "tax_cents",
            "total_cents",
        ]
        .map(|k| v[k].as_i64().unwrap())
    };
    // 6000 + 10×25 + 2×250 − 100; tax 0 + 15 (6 % of 250) + 92 (23 % of 400).
    assert_eq!(totals(&draft), [6750, 100, 107, 6757]);
    let lines = draft["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0]["description"]
            .as_str()
            .unwrap()
            .starts_with("Consultation (consultation) with Dr. Ana Costa")
    );
    assert_eq!(
        (
            lines[1]["tax_cents"].as_i64(),
            lines[2]["total_cents"].as_i64()
        ),
        (Some(15), Some(492))
    );
    let id = draft["id"].as_str().unwrap().to_owned();
    // The same sale is billed once; bad lines are refused, nothing written.
    app.post_as(&desk, &invoices, json!({"dispensing_ids": [sale]}))
        .await
        .assert_problem(409, "conflict");
    app.post_as(
        &desk,
        &invoices,
        json!({"lines": [{"kind": "other", "description": "X", "unit_cents": -5}]}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post_as(&desk, &invoices, json!({}))
        .await
        .assert_problem(422, "validation_failed");
    app.post_as(
        &care.patient,
        &invoices,
        json!({"lines": [{"kind": "other", "description": "X", "unit_cents": 5}]}),
    )
    .await
    .assert_problem(403, "forbidden");
    // A draft is not the patient's to see.
    app.get_as(&care.patient, &format!("/api/v1/invoices/{id}"))
        .await
        .assert_problem(404, "not_found");

    let issued = app
        .post_as(&desk, &format!("/api/v1/invoices/{id}/issue"), json!({}))
        .await;
    let year = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Lisbon)
        .year();
    assert_eq!(
        issued.assert_ok(200)["number"],
        format!("CAR-{year}-000001")
    );
    assert_eq!(issued.body["status"], "issued");
    app.post_as(&desk, &format!("/api/v1/invoices/{id}/issue"), json!({}))
        .await
        .assert_problem(409, "invalid_transition");
    // The PDF: opened and its text read back.
    let pdf = app
        .client
        .get(app.url(&format!("/api/v1/invoices/{id}/pdf")))
        .bearer_auth(&care.patient)
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let bytes = pdf.bytes().await.unwrap();
    let text = pdf_extract::extract_text_from_mem(&bytes).unwrap();
    for expected in [
        &format!("Invoice CAR-{year}-000001") as &str,
        "Care Clinic",
        "Test Patient",
        "Dressing",
        "67.57 EUR",
        "Paracetamol 500 mg",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from the PDF's text: {text}"
        );
    }
    // The patient is mailed it, the same PDF attached.
    const SQL: &str = "SELECT id, kind, channel, recipient, about, sealed, due_at, attempts FROM outbox \
        WHERE recipient = $1 AND kind = $2 AND channel = 'email'";
    let row = clinic::on_db!(&app.db, |pool| sqlx::query_as::<
        _,
        clinic::notify::outbox::Claimed,
    >(SQL)
    .bind("pat@example.org")
    .bind("invoice_issued")
    .fetch_one(pool)
    .await)
    .unwrap();
    let mail = row.open(app.db.policy()).unwrap();
    assert!(
        mail.subject
            .starts_with(&format!("Invoice CAR-{year}-000001")),
        "{}",
        mail.subject
    );
    let attached = mail.attachment.expect("the PDF is attached");
    assert_eq!(attached.media_type, "application/pdf");
    let text = pdf_extract::extract_text_from_mem(&attached.bytes().unwrap()).unwrap();
    assert!(text.contains("67.57 EUR"), "{text}");
    app.request(
        reqwest::Method::DELETE,
        &format!("/api/v1/invoices/{id}"),
        Some(&desk),
        None,
    )
    .await
    .assert_problem(409, "invalid_transition");

    // Partial payments; more than owed is refused.
    let pay = format!("/api/v1/invoices/{id}/payments");
    let part = app
        .post_as(&desk, &pay, json!({"method": "card", "amount_cents": 1000}))
        .await;
    assert_eq!(
        (
            part.assert_ok(200)["paid_cents"].as_i64(),
            part.body["balance_cents"].as_i64()
        ),
        (Some(1000), Some(5757))
    );
    app.post_as(&desk, &pay, json!({"method": "cash", "amount_cents": 6000}))
        .await
        .assert_problem(409, "conflict");
    app.post_as(&desk, &pay, json!({"method": "cash", "amount_cents": 0}))
        .await
        .assert_problem(422, "validation_failed");
    let paid = app
        .post_as(&desk, &pay, json!({"method": "cash", "amount_cents": 5757}))
        .await;
    assert_eq!(paid.assert_ok(200)["status"], "paid");
    assert_eq!(paid.body["payments"].as_array().unwrap().len(), 2);
    app.post_as(&desk, &pay, json!({"method": "cash", "amount_cents": 1}))
        .await
        .assert_problem(409, "invalid_transition");
    // The patient reads it now.
    app.get_as(&care.patient, &format!("/api/v1/invoices/{id}"))
        .await
        .assert_ok(200);

    // Void only by a credit note: numbered next, every line reversed.
    let credit = format!("/api/v1/invoices/{id}/credit-note");
    app.post_as(&desk, &credit, json!({"reason": ""}))
        .await
        .assert_problem(422, "validation_failed");
    let note = app
        .post_as(
            &desk,
            &credit,
            json!({"reason": "billed to the wrong insurer"}),
        )
        .await;
    let note = note.assert_ok(201).clone();
    assert_eq!(note["kind"], "credit_note");
    assert_eq!(note["number"], format!("CAR-{year}-000002"));
    assert_eq!(note["credits"], id.as_str());
    assert_eq!(totals(&note), [-6750, -100, -107, -6757]);
    let voided = app.get_as(&desk, &format!("/api/v1/invoices/{id}")).await;
    assert_eq!(voided.assert_ok(200)["status"], "void");
    app.post_as(&desk, &credit, json!({"reason": "again"}))
        .await
        .assert_problem(409, "invalid_transition");
    // Once void, the sale may be billed again.
    let again = app
        .post_as(&desk, &invoices, json!({"dispensing_ids": [sale]}))
        .await;
    let again = again.assert_ok(201)["id"].as_str().unwrap().to_owned();
    app.post_as(&desk, &format!("/api/v1/invoices/{again}/issue"), json!({}))
        .await
        .assert_ok(200);
    // Revenue today: the visit invoiced and credited (net 0) plus the sale (250 + 6 %);
    // 6757 paid; the sale still owed.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Lisbon)
        .date_naive();
    let report = format!(
        "/api/v1/clinics/{clinic}/reports/revenue?from={}&to={}&period=day",
        today - chrono::Duration::days(1),
        today + chrono::Duration::days(1)
    );
    let revenue = app.get_as(admin, &report).await;
    let revenue = revenue.assert_ok(200);
    assert_eq!(
        revenue["periods"].as_array().unwrap().len(),
        1,
        "{revenue:#}"
    );
    assert_eq!(revenue["periods"][0]["invoiced_cents"], 265);
    assert_eq!(revenue["periods"][0]["paid_cents"], 6757);
    assert_eq!(revenue["outstanding_cents"], 265);
    assert_eq!(revenue["by_doctor"][0]["invoiced_cents"], 0, "{revenue:#}");
    let csv = app
        .client
        .get(app.url(&format!("{report}&format=csv")))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        csv,
        format!("period,invoiced_cents,paid_cents\n{today},265,6757\n")
    );
    app.get_as(&desk, &report)
        .await
        .assert_problem(403, "forbidden");
    let mine = app.get_as(&care.patient, "/api/v1/me/invoices").await;
    let mine = mine.assert_ok(200).as_array().unwrap().clone();
    assert_eq!(
        mine.len(),
        2,
        "the void invoice and its credit note, not the new draft"
    );
    // Another clinic's staff see nothing of it.
    let other = app.approved_clinic("Other Billing", "Europe/Lisbon").await;
    app.get_as(&other.admin, &format!("/api/v1/invoices/{id}"))
        .await
        .assert_problem(404, "not_found");
    app.get_as(&other.admin, &invoices)
        .await
        .assert_problem(403, "forbidden");
}

async fn sixty_four_invoices_issued_at_once_get_sixty_four_consecutive_numbers(app: TestApp) {
    let clinic = app.approved_clinic("Numbers Clinic", "Europe/Lisbon").await;
    let invoices = format!("/api/v1/clinics/{}/invoices", clinic.id);
    let mut ids = Vec::new();
    for i in 0..64 {
        let draft = app
            .post_as(&clinic.admin, &invoices, json!({"lines": [{"kind": "other", "description": format!("Item {i}"), "unit_cents": 100}]}))
            .await;
        ids.push(draft.str("id"));
    }
    let attempts = ids.iter().map(|id| {
        let (app, token) = (&app, clinic.admin.clone());
        async move {
            app.post_as(&token, &format!("/api/v1/invoices/{id}/issue"), json!({}))
                .await
        }
    });
    let answers = futures::future::join_all(attempts).await;
    let mut numbers: Vec<i64> = answers
        .iter()
        .map(|a| {
            let n = a.assert_ok(200)["number"].as_str().unwrap().to_owned();
            n.rsplit('-').next().unwrap().parse().unwrap()
        })
        .collect();
    numbers.sort();
    assert_eq!(numbers, (1..=64).collect::<Vec<_>>());
}

async fn a_visits_lab_tests_are_billed_once_at_the_clinics_prices_and_the_reports_add_up(
    app: TestApp,
) {
    let care = app.care_setup().await;
    let clinic = care.clinic.id;
    let admin = &care.clinic.admin;
    let (desk, pharm) = desk_and_pharmacist(&app, clinic).await;
    // Lab prices: catalogue codes and `custom`; a code outside the catalogue is refused,
    // and only the clinic's admins set them.
    let lab_prices = format!("/api/v1/clinics/{clinic}/lab-prices");
    async fn put(app: &TestApp, url: &str, token: &str, body: serde_json::Value) -> Answer {
        app.request(reqwest::Method::PUT, url, Some(token), Some(body))
            .await
    }
    put(
        &app,
        &lab_prices,
        admin,
        json!({"prices": [{"test_code": "99999-9", "amount_cents": 100, "currency": "EUR"}]}),
    )
    .await
    .assert_problem(422, "validation_failed");
    put(&app, &lab_prices, &desk, json!({"prices": []}))
        .await
        .assert_problem(403, "forbidden");
    let set = put(
        &app,
        &lab_prices,
        admin,
        json!({"prices": [{"test_code": "57698-3", "amount_cents": 2000, "currency": "EUR"},
                          {"test_code": "custom", "amount_cents": 1500, "currency": "eur"}]}),
    )
    .await;
    assert_eq!(set.assert_ok(200).as_array().unwrap().len(), 2);
    let public = app.get(&lab_prices).await;
    let lipids_price = public
        .assert_ok(200)
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["test_code"] == "57698-3")
        .cloned()
        .unwrap();
    assert_eq!(lipids_price["test_name"], "Lipid panel");
    assert_eq!(lipids_price["amount_cents"], 2000);

    // The visit's record orders three tests; one (a blood count) has no price.
    let record = app
        .post_as(
            &care.doctor,
            &format!("/api/v1/patients/{}/records", care.patient_id),
            json!({"appointment_id": care.appointment, "chief_complaint": "Check-up"}),
        )
        .await
        .str("id");
    let ordered = app
        .post_as(
            &care.doctor,
            &format!("/api/v1/records/{record}/lab-orders"),
            json!({"tests": [{"code": "57698-3"}, {"name": "Urine culture"}, {"code": "58410-2"}]}),
        )
        .await;
    let ordered = ordered.assert_ok(201).as_array().unwrap().clone();
    let order_of = |code: &str| {
        ordered.iter().find(|o| o["test_code"] == code).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (lipids, culture, blood_count) =
        (order_of("57698-3"), order_of("custom"), order_of("58410-2"));

    // Invoicing the visit bills its priced lab orders with the consultation.
    let invoices = format!("/api/v1/clinics/{clinic}/invoices");
    let draft = app
        .post_as(
            &desk,
            &invoices,
            json!({"appointment_id": care.appointment}),
        )
        .await;
    let draft = draft.assert_ok(201).clone();
    let lines = draft["lines"].as_array().unwrap();
    let labs: Vec<_> = lines.iter().filter(|l| l["kind"] == "lab_test").collect();
    assert_eq!(labs.len(), 2, "{draft:#}");
    assert_eq!(labs[0]["description"], "Lab test: Lipid panel");
    assert_eq!(labs[0]["unit_cents"], 2000);
    assert_eq!(labs[0]["lab_order_id"], lipids.as_str());
    assert_eq!(labs[1]["description"], "Lab test: Urine culture");
    assert_eq!(labs[1]["lab_order_id"], culture.as_str());
    // 60.00 consultation (the doctor's fee) + 20.00 + 15.00, no tax set.
    assert_eq!(draft["total_cents"], 9500);
    // Named: an unpriced test is refused with its name, a billed one is a conflict.
    let refused = app
        .post_as(&desk, &invoices, json!({"lab_order_ids": [blood_count]}))
        .await;
    refused.assert_problem(422, "validation_failed");
    assert!(
        refused.body.to_string().contains("Complete blood count"),
        "{:#}",
        refused.body
    );
    app.post_as(&desk, &invoices, json!({"lab_order_ids": [lipids]}))
        .await
        .assert_problem(409, "conflict");
    app.post_as(&desk, &invoices, json!({"lab_order_ids": [lipids, lipids]}))
        .await
        .assert_problem(422, "validation_failed");
    // Another clinic cannot bill this clinic's orders.
    let other = app.approved_clinic("Other Labs", "Europe/Lisbon").await;
    app.post_as(
        &other.admin,
        &format!("/api/v1/clinics/{}/invoices", other.id),
        json!({"lab_order_ids": [culture]}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let id = draft["id"].as_str().unwrap();
    app.post_as(&desk, &format!("/api/v1/invoices/{id}/issue"), json!({}))
        .await
        .assert_ok(200);
    // The PDF lists the tests, under the clinic's logo (a PNG: its pixels and its
    // transparency as image objects).
    let logo = app
        .client
        .put(app.url(&format!("/api/v1/clinics/{clinic}/logo")))
        .bearer_auth(admin)
        .header("content-type", "image/png")
        .body(a_png_logo())
        .send()
        .await
        .unwrap();
    assert_eq!(logo.status(), 200);
    let pdf = app
        .client
        .get(app.url(&format!("/api/v1/invoices/{id}/pdf")))
        .bearer_auth(&care.patient)
        .send()
        .await
        .unwrap();
    let bytes = pdf.bytes().await.unwrap();
    let text = pdf_extract::extract_text_from_mem(&bytes).unwrap();
    assert!(text.contains("Lab test: Urine culture"), "{text}");
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"/Subtype /Image") && has(b"/SMask") && has(b"/Im1 Do"));

    // Revenue by specialty: the visit's invoice under the doctor's specialty.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Lisbon)
        .date_naive();
    let range = format!(
        "from={}&to={}",
        today - chrono::Duration::days(1),
        today + chrono::Duration::days(1)
    );
    let revenue = app
        .get_as(
            admin,
            &format!("/api/v1/clinics/{clinic}/reports/revenue?{range}"),
        )
        .await;
    let revenue = revenue.assert_ok(200);
    assert_eq!(revenue["by_specialty"][0]["specialty"], "Dermatology");
    assert_eq!(revenue["by_specialty"][0]["invoiced_cents"], 9500);
    app.get_as(
        admin,
        &format!("/api/v1/clinics/{clinic}/reports/revenue?from={today}&to=2020-01-01"),
    )
    .await
    .assert_problem(400, "invalid_query");

    // The pharmacy's stock report: 50 received, 10 sold, 2 written off; worth 38 at cost.
    let medicine = app
        .post_as(
            &pharm,
            &format!("/api/v1/clinics/{clinic}/medicines"),
            json!({"name": "Paracetamol", "form": "tablet", "strength": "500 mg", "unit": "tablet",
                   "unit_cost_cents": 10, "unit_price_cents": 25, "prescription_only": false}),
        )
        .await
        .str("id");
    let expiry = (chrono::Utc::now() + chrono::Duration::days(90)).date_naive();
    let batch = app
        .post_as(
            &pharm,
            &format!("/api/v1/medicines/{medicine}/batches"),
            json!({"batch_number": "B", "expiry_date": expiry, "quantity": 50}),
        )
        .await
        .str("id");
    app.post_as(
        &pharm,
        &format!("/api/v1/clinics/{clinic}/dispensings"),
        json!({"medicine_id": medicine, "quantity": 10}),
    )
    .await
    .assert_ok(201);
    app.post_as(
        &pharm,
        &format!("/api/v1/batches/{batch}/adjustments"),
        json!({"kind": "adjusted", "quantity": -2, "reason": "Broken blister"}),
    )
    .await
    .assert_ok(200);
    let stock_url = format!("/api/v1/clinics/{clinic}/reports/stock?{range}");
    for reader in [&pharm, admin] {
        let stock = app.get_as(reader, &stock_url).await;
        let stock = stock.assert_ok(200);
        let line = &stock["lines"][0];
        assert_eq!(line["on_hand"], 38, "{stock:#}");
        assert_eq!(line["cost_value_cents"], 380);
        assert_eq!(line["price_value_cents"], 950);
        assert_eq!(line["movements"]["received"], 50);
        assert_eq!(line["movements"]["dispensed"], -10);
        assert_eq!(line["movements"]["adjusted"], -2);
        assert_eq!(stock["cost_value_cents"], 380);
    }
    let csv = app
        .client
        .get(app.url(&format!("{stock_url}&format=csv")))
        .bearer_auth(&pharm)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("medicine,strength,unit,on_hand,expired_on_hand,cost_value_cents"),
        "{csv}"
    );
    assert!(
        csv.contains("Paracetamol,500 mg,tablet,38,0,380,950,EUR,50,-10,-2,0,0"),
        "{csv}"
    );
    app.get_as(&desk, &stock_url)
        .await
        .assert_problem(403, "forbidden");
    app.get_as(&other.admin, &stock_url)
        .await
        .assert_problem(403, "forbidden");
    // Movements outside the dates are not counted; the stock on hand is today's.
    let later = format!(
        "/api/v1/clinics/{clinic}/reports/stock?from={}&to={}",
        today + chrono::Duration::days(2),
        today + chrono::Duration::days(3)
    );
    let stock = app.get_as(admin, &later).await;
    assert_eq!(stock.assert_ok(200)["lines"][0]["movements"]["received"], 0);
    assert_eq!(stock.body["lines"][0]["on_hand"], 38);
}

/// A 4×2 PNG with transparency.
fn a_png_logo() -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, 4, 2);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer
        .write_image_data(&[0x0b, 0x5f, 0xff, 0x80].repeat(8))
        .unwrap();
    writer.finish().unwrap();
    bytes
}
