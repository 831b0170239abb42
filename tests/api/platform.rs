//! Health, readiness, request ids and the API description.

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(health_and_readiness_report_the_backend);

async fn health_and_readiness_report_the_backend(app: TestApp) {
    assert_eq!(app.get("/healthz").await.assert_ok(200)["status"], "ok");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.assert_ok(200)["status"], "ready");
    let backend = match app.backend {
        crate::helpers::Backend::Sqlite => "sqlite",
        crate::helpers::Backend::Postgres => "postgres",
    };
    assert_eq!(ready.body["database"], backend);
    app.db.close().await;
    app.get("/readyz")
        .await
        .assert_problem(503, "service_unavailable");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let r = app.get("/healthz").await;
    let id = r.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "{id}");
    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_the_docs_work_offline() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let doc = app.get("/api/v1/openapi.json").await;
    let doc = doc.assert_ok(200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/verify-email",
        "/api/v1/auth/login",
        "/api/v1/auth/login/mfa",
        "/api/v1/auth/login/code",
        "/api/v1/auth/password-reset",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/mfa/totp/setup",
        "/api/v1/me",
        "/api/v1/admin/users",
        "/api/v1/admin/users/{id}/roles",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());

    let page = app
        .client
        .get(app.url("/api/v1/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "the docs page loads something remote"
    );
    let init = app
        .client
        .get(app.url("/api/v1/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    let init = init.text().await.unwrap();
    assert!(init.contains("/api/v1/openapi.json"), "{init}");
    let bundle = app
        .client
        .get(app.url("/api/v1/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(
        bundle.content_length().unwrap_or(0) > 100_000
            || bundle.bytes().await.unwrap().len() > 100_000
    );
}

/// A large load does not leave its write-ahead log behind: SQLite cuts it back after each
/// checkpoint.
#[tokio::test]
async fn sqlite_keeps_its_write_ahead_log_bounded() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let clinic::db::Pool::Sqlite(pool) = app.db.pool() else {
        unreachable!("a SQLite app");
    };
    let limit: i64 = sqlx::query_scalar("PRAGMA journal_size_limit")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(limit, clinic::db::SQLITE_WAL_LIMIT);
}

/// PostgreSQL chooses per prepared statement between a plan for its values and one plan
/// for any values (its default), whatever the server's own setting: the hot queries' plans
/// for any values are checked to read through indexes (`domain::query_plans`).
#[tokio::test]
async fn postgres_chooses_per_statement_between_plans_for_its_values_and_for_any() {
    if crate::helpers::Backend::postgres_url().is_none() {
        eprintln!("TEST_DATABASE_URL is not set; PostgreSQL run skipped");
        return;
    }
    let app = TestApp::spawn(crate::helpers::Backend::Postgres).await;
    let clinic::db::Pool::Postgres(pool) = app.db.pool() else {
        unreachable!("a PostgreSQL app");
    };
    let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode, "auto");
}
