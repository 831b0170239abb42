//! The API description, fuzzed: schemathesis (pinned in `tests/fuzz/requirements.txt`,
//! installed by `tests/run`) sends requests generated from `/api/v1/openapi.json` as an
//! anonymous caller, a patient and a system admin. Any 5xx, any status the description
//! does not list, or any schema-valid request refused fails the test; the refusals the
//! description cannot express are listed, each with its reason, in
//! `tests/fuzz/schemathesis.toml`. A plain `cargo test` lists it as ignored.

use std::process::Command;

use serde_json::json;

use crate::helpers::{Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs schemathesis (Python): `tests/run` installs it and runs this"]
async fn the_api_description_holds_under_schemathesis() {
    let root = env!("CARGO_MANIFEST_DIR");
    let bin = std::env::var("SCHEMATHESIS")
        .unwrap_or_else(|_| format!("{root}/target/fuzz-venv/bin/schemathesis"));
    assert!(
        std::path::Path::new(&bin).exists(),
        "{bin} is missing: `tests/run` installs schemathesis"
    );
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.with_demo().await;
    let token = |email: &'static str| {
        let app = &app;
        async move {
            let a = app
                .post(
                    "/api/v1/auth/login",
                    json!({"email": email, "password": "demo-password"}),
                )
                .await;
            a.str("access_token")
        }
    };
    let patient = token("patient@demo.clinic").await;
    let admin = token("admin@demo.clinic").await;
    let schema = app.url("/api/v1/openapi.json");
    // Signed-in runs leave the sign-in endpoints alone: the fuzzer would sign its own
    // token out (the anonymous run covers them).
    let runs = [
        ("anonymous", None),
        ("patient", Some(patient)),
        ("system admin", Some(admin)),
    ];
    for (who, token) in runs {
        let mut args: Vec<String> = [
            "--config-file",
            &format!("{root}/tests/fuzz/schemathesis.toml"),
            "run",
            &schema,
            "--checks",
            "not_a_server_error,status_code_conformance,positive_data_acceptance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "20",
            "--seed",
            "20261202",
            "--workers",
            "2",
            "--no-color",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(t) = token {
            args.extend([
                "-H".into(),
                format!("Authorization: Bearer {t}"),
                "--exclude-path-regex".into(),
                "^/api/v1/auth/".into(),
            ]);
        }
        let bin = bin.clone();
        let out = tokio::task::spawn_blocking(move || Command::new(bin).args(args).output())
            .await
            .unwrap()
            .expect("schemathesis runs");
        let report = String::from_utf8_lossy(&out.stdout);
        let tail: String = report
            .lines()
            .rev()
            .take(400)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            out.status.success(),
            "schemathesis as {who} found problems:\n{tail}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
