//! Bad requests get a clear 4xx problem+json and leave nothing half-written.

use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};
use crate::on_both_backends;

on_both_backends!(
    malformed_bodies_are_named_and_nothing_is_written,
    field_rules_are_reported_per_field
);

async fn malformed_bodies_are_named_and_nothing_is_written(app: TestApp) {
    let register = "/api/v1/auth/register";
    app.post_raw(register, "{not json")
        .await
        .assert_problem(400, "malformed_json");
    app.post_raw(register, "")
        .await
        .assert_problem(400, "malformed_json");
    let typed = app
        .post(
            register,
            json!({"email": 5, "password": PASSWORD, "display_name": "X"}),
        )
        .await;
    typed.assert_problem(422, "invalid_body");
    assert_eq!(
        typed.body["errors"][0]["field"], "email",
        "{:#}",
        typed.body
    );
    let unknown = app
        .post(register, json!({"email": "a@example.org", "password": PASSWORD, "display_name": "X", "role": "system_admin"}))
        .await;
    unknown.assert_problem(422, "invalid_body");
    assert!(
        unknown.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field"),
        "{:#}",
        unknown.body
    );
    app.post(register, json!({"email": "a@example.org"}))
        .await
        .assert_problem(422, "invalid_body");

    let no_type = app
        .client
        .post(app.url(register))
        .body(r#"{"email":"a@example.org"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(no_type.status(), 400);

    let huge = json!({"email": "a@example.org", "password": PASSWORD, "display_name": "x".repeat(100_000)});
    app.post(register, huge)
        .await
        .assert_problem(413, "payload_too_large");

    app.get("/api/v1/admin/users/not-a-uuid/roles")
        .await
        .assert_problem(405, "method_not_allowed");
    let bad_path = app
        .request(
            reqwest::Method::POST,
            "/api/v1/admin/users/not-a-uuid/deactivate",
            None,
            None,
        )
        .await;
    bad_path.assert_problem(400, "invalid_path");
    app.get("/api/v1/nothing-here")
        .await
        .assert_problem(404, "not_found");

    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM users WHERE email = $1",
            "a@example.org"
        )
        .await,
        0
    );
    assert_eq!(app.mail_count("a@example.org").await, 0);
}

async fn field_rules_are_reported_per_field(app: TestApp) {
    let r = app
        .post(
            "/api/v1/auth/register",
            json!({"email": "not-an-email", "password": "short", "display_name": "y".repeat(101)}),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "password", "display_name"]);

    let long_email = format!("{}@example.org", "a".repeat(250));
    app.post(
        "/api/v1/auth/register",
        json!({"email": long_email, "password": PASSWORD, "display_name": "Z"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(
        "/api/v1/auth/register",
        json!({"email": "ctl@example.org", "password": PASSWORD, "display_name": "bad\u{0}name"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(
        "/api/v1/auth/login",
        json!({"email": "x".repeat(10_000), "password": PASSWORD}),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    app.post(
        "/api/v1/auth/password-reset/start",
        json!({"email": "nope"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post("/api/v1/auth/refresh", json!({"refresh_token": ""}))
        .await
        .assert_problem(401, "invalid_refresh_token");
    assert_eq!(
        app.scalar_i64_str("SELECT COUNT(*) FROM users WHERE email <> $1", "")
            .await,
        0
    );
}
