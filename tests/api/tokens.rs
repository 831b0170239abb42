//! Access tokens and rotating refresh tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::{JWT_SECRET, TestApp};
use crate::on_both_backends;

on_both_backends!(
    refresh_rotates_and_a_replayed_token_ends_the_whole_login,
    two_simultaneous_refreshes_with_one_token_share_the_new_pair,
    logout_ends_access_and_refresh,
    expired_forged_and_unsigned_tokens_are_refused,
    other_logins_survive_one_logins_revocation,
);

async fn refresh_rotates_and_a_replayed_token_ends_the_whole_login(app: TestApp) {
    app.verified_patient("ana@example.org").await;
    let first = app.login("ana@example.org").await;
    let second = app
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": first["refresh_token"]}),
        )
        .await;
    second.assert_ok(200);
    assert_ne!(second.body["refresh_token"], first["refresh_token"]);
    let third = app
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": second.body["refresh_token"]}),
        )
        .await;
    third.assert_ok(200);

    // The first token, stolen and replayed: the login is ended for everyone holding it.
    app.post(
        "/api/v1/auth/refresh",
        json!({"refresh_token": first["refresh_token"]}),
    )
    .await
    .assert_problem(401, "refresh_token_reused");
    app.post(
        "/api/v1/auth/refresh",
        json!({"refresh_token": third.body["refresh_token"]}),
    )
    .await
    .assert_problem(401, "invalid_refresh_token");
    app.get_as(third.body["access_token"].as_str().unwrap(), "/api/v1/me")
        .await
        .assert_problem(401, "invalid_token");
    let reason = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM auth_sessions WHERE revoked_reason = $1",
            "refresh_token_reused",
        )
        .await;
    assert_eq!(reason, 1);
}

/// Two tabs refreshing with one token at once (the access token lapsed in both): both get
/// the same new refresh token and the login lives on. Using the old token again after
/// that new one was used is reuse, and ends the login.
async fn two_simultaneous_refreshes_with_one_token_share_the_new_pair(app: TestApp) {
    app.verified_patient("bo@example.org").await;
    let tokens = app.login("bo@example.org").await;
    let body = json!({"refresh_token": tokens["refresh_token"]});
    let (a, b) = tokio::join!(
        app.post("/api/v1/auth/refresh", body.clone()),
        app.post("/api/v1/auth/refresh", body.clone())
    );
    a.assert_ok(200);
    b.assert_ok(200);
    assert_eq!(a.body["refresh_token"], b.body["refresh_token"]);
    for pair in [&a, &b] {
        app.get_as(pair.body["access_token"].as_str().unwrap(), "/api/v1/me")
            .await
            .assert_ok(200);
    }
    let next = app
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": a.body["refresh_token"]}),
        )
        .await;
    next.assert_ok(200);
    // The first token again, now that its successor was used: a leak.
    app.post("/api/v1/auth/refresh", body)
        .await
        .assert_problem(401, "refresh_token_reused");
    app.post(
        "/api/v1/auth/refresh",
        json!({"refresh_token": next.body["refresh_token"]}),
    )
    .await
    .assert_problem(401, "invalid_refresh_token");
}

/// Past the grace window a second use is reuse even if the new token was never used.
#[tokio::test]
async fn a_refresh_token_used_again_after_the_grace_window_ends_the_login() {
    let app = TestApp::spawn_with(
        crate::helpers::Backend::Sqlite,
        &[("REFRESH_REUSE_GRACE_SECS", "0")],
    )
    .await;
    app.verified_patient("flo@example.org").await;
    let tokens = app.login("flo@example.org").await;
    let body = json!({"refresh_token": tokens["refresh_token"]});
    let first = app.post("/api/v1/auth/refresh", body.clone()).await;
    first.assert_ok(200);
    app.post("/api/v1/auth/refresh", body)
        .await
        .assert_problem(401, "refresh_token_reused");
    app.post(
        "/api/v1/auth/refresh",
        json!({"refresh_token": first.body["refresh_token"]}),
    )
    .await
    .assert_problem(401, "invalid_refresh_token");
}

async fn logout_ends_access_and_refresh(app: TestApp) {
    app.verified_patient("cy@example.org").await;
    let tokens = app.login("cy@example.org").await;
    let access = tokens["access_token"].as_str().unwrap();
    let out = app
        .request(
            reqwest::Method::POST,
            "/api/v1/auth/logout",
            Some(access),
            None,
        )
        .await;
    assert_eq!(out.status, 204);
    app.get_as(access, "/api/v1/me")
        .await
        .assert_problem(401, "invalid_token");
    app.post(
        "/api/v1/auth/refresh",
        json!({"refresh_token": tokens["refresh_token"]}),
    )
    .await
    .assert_problem(401, "invalid_refresh_token");
    app.request(reqwest::Method::POST, "/api/v1/auth/logout", None, None)
        .await
        .assert_problem(401, "unauthenticated");
}

async fn expired_forged_and_unsigned_tokens_are_refused(app: TestApp) {
    app.verified_patient("di@example.org").await;
    let tokens = app.login("di@example.org").await;
    let access = tokens["access_token"].as_str().unwrap();
    let claims: serde_json::Value = {
        let payload = access.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    let sign = |claims: &serde_json::Value, secret: &str| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };

    let mut expired = claims.clone();
    expired["exp"] = json!(claims["iat"].as_i64().unwrap() - 60);
    app.get_as(&sign(&expired, JWT_SECRET), "/api/v1/me")
        .await
        .assert_problem(401, "token_expired");

    let forged = sign(&claims, "some-other-secret-some-other-secret-123456");
    app.get_as(&forged, "/api/v1/me")
        .await
        .assert_problem(401, "invalid_token");

    let mut other_audience = claims.clone();
    other_audience["aud"] = json!("somebody-else");
    app.get_as(&sign(&other_audience, JWT_SECRET), "/api/v1/me")
        .await
        .assert_problem(401, "invalid_token");

    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    app.get_as(&format!("{header}.{payload}."), "/api/v1/me")
        .await
        .assert_problem(401, "invalid_token");

    app.get_as("garbage", "/api/v1/me")
        .await
        .assert_problem(401, "invalid_token");
    let basic = app
        .client
        .get(app.url("/api/v1/me"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    // The genuine token still works.
    app.get_as(access, "/api/v1/me").await.assert_ok(200);
}

async fn other_logins_survive_one_logins_revocation(app: TestApp) {
    app.verified_patient("ed@example.org").await;
    let phone = app.login("ed@example.org").await;
    let laptop = app.login("ed@example.org").await;
    let renewed = app
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": phone["refresh_token"]}),
        )
        .await;
    renewed.assert_ok(200);
    app.post(
        "/api/v1/auth/refresh",
        json!({"refresh_token": renewed.body["refresh_token"]}),
    )
    .await
    .assert_ok(200);
    app.post(
        "/api/v1/auth/refresh",
        json!({"refresh_token": phone["refresh_token"]}),
    )
    .await
    .assert_problem(401, "refresh_token_reused");
    app.post(
        "/api/v1/auth/refresh",
        json!({"refresh_token": laptop["refresh_token"]}),
    )
    .await
    .assert_ok(200);
}
