//! Messages in each person's language: a patient chooses it (at registration or in their
//! notification settings) and every mail and notification to them is written in it.

use chrono::{DateTime, Utc};
use clinic::notify::language::{self, Language};
use clinic::notify::outbox::{Claimed, Message};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_patient_who_chose_portuguese_is_confirmed_in_portuguese_and_an_english_one_in_english,
    a_language_given_at_registration_writes_the_code_mail,
    an_unsupported_language_is_refused_by_name,
);

/// The notification of `kind` queued for `email`, opened as the dispatcher would.
async fn queued(app: &TestApp, email: &str, kind: &str) -> Message {
    const SQL: &str = "SELECT id, kind, channel, recipient, about, sealed, due_at, attempts FROM outbox \
        WHERE recipient = $1 AND kind = $2 AND channel = 'email'";
    let row = clinic::on_db!(&app.db, |pool| sqlx::query_as::<_, Claimed>(SQL)
        .bind(email)
        .bind(kind)
        .fetch_one(pool)
        .await)
    .unwrap_or_else(|e| panic!("no {kind} for {email}: {e}"));
    row.open(app.db.policy()).expect("the message opens")
}

/// Holds and confirms `slot` for the patient; returns the appointment and when it starts.
async fn book(app: &TestApp, token: &str, slot: &str) -> (String, DateTime<Utc>) {
    app.post_as(token, &format!("/api/v1/slots/{slot}/hold"), json!({}))
        .await
        .assert_ok(201);
    let booked = app
        .post_as(
            token,
            &format!("/api/v1/slots/{slot}/confirm"),
            json!({"reason": "check-up"}),
        )
        .await;
    let starts_at = booked.assert_ok(201)["starts_at"].as_str().unwrap();
    (booked.str("id"), starts_at.parse().unwrap())
}

