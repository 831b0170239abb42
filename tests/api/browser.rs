//! The web in a real browser: headless Chromium (Debian's `chromium`) driven by
//! playwright-core (`tests/e2e`). Both are installed by `tests/run`, which runs this test;
//! a plain `cargo test` lists it as ignored, with the reason. The flows are in
//! `tests/e2e/flows.mjs`; screenshots of each step go to `tests/screenshots/` (git-ignored).

use std::process::Command;

use crate::helpers::{Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and playwright-core: `tests/run` installs them and runs it"]
async fn a_patient_books_in_the_widget_an_admin_approves_and_a_doctor_writes_a_note() {
    let root = env!("CARGO_MANIFEST_DIR");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: `tests/run` installs Debian's chromium"
    );
    assert!(
        std::path::Path::new(root)
            .join("tests/e2e/node_modules/playwright-core")
            .exists(),
        "playwright-core is missing: `tests/run` installs it (npm ci --prefix tests/e2e)"
    );
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.with_demo().await;
    let base = format!("http://{}", app.addr);
    let mailbox = mailbox(app.db.clone()).await;
    let shots = format!("{root}/tests/screenshots");
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("flows.mjs")
            .current_dir(format!("{root}/tests/e2e"))
            .env("BASE_URL", &base)
            .env("MAILBOX_URL", &mailbox)
            .env("SCREENSHOTS", &shots)
            .env("CHROMIUM", &chromium)
            .output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "browser flows failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok: 40 screenshots"), "{stdout}");

    // What the browser did is in the database: the booking, the approval, the plan, the
    // signed visit record and its lab order.
    let signed = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM visit_records r JOIN lab_orders o ON o.record_id = r.id \
             WHERE r.status = 'signed' AND o.test_code = $1",
            "4548-4",
        )
        .await;
    assert_eq!(
        signed, 2,
        "the demo's check-up and the record the doctor signed, each with an HbA1c order"
    );
    // The PDF attached and the transcript pasted on that record, and the profile saved.
    let attached = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM clinical_files f JOIN visit_records r ON r.id = f.record_id \
             WHERE r.status = 'signed' AND f.media_type = $1 AND f.deleted_at IS NULL",
            "application/pdf",
        )
        .await;
    assert_eq!(attached, 1, "the PDF attached in the browser");
    let transcribed = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM transcripts WHERE source = $1",
            "pasted",
        )
        .await;
    assert!(transcribed >= 2, "the demo's transcript and the one pasted");
    let edited = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM audit WHERE action = $1",
            "profile.updated",
        )
        .await;
    assert!(
        edited >= 2,
        "the demo's profile and the one the patient saved"
    );
    let booked = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM appointments a JOIN users u ON u.id = a.patient_id WHERE u.email = $1 AND a.status = 'booked'",
            "patient@demo.clinic",
        )
        .await;
    assert_eq!(
        booked, 3,
        "the widget's booking, and at the offline desk the time the patient took online meanwhile and the one picked instead"
    );
    // The offline desk: every command applied once, audited with both times; the walk-in
    // registered there has the visit checked in offline and the one booked offline.
    let applied = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM audit WHERE action = $1",
            "sync.applied",
        )
        .await;
    assert_eq!(
        applied, 7,
        "1 + 2 online, 3 offline, the alternative picked"
    );
    let walk_in = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM appointments a JOIN users u ON u.id = a.patient_id WHERE u.display_name = $1 \
             AND a.status IN ('booked', 'checked_in')",
            "Wanda Walkin",
        )
        .await;
    assert_eq!(walk_in, 2);
    let registered = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM appointments a JOIN users u ON u.id = a.patient_id WHERE u.email = $1 AND a.status = 'booked'",
            "nova@example.org",
        )
        .await;
    assert_eq!(
        registered, 1,
        "the patient who registered in the widget booked"
    );
    let approved = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM audit WHERE action = $1",
            "clinic.approved",
        )
        .await;
    assert!(
        approved >= 4,
        "three demo clinics and the one approved in the browser"
    );
    let plans = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM care_plans WHERE status = $1",
            "superseded",
        )
        .await;
    assert_eq!(
        plans, 3,
        "the demo's note superseded its visit's prescriptions plan, the doctor's new note the demo's, and the prescriptions of the record signed in the browser that note"
    );
}

/// Stands in for the patient's inbox: `GET /code/{email}` answers the 6-digit code in the
/// last mail to that address (the service keeps mail in its outbox without SMTP).
async fn mailbox(db: clinic::db::Db) -> String {
    use axum::extract::{Path, State};
    async fn code(State(db): State<clinic::db::Db>, Path(email): Path<String>) -> String {
        const SQL: &str = "SELECT body FROM mail_outbox WHERE recipient = $1 ORDER BY created_at DESC, id DESC LIMIT 1";
        let body: Option<(String,)> = clinic::on_db!(&db, |pool| sqlx::query_as(SQL)
            .bind(&email)
            .fetch_optional(pool)
            .await)
        .unwrap_or(None);
        body.and_then(|(b,)| {
            b.split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .map(str::to_owned)
        })
        .unwrap_or_default()
    }
    let app = axum::Router::new()
        .route("/code/{email}", axum::routing::get(code))
        .with_state(db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}
