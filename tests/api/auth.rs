//! Registration, verification, password and passwordless sign-in, reset, lockout, limits.

use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_patient_registers_verifies_and_signs_in,
    registering_a_taken_address_reveals_nothing_and_notifies_the_owner,
    an_unverified_account_cannot_sign_in,
    wrong_passwords_lock_the_account_until_a_reset,
    a_wrong_code_is_locked_after_five_tries,
    an_expired_code_is_refused,
    passwordless_sign_in_by_mailed_code,
    a_password_reset_ends_every_login,
    unknown_addresses_get_the_same_answer_and_no_mail,
);

async fn a_patient_registers_verifies_and_signs_in(app: TestApp) {
    let r = app
        .post(
            "/api/v1/auth/register",
            json!({"email": " Ana@Example.org ", "password": PASSWORD, "display_name": "Ana"}),
        )
        .await;
    assert_eq!(r.assert_ok(202)["status"], "code_sent");
    let (subject, _) = app
        .last_mail("ana@example.org")
        .await
        .expect("verification mail");
    assert_eq!(subject, "Verify your email address");

    let code = app.last_code("ana@example.org").await;
    let user = app
        .post(
            "/api/v1/auth/verify-email",
            json!({"email": "ana@example.org", "code": code}),
        )
        .await;
    assert_eq!(user.assert_ok(200)["email_verified"], true);
    assert_eq!(user.body["roles"], json!([{"role": "patient"}]));

    // The code is single-use.
    app.post(
        "/api/v1/auth/verify-email",
        json!({"email": "ana@example.org", "code": code}),
    )
    .await
    .assert_problem(400, "invalid_code");

    let tokens = app.login("ANA@example.org").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let me = app
        .get_as(tokens["access_token"].as_str().unwrap(), "/api/v1/me")
        .await;
    assert_eq!(me.assert_ok(200)["email"], "ana@example.org");
    app.get("/api/v1/me")
        .await
        .assert_problem(401, "unauthenticated");
}

async fn registering_a_taken_address_reveals_nothing_and_notifies_the_owner(app: TestApp) {
    app.verified_patient("bo@example.org").await;
    let again = app
        .post("/api/v1/auth/register", json!({"email": "bo@example.org", "password": "another password!", "display_name": "Mallory"}))
        .await;
    assert_eq!(again.assert_ok(202)["status"], "code_sent");
    let (subject, _) = app.last_mail("bo@example.org").await.unwrap();
    assert_eq!(subject, "You already have an account");
    // The first password still works; the second registration changed nothing.
    app.login("bo@example.org").await;
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM users WHERE email = $1",
            "bo@example.org"
        )
        .await,
        1
    );
}

async fn an_unverified_account_cannot_sign_in(app: TestApp) {
    app.post(
        "/api/v1/auth/register",
        json!({"email": "cy@example.org", "password": PASSWORD, "display_name": "Cy"}),
    )
    .await
    .assert_ok(202);
    app.post(
        "/api/v1/auth/login",
        json!({"email": "cy@example.org", "password": PASSWORD}),
    )
    .await
    .assert_problem(403, "email_not_verified");
    // A new code can be asked for, and the old one stops working.
    let first = app.last_code("cy@example.org").await;
    app.post(
        "/api/v1/auth/verify-email/resend",
        json!({"email": "cy@example.org"}),
    )
    .await
    .assert_ok(202);
    let second = app.last_code("cy@example.org").await;
    if first != second {
        app.post(
            "/api/v1/auth/verify-email",
            json!({"email": "cy@example.org", "code": first}),
        )
        .await
        .assert_problem(400, "invalid_code");
    }
    app.post(
        "/api/v1/auth/verify-email",
        json!({"email": "cy@example.org", "code": second}),
    )
    .await
    .assert_ok(200);
    app.login("cy@example.org").await;
}