async fn a_patient_who_chose_portuguese_is_confirmed_in_portuguese_and_an_english_one_in_english(
    app: TestApp,
) {
    let clinic = app.approved_clinic("Lisbon Skin", "Europe/Lisbon").await;
    let doctor = app
        .doctor_with_schedule(&clinic, "Dr. Ana Costa", TestApp::all_week(), 60)
        .await;
    let (_, ana) = app.user_with("ana@example.org", &[]).await;
    let (_, bo) = app.user_with("bo@example.org", &[]).await;

    let settings = app
        .request(
            Method::PUT,
            "/api/v1/me/notifications",
            Some(&ana),
            Some(json!({"channel": "email", "language": "pt"})),
        )
        .await;
    assert_eq!(settings.assert_ok(200)["language"], "pt");
    assert_eq!(
        app.get_as(&ana, "/api/v1/me").await.assert_ok(200)["language"],
        "pt"
    );
    assert_eq!(
        app.get_as(&bo, "/api/v1/me").await.assert_ok(200)["language"],
        "en"
    );

    // Past the clinic's cancellation cutoff (two hours), so Ana can cancel hers below.
    let slots: Vec<String> = app
        .free_slots(doctor, "limit=200")
        .await
        .iter()
        .filter(|s| {
            s["starts_at"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap()
                > Utc::now() + chrono::Duration::hours(4)
        })
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    let (ana_visit, ana_starts) = book(&app, &ana, &slots[0]).await;
    let (_, bo_starts) = book(&app, &bo, &slots[1]).await;
    let lisbon: chrono_tz::Tz = "Europe/Lisbon".parse().unwrap();

    let pt = queued(&app, "ana@example.org", "appointment_confirmation").await;
    assert_eq!(pt.subject, "A sua consulta está marcada");
    assert_eq!(
        pt.body,
        format!(
            "Olá Test Patient, a sua consulta com Dr. Ana Costa em Lisbon Skin está marcada para {}.",
            language::full_date(Language::Pt, ana_starts.with_timezone(&lisbon))
        )
    );
    let ics = pt.ics.expect("a calendar file");
    assert!(ics.contains("SUMMARY:Consulta com Dr. Ana Costa"), "{ics}");

    // English reads exactly as it always has, its date as chrono writes it.
    let en = queued(&app, "bo@example.org", "appointment_confirmation").await;
    assert_eq!(en.subject, "Your appointment is booked");
    assert_eq!(
        en.body,
        format!(
            "Hello Test Patient, your appointment with Dr. Ana Costa at Lisbon Skin is booked for {}.",
            bo_starts
                .with_timezone(&lisbon)
                .format("%A %-d %B %Y at %H:%M (%Z)")
        )
    );
    assert!(
        en.ics
            .unwrap()
            .contains("SUMMARY:Appointment with Dr. Ana Costa")
    );

    // Settings saved without a language keep the one chosen; her cancellation is in it.
    let kept = app
        .request(
            Method::PUT,
            "/api/v1/me/notifications",
            Some(&ana),
            Some(json!({"channel": "email"})),
        )
        .await;
    assert_eq!(kept.assert_ok(200)["language"], "pt");
    app.post_as(
        &ana,
        &format!("/api/v1/appointments/{ana_visit}/cancel"),
        json!({"reason": "travelling"}),
    )
    .await
    .assert_ok(200);
    let cancelled = queued(&app, "ana@example.org", "appointment_cancelled").await;
    assert_eq!(cancelled.subject, "A sua consulta foi cancelada");
}

async fn a_language_given_at_registration_writes_the_code_mail(app: TestApp) {
    app.post(
        "/api/v1/auth/register",
        json!({"email": "ines@example.org", "password": PASSWORD, "display_name": "Inês", "language": "pt"}),
    )
    .await
    .assert_ok(202);
    let (subject, body) = app.last_mail("ines@example.org").await.expect("a mail");
    assert_eq!(subject, "Confirme o seu endereço de email");
    assert!(body.starts_with("Olá Inês,"), "{body}");
    let code = app.last_code("ines@example.org").await;
    let user = app
        .post(
            "/api/v1/auth/verify-email",
            json!({"email": "ines@example.org", "code": code}),
        )
        .await;
    assert_eq!(user.assert_ok(200)["language"], "pt");

    app.post(
        "/api/v1/auth/register",
        json!({"email": "lucia@example.org", "password": PASSWORD, "display_name": "Lucía", "language": "es"}),
    )
    .await
    .assert_ok(202);
    let (subject, _) = app.last_mail("lucia@example.org").await.expect("a mail");
    assert_eq!(subject, "Verifique su dirección de correo");
}

async fn an_unsupported_language_is_refused_by_name(app: TestApp) {
    let (id, token) = app.user_with("ana@example.org", &[]).await;
    let refused = app
        .request(
            Method::PUT,
            "/api/v1/me/notifications",
            Some(&token),
            Some(json!({"channel": "email", "language": "fr"})),
        )
        .await;
    refused.assert_problem(422, "invalid_body");
    assert_eq!(
        refused.body["errors"][0]["field"], "language",
        "{:#}",
        refused.body
    );
    let message = refused.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("`en`, `pt`"), "{message}");
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM users WHERE language = 'en' AND email = $1",
            "ana@example.org"
        )
        .await,
        1,
        "nothing changed for {id}"
    );

    let registered = app
        .post(
            "/api/v1/auth/register",
            json!({"email": "jo@example.org", "password": PASSWORD, "display_name": "Jo", "language": "klingon"}),
        )
        .await;
    registered.assert_problem(422, "invalid_body");
    assert_eq!(registered.body["errors"][0]["field"], "language");
    assert_eq!(app.mail_count("jo@example.org").await, 0);

    // The database holds the rule too.
    let forced = clinic::on_db!(&app.db, |pool| sqlx::query(
        "UPDATE users SET language = 'fr' WHERE id = $1"
    )
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ()));
    assert!(forced.is_err(), "the CHECK refuses an unsupported language");
}
