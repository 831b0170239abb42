//! The background jobs as types: each run reports rows done and failed, and one bad row
//! never stops the rest of a batch.

use chrono::Utc;
use clinic::jobs::{self, Batch};
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    one_doctors_unreadable_schedule_does_not_stop_the_others_slots_being_extended,
    a_job_with_nothing_to_do_reports_nothing_done,
);

async fn later_slots(app: &TestApp, doctor: Uuid) -> i64 {
    let after = Utc::now() + chrono::Duration::days(7);
    clinic::on_db!(&app.db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM slots WHERE doctor_id = $1 AND starts_at > $2"
    )
    .bind(doctor)
    .bind(after)
    .fetch_one(pool)
    .await)
    .unwrap()
}

async fn one_doctors_unreadable_schedule_does_not_stop_the_others_slots_being_extended(
    app: TestApp,
) {
    let clinic = app.approved_clinic("Harbour Clinic", "Europe/Lisbon").await;
    let broken = app
        .doctor_with_schedule(&clinic, "Dr Broken", TestApp::all_week(), 0)
        .await;
    let fine = app
        .doctor_with_schedule(&clinic, "Dr Fine", TestApp::all_week(), 0)
        .await;
    // The first doctor's rules can no longer be read; the second lost their later slots.
    clinic::on_db!(&app.db, |pool| sqlx::query(
        "UPDATE schedules SET rules = '\"not rules\"' WHERE doctor_id = $1"
    )
    .bind(broken)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    let after = Utc::now() + chrono::Duration::days(7);
    clinic::on_db!(&app.db, |pool| sqlx::query(
        "DELETE FROM slots WHERE doctor_id = $1 AND starts_at > $2"
    )
    .bind(fine)
    .bind(after)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    assert_eq!(later_slots(&app, fine).await, 0);

    let batch = jobs::run(&jobs::ExtendSlots, &app.db, Utc::now())
        .await
        .expect("the job runs despite one bad row");
    assert_eq!(batch.failed, 1, "the unreadable schedule, logged");
    let restored = later_slots(&app, fine).await;
    assert!(
        restored > 0,
        "the other doctor's slots reach the horizon again"
    );
    assert_eq!(
        batch.done,
        u64::try_from(restored).unwrap(),
        "slots created"
    );
}

async fn a_job_with_nothing_to_do_reports_nothing_done(app: TestApp) {
    for job in jobs::all(app.state.files.clone()) {
        let batch = jobs::run(job.as_ref(), &app.db, Utc::now()).await.unwrap();
        assert_eq!(batch, Batch::default(), "{}", job.name());
    }
}