async fn wrong_passwords_lock_the_account_until_a_reset(app: TestApp) {
    app.verified_patient("di@example.org").await;
    for _ in 0..5 {
        app.post(
            "/api/v1/auth/login",
            json!({"email": "di@example.org", "password": "not the password"}),
        )
        .await
        .assert_problem(401, "invalid_credentials");
    }
    // Locked: even the right password is refused for now.
    let locked = app
        .post(
            "/api/v1/auth/login",
            json!({"email": "di@example.org", "password": PASSWORD}),
        )
        .await;
    locked.assert_problem(423, "account_locked");
    assert!(locked.str("detail").contains("minutes"));

    app.post(
        "/api/v1/auth/password-reset/start",
        json!({"email": "di@example.org"}),
    )
    .await
    .assert_ok(202);
    let code = app.last_code("di@example.org").await;
    let new_password = "a brand new password";
    let r = app
        .request(
            reqwest::Method::POST,
            "/api/v1/auth/password-reset",
            None,
            Some(json!({"email": "di@example.org", "code": code, "new_password": new_password})),
        )
        .await;
    assert_eq!(r.status, 204);
    let ok = app
        .post(
            "/api/v1/auth/login",
            json!({"email": "di@example.org", "password": new_password}),
        )
        .await;
    assert_eq!(ok.assert_ok(200)["status"], "authenticated");
}

async fn a_wrong_code_is_locked_after_five_tries(app: TestApp) {
    app.post(
        "/api/v1/auth/register",
        json!({"email": "ed@example.org", "password": PASSWORD, "display_name": "Ed"}),
    )
    .await
    .assert_ok(202);
    let code = app.last_code("ed@example.org").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        app.post(
            "/api/v1/auth/verify-email",
            json!({"email": "ed@example.org", "code": wrong}),
        )
        .await
        .assert_problem(400, "invalid_code");
    }
    app.post(
        "/api/v1/auth/verify-email",
        json!({"email": "ed@example.org", "code": code}),
    )
    .await
    .assert_problem(423, "code_locked");
    // A fresh code works.
    app.post(
        "/api/v1/auth/verify-email/resend",
        json!({"email": "ed@example.org"}),
    )
    .await
    .assert_ok(202);
    let fresh = app.last_code("ed@example.org").await;
    app.post(
        "/api/v1/auth/verify-email",
        json!({"email": "ed@example.org", "code": fresh}),
    )
    .await
    .assert_ok(200);
}

async fn an_expired_code_is_refused(app: TestApp) {
    app.verified_patient("fay@example.org").await;
    app.post(
        "/api/v1/auth/login/code/start",
        json!({"email": "fay@example.org"}),
    )
    .await
    .assert_ok(202);
    let code = app.last_code("fay@example.org").await;
    app.execute("UPDATE one_time_codes SET expires_at = created_at WHERE purpose = 'login'")
        .await;
    app.post(
        "/api/v1/auth/login/code",
        json!({"email": "fay@example.org", "code": code}),
    )
    .await
    .assert_problem(400, "code_expired");
}

async fn passwordless_sign_in_by_mailed_code(app: TestApp) {
    app.verified_patient("gil@example.org").await;
    app.post(
        "/api/v1/auth/login/code/start",
        json!({"email": "gil@example.org"}),
    )
    .await
    .assert_ok(202);
    let (subject, body) = app.last_mail("gil@example.org").await.unwrap();
    assert_eq!(subject, "Your sign-in code");
    assert!(body.contains("expires in 15 minutes"), "{body}");
    let code = app.last_code("gil@example.org").await;
    let signed_in = app
        .post(
            "/api/v1/auth/login/code",
            json!({"email": "gil@example.org", "code": code}),
        )
        .await;
    assert_eq!(signed_in.assert_ok(200)["status"], "authenticated");
    assert_eq!(signed_in.body["user"]["email"], "gil@example.org");
}

