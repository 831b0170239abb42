//! Second factors: TOTP with recovery codes, and mailed codes.

use serde_json::json;
use totp_rs::{Algorithm, Builder, Secret};

use crate::helpers::{PASSWORD, TestApp};
use crate::on_both_backends;

on_both_backends!(
    totp_guards_sign_in_and_recovery_codes_work_once,
    mailed_second_factor,
    passwordless_sign_in_still_asks_for_totp
);

fn totp_code(secret: &str, at: u64) -> String {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(at)
        .to_string()
}

fn now() -> u64 {
    chrono::Utc::now().timestamp() as u64
}

async fn enable_totp(app: &TestApp, email: &str) -> (String, Vec<String>) {
    let token = app.access_token(email).await;
    let setup = app
        .post_as(&token, "/api/v1/auth/mfa/totp/setup", json!({}))
        .await;
    let secret = setup.assert_ok(200)["secret"].as_str().unwrap().to_owned();
    assert!(setup.str("otpauth_url").starts_with("otpauth://totp/"));
    app.post_as(
        &token,
        "/api/v1/auth/mfa/totp/enable",
        json!({"code": "000000x"}),
    )
    .await
    .assert_problem(400, "invalid_code");
    let enabled = app
        .post_as(
            &token,
            "/api/v1/auth/mfa/totp/enable",
            json!({"code": totp_code(&secret, now())}),
        )
        .await;
    let codes: Vec<String> = enabled.assert_ok(200)["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn start_login(app: &TestApp, email: &str) -> serde_json::Value {
    let r = app
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.assert_ok(200)["status"], "mfa_required", "{:#}", r.body);
    assert!(r.body.get("access_token").is_none());
    r.body
}

async fn totp_guards_sign_in_and_recovery_codes_work_once(app: TestApp) {
    app.verified_patient("ana@example.org").await;
    let (secret, recovery) = enable_totp(&app, "ana@example.org").await;
    let (token, used) = app.access_token_after_mfa("ana@example.org", &secret).await;
    let me = app.get_as(&token, "/api/v1/me").await;
    assert_eq!(me.assert_ok(200)["mfa_method"], "totp");

    // A wrong TOTP code, then a replay of an accepted one, are refused.
    let challenge = start_login(&app, "ana@example.org").await;
    app.post(
        "/api/v1/auth/login/mfa",
        json!({"mfa_token": challenge["mfa_token"], "code": "123456"}),
    )
    .await
    .assert_problem(400, "invalid_code");
    app.post(
        "/api/v1/auth/login/mfa",
        json!({"mfa_token": challenge["mfa_token"], "code": used}),
    )
    .await
    .assert_problem(400, "invalid_code");

    // A recovery code signs in once.
    let challenge = start_login(&app, "ana@example.org").await;
    let ok = app
        .post(
            "/api/v1/auth/login/mfa",
            json!({"mfa_token": challenge["mfa_token"], "code": recovery[0]}),
        )
        .await;
    assert_eq!(ok.assert_ok(200)["status"], "authenticated");
    app.post(
        "/api/v1/auth/login/mfa",
        json!({"mfa_token": challenge["mfa_token"], "code": recovery[1]}),
    )
    .await
    .assert_problem(401, "invalid_mfa_challenge");
    let challenge = start_login(&app, "ana@example.org").await;
    app.post(
        "/api/v1/auth/login/mfa",
        json!({"mfa_token": challenge["mfa_token"], "code": recovery[0]}),
    )
    .await
    .assert_problem(400, "invalid_code");

    // Turning it off needs the password.
    let token = ok.str("access_token");
    app.post_as(
        &token,
        "/api/v1/auth/mfa/disable",
        json!({"password": "wrong password!"}),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    let off = app
        .request(
            reqwest::Method::POST,
            "/api/v1/auth/mfa/disable",
            Some(&token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(off.status, 204);
    assert_eq!(
        app.login("ana@example.org").await["status"],
        "authenticated"
    );
}

async fn mailed_second_factor(app: TestApp) {
    app.verified_patient("bo@example.org").await;
    let token = app.access_token("bo@example.org").await;
    let on = app
        .request(
            reqwest::Method::POST,
            "/api/v1/auth/mfa/email/enable",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(on.status, 204);
    app.request(
        reqwest::Method::POST,
        "/api/v1/auth/mfa/email/enable",
        Some(&token),
        None,
    )
    .await
    .assert_problem(409, "mfa_already_enabled");

    let challenge = start_login(&app, "bo@example.org").await;
    assert_eq!(challenge["method"], "email");
    let code = app.last_code("bo@example.org").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    app.post(
        "/api/v1/auth/login/mfa",
        json!({"mfa_token": challenge["mfa_token"], "code": wrong}),
    )
    .await
    .assert_problem(400, "invalid_code");
    let ok = app
        .post(
            "/api/v1/auth/login/mfa",
            json!({"mfa_token": challenge["mfa_token"], "code": code}),
        )
        .await;
    assert_eq!(ok.assert_ok(200)["status"], "authenticated");
    // The challenge is spent.
    app.post(
        "/api/v1/auth/login/mfa",
        json!({"mfa_token": challenge["mfa_token"], "code": code}),
    )
    .await
    .assert_problem(401, "invalid_mfa_challenge");
    app.post(
        "/api/v1/auth/login/mfa",
        json!({"mfa_token": "made-up", "code": code}),
    )
    .await
    .assert_problem(401, "invalid_mfa_challenge");
}

async fn passwordless_sign_in_still_asks_for_totp(app: TestApp) {
    app.verified_patient("cy@example.org").await;
    let (secret, _) = enable_totp(&app, "cy@example.org").await;
    app.post(
        "/api/v1/auth/login/code/start",
        json!({"email": "cy@example.org"}),
    )
    .await
    .assert_ok(202);
    let code = app.last_code("cy@example.org").await;
    let step = app
        .post(
            "/api/v1/auth/login/code",
            json!({"email": "cy@example.org", "code": code}),
        )
        .await;
    assert_eq!(step.assert_ok(200)["status"], "mfa_required");
    let ok = app
        .post(
            "/api/v1/auth/login/mfa",
            json!({"mfa_token": step.body["mfa_token"], "code": totp_code(&secret, now() + 30)}),
        )
        .await;
    assert_eq!(ok.assert_ok(200)["status"], "authenticated");
}

impl TestApp {
    /// Signs in through the TOTP step with the code of the next time step.
    async fn access_token_after_mfa(&self, email: &str, secret: &str) -> (String, String) {
        let challenge = start_login(self, email).await;
        assert_eq!(challenge["method"], "totp");
        let code = totp_code(secret, now() + 30);
        let ok = self
            .post(
                "/api/v1/auth/login/mfa",
                json!({"mfa_token": challenge["mfa_token"], "code": code}),
            )
            .await;
        assert_eq!(ok.assert_ok(200)["status"], "authenticated");
        (ok.str("access_token"), code)
    }
}