async fn a_password_reset_ends_every_login(app: TestApp) {
    app.verified_patient("hal@example.org").await;
    let before = app.login("hal@example.org").await;
    app.post(
        "/api/v1/auth/password-reset/start",
        json!({"email": "hal@example.org"}),
    )
    .await
    .assert_ok(202);
    let code = app.last_code("hal@example.org").await;
    // Too short a password is refused and the code stays usable.
    app.post(
        "/api/v1/auth/password-reset",
        json!({"email": "hal@example.org", "code": code, "new_password": "short"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let done = app
        .request(
            reqwest::Method::POST,
            "/api/v1/auth/password-reset",
            None,
            Some(json!({"email": "hal@example.org", "code": code, "new_password": "new password 2026"})),
        )
        .await;
    assert_eq!(done.status, 204, "{:#}", done.body);
    app.get_as(before["access_token"].as_str().unwrap(), "/api/v1/me")
        .await
        .assert_problem(401, "invalid_token");
    app.post(
        "/api/v1/auth/refresh",
        json!({"refresh_token": before["refresh_token"]}),
    )
    .await
    .assert_problem(401, "invalid_refresh_token");
    app.post(
        "/api/v1/auth/login",
        json!({"email": "hal@example.org", "password": PASSWORD}),
    )
    .await
    .assert_problem(401, "invalid_credentials");
}

async fn unknown_addresses_get_the_same_answer_and_no_mail(app: TestApp) {
    for path in [
        "/api/v1/auth/login/code/start",
        "/api/v1/auth/password-reset/start",
        "/api/v1/auth/verify-email/resend",
    ] {
        let r = app.post(path, json!({"email": "nobody@example.org"})).await;
        assert_eq!(r.assert_ok(202)["status"], "code_sent");
    }
    assert_eq!(app.mail_count("nobody@example.org").await, 0);
    app.post(
        "/api/v1/auth/login/code",
        json!({"email": "nobody@example.org", "code": "123456"}),
    )
    .await
    .assert_problem(400, "invalid_code");
    app.post(
        "/api/v1/auth/login",
        json!({"email": "nobody@example.org", "password": PASSWORD}),
    )
    .await
    .assert_problem(401, "invalid_credentials");
}

/// Runs on SQLite only: the limiter is per process and backend-independent.
#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_client() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("AUTH_RATE_LIMIT_BURST", "3"),
            ("AUTH_RATE_LIMIT_REPLENISH_MS", "60000"),
        ],
    )
    .await;
    for _ in 0..3 {
        app.post(
            "/api/v1/auth/login",
            json!({"email": "x@example.org", "password": "whatever it is"}),
        )
        .await
        .assert_problem(401, "invalid_credentials");
    }
    let limited = app
        .post(
            "/api/v1/auth/login",
            json!({"email": "x@example.org", "password": "whatever it is"}),
        )
        .await;
    limited.assert_problem(429, "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    // Code endpoints share the limit; token refresh and health do not.
    app.post(
        "/api/v1/auth/login/code/start",
        json!({"email": "x@example.org"}),
    )
    .await
    .assert_problem(429, "rate_limited");
    app.post("/api/v1/auth/refresh", json!({"refresh_token": "nope"}))
        .await
        .assert_problem(401, "invalid_refresh_token");
    app.get("/healthz").await.assert_ok(200);
}

/// Behind a trusted reverse proxy each real client has its own budget; a client talking
/// directly cannot pick its budget by forging X-Forwarded-For.
#[tokio::test]
async fn rate_limits_follow_the_client_behind_a_trusted_proxy() {
    let login = json!({"email": "x@example.org", "password": "whatever it is"});
    let send = |app: &TestApp, forwarded: &'static str| {
        let req = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", forwarded)
            .json(&login);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let limits = [
        ("AUTH_RATE_LIMIT_BURST", "1"),
        ("AUTH_RATE_LIMIT_REPLENISH_MS", "60000"),
    ];

    let proxied = TestApp::spawn_with(
        Backend::Sqlite,
        &[limits[0], limits[1], ("TRUSTED_PROXIES", "127.0.0.1")],
    )
    .await;
    assert_eq!(send(&proxied, "198.51.100.1").await, 401);
    assert_eq!(send(&proxied, "198.51.100.1").await, 429);
    assert_eq!(send(&proxied, "198.51.100.2").await, 401);

    let direct = TestApp::spawn_with(Backend::Sqlite, &limits).await;
    assert_eq!(send(&direct, "198.51.100.1").await, 401);
    assert_eq!(send(&direct, "198.51.100.2").await, 429);
}
