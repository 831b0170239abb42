//! The audit chain: several replicas extend one chain, and an edited record is found.

use clinic::domain::actor::Actor;
use clinic::domain::clinics::{self, ClinicApplication};
use serde_json::json;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    two_replicas_extend_one_chain_and_an_edited_record_is_found,
    a_shortened_or_rewritten_chain_no_longer_matches_its_signed_checkpoints,
    sign_ins_failures_lockouts_and_revocations_are_audited,
    writers_at_once_with_any_text_keep_one_intact_chain,
);

fn application(n: usize) -> ClinicApplication {
    ClinicApplication {
        name: format!("Replica Clinic {n}"),
        address: "1 Main Street".into(),
        time_zone: "Europe/Lisbon".into(),
        contact_name: "Admin".into(),
        contact_email: format!("admin{n}@example.org"),
        contact_phone: "+351 210 000 000".into(),
        specialties: vec!["dermatology".into()],
    }
}

async fn two_replicas_extend_one_chain_and_an_edited_record_is_found(app: TestApp) {
    let root = app.root().await;
    let other = app.replica().await;
    // Writes alternate between this app (over HTTP) and a second replica's pool, so each
    // one's idea of the chain's tail is regularly stale.
    for n in 0..4 {
        let request = app
            .post(
                "/api/v1/clinic-requests",
                json!({"name": format!("Http Clinic {n}"), "address": "2 Main Street", "time_zone": "Europe/Berlin",
                       "contact_name": "Admin", "contact_email": format!("http{n}@example.org"),
                       "contact_phone": "+49 30 000000", "specialties": ["cardiology"]}),
            )
            .await;
        let id = request.assert_ok(201)["id"].as_str().unwrap().to_owned();
        app.post_as(
            &root,
            &format!("/api/v1/admin/clinic-requests/{id}/approve"),
            json!({}),
        )
        .await
        .assert_ok(200);
        let applied = clinics::apply(&other, &Actor::System, application(n))
            .await
            .unwrap();
        clinics::reject(
            &other,
            &mailer(&other),
            &Actor::System,
            applied.id,
            "not today",
        )
        .await
        .unwrap();
    }
    let chain = app.get_as(&root, "/api/v1/admin/audit/verify").await;
    assert_eq!(chain.assert_ok(200)["intact"], true, "{:#}", chain.body);
    let records = chain.body["records"].as_i64().unwrap();
    assert!(records >= 12, "{records}");
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(DISTINCT seq) FROM audit WHERE action <> $1",
            ""
        )
        .await,
        records
    );

    // This replica mirrored its records to logs/audit.log, each as in the database.
    let log = std::fs::read_to_string(app.data_dir().join("logs/audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l.get("checkpoint").is_none())
        .collect();
    assert!(lines.len() >= 8, "{}", lines.len());
    for line in &lines {
        let seq = line["seq"].as_i64().unwrap();
        const SQL: &str = "SELECT hash FROM audit WHERE seq = $1";
        let (hash,): (String,) = clinic::on_db!(&app.db, |pool| sqlx::query_as(SQL)
            .bind(seq)
            .fetch_one(pool)
            .await)
        .unwrap();
        assert_eq!(line["hash"], hash.as_str());
    }

    // Someone edits a record in the database: the chain says where.
    app.execute("UPDATE audit SET details = '{\"reason\":\"approved after all\"}' WHERE seq = 5")
        .await;
    let chain = app.get_as(&root, "/api/v1/admin/audit/verify").await;
    assert_eq!(chain.assert_ok(200)["intact"], false);
    assert_eq!(chain.body["first_broken_seq"], 5);
    other.close().await;
}

async fn writers_at_once_with_any_text_keep_one_intact_chain(app: TestApp) {
    let root = app.root().await;
    // The reason is kept in the record's details: accents, quotes, a backslash, an emoji
    // and SQL are hashed byte for byte the same wherever the chain is linked.
    const REASON: &str = "Não hoje — «lotado» 😷 \"x\" \\ '; DROP TABLE audit; --";
    let writers: Vec<_> = (0..16)
        .map(|n| {
            let db = app.db.clone();
            tokio::spawn(async move {
                let applied = clinics::apply(&db, &Actor::System, application(100 + n)).await?;
                clinics::reject(&db, &mailer(&db), &Actor::System, applied.id, REASON).await
            })
        })
        .collect();
    // Records written alone (as the assistant's are) share commits; each caller returns
    // once its own is committed.
    let alone: Vec<_> = (0..40)
        .map(|n| {
            let db = app.db.clone();
            tokio::spawn(async move {
                clinic::domain::audit::record_alone(
                    &db,
                    None,
                    clinic::domain::audit::Entry {
                        action: "test.alone",
                        subject: format!("test:{n}"),
                        clinic_id: None,
                        details: json!({"n": n, "text": REASON}),
                    },
                )
                .await
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    for (n, writer) in alone.into_iter().enumerate() {
        writer.await.unwrap().unwrap();
        let found = app
            .scalar_i64_str(
                "SELECT COUNT(*) FROM audit WHERE action = 'test.alone' AND subject = $1",
                &format!("test:{n}"),
            )
            .await;
        assert_eq!(found, 1, "record {n} committed when its writer returned");
    }
    let chain = app.get_as(&root, "/api/v1/admin/audit/verify").await;
    assert_eq!(chain.assert_ok(200)["intact"], true, "{:#}", chain.body);
    let records = chain.body["records"].as_i64().unwrap();
    assert!(records >= 72, "{records}");
    let (rows, last): (i64, i64) = clinic::on_db!(&app.db, |pool| sqlx::query_as(
        "SELECT COUNT(*), MAX(seq) FROM audit"
    )
    .fetch_one(pool)
    .await)
    .unwrap();
    assert_eq!(
        (rows, last),
        (records, records),
        "one record per place, no gaps"
    );

    // Each rejection is in the log once, with its place in the chain as the database has it.
    let log = std::fs::read_to_string(app.data_dir().join("logs/audit.log")).unwrap();
    let rejections: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["action"] == "clinic_request.rejected")
        .collect();
    assert_eq!(rejections.len(), 16);
    for line in &rejections {
        assert_eq!(line["details"]["reason"], REASON);
        const SQL: &str = "SELECT prev_hash, hash, details FROM audit WHERE seq = $1";
        let (prev, hash, details): (String, String, String) =
            clinic::on_db!(&app.db, |pool| sqlx::query_as(SQL)
                .bind(line["seq"].as_i64().unwrap())
                .fetch_one(pool)
                .await)
            .unwrap();
        assert_eq!(
            (line["prev_hash"].as_str(), line["hash"].as_str()),
            (Some(prev.as_str()), Some(hash.as_str()))
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&details).unwrap(),
            line["details"]
        );
    }
}

fn mailer(db: &clinic::db::Db) -> clinic::notify::mail::Mailer {
    clinic::notify::mail::Mailer::new(db.clone(), "Replica <replica@clinic.localhost>", None)
        .unwrap()
}

/// The chain hash, as an attacker with the database (but not the data key) recomputes it.
fn rehash(prev: &str, r: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let at: chrono::DateTime<chrono::Utc> = serde_json::from_value(r["at"].clone()).unwrap();
    for part in [
        prev.to_owned(),
        r["seq"].as_i64().unwrap().to_string(),
        r["id"].as_str().unwrap().to_owned(),
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        r["actor_id"].as_str().unwrap_or_default().to_owned(),
        r["action"].as_str().unwrap().to_owned(),
        r["subject"].as_str().unwrap().to_owned(),
        r["clinic_id"].as_str().unwrap_or_default().to_owned(),
        r["details"].as_str().unwrap().to_owned(),
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes an audit row's details and hashes as `r` has them, as someone with the database can.
async fn overwrite(app: &TestApp, r: &serde_json::Value) {
    const SQL: &str = "UPDATE audit SET details = $2, prev_hash = $3, hash = $4 WHERE seq = $1";
    clinic::on_db!(&app.db, |pool| sqlx::query(SQL)
        .bind(r["seq"].as_i64().unwrap())
        .bind(r["details"].as_str().unwrap())
        .bind(r["prev_hash"].as_str().unwrap())
        .bind(r["hash"].as_str().unwrap())
        .execute(pool)
        .await
        .map(|_| ()))
    .unwrap();
}

async fn a_shortened_or_rewritten_chain_no_longer_matches_its_signed_checkpoints(app: TestApp) {
    let root = app.root().await;
    for n in 0..3 {
        app.approved_clinic(&format!("Chain Clinic {n}"), "Europe/Lisbon")
            .await;
    }
    let verify = || async { app.get_as(&root, "/api/v1/admin/audit/verify").await };
    let report = verify().await;
    assert_eq!(report.assert_ok(200)["intact"], true, "{:#}", report.body);
    assert!(report.body["checkpoints"].as_i64().unwrap() > 5);
    let records = report.body["records"].as_i64().unwrap();

    // Someone with the database rewrites a record and recomputes every later hash: the
    // chain itself holds, the checkpoints do not.
    let all = app.get_as(&root, "/api/v1/admin/audit?limit=500").await;
    let mut rows: Vec<serde_json::Value> = all.assert_ok(200).as_array().unwrap().clone();
    rows.sort_by_key(|r| r["seq"].as_i64().unwrap());
    let target = rows.len() / 2;
    rows[target]["details"] = json!("{\"note\":\"nothing happened\"}");
    let mut prev = rows[target]["prev_hash"].as_str().unwrap().to_owned();
    for r in rows.iter_mut().skip(target) {
        r["prev_hash"] = json!(prev);
        let hash = rehash(&prev, r);
        r["hash"] = json!(hash);
        prev = hash;
    }
    let originals = all.body.as_array().unwrap().clone();
    for r in rows.iter().skip(target) {
        overwrite(&app, r).await;
    }
    let report = verify().await;
    assert_eq!(report.assert_ok(200)["intact"], false, "{:#}", report.body);
    let problem = report.body["problem"].as_str().unwrap();
    assert!(problem.contains("rewritten"), "{problem}");
    assert!(
        report.body["first_broken_seq"].as_i64().unwrap() >= rows[target]["seq"].as_i64().unwrap()
    );

    // Put it back, then delete the last records: the checkpoints say they existed.
    for r in &originals {
        overwrite(&app, r).await;
    }
    assert_eq!(verify().await.body["intact"], true);
    const CUT: &str = "DELETE FROM audit WHERE seq > $1";
    let keep = records - 3;
    clinic::on_db!(&app.db, |pool| sqlx::query(CUT)
        .bind(keep)
        .execute(pool)
        .await
        .map(|_| ()))
    .unwrap();
    let report = verify().await;
    assert_eq!(report.assert_ok(200)["intact"], false, "{:#}", report.body);
    let problem = report.body["problem"].as_str().unwrap();
    assert!(problem.contains("deleted"), "{problem}");
    assert_eq!(report.body["first_broken_seq"], keep + 1);
}

async fn sign_ins_failures_lockouts_and_revocations_are_audited(app: TestApp) {
    app.verified_patient("au@example.org").await;
    let tokens = app.login("au@example.org").await;
    for _ in 0..5 {
        app.post(
            "/api/v1/auth/login",
            json!({"email": "au@example.org", "password": "wrong password!"}),
        )
        .await;
    }
    app.post(
        "/api/v1/auth/login",
        json!({"email": "ghost@example.org", "password": "wrong password!"}),
    )
    .await;
    app.post_as(
        tokens["access_token"].as_str().unwrap(),
        "/api/v1/auth/logout",
        json!({}),
    )
    .await;
    for (action, at_least) in [
        ("auth.signed_in", 1),
        ("auth.sign_in_failed", 6),
        ("auth.locked", 1),
        ("auth.session_revoked", 1),
    ] {
        let n = app
            .scalar_i64_str("SELECT COUNT(*) FROM audit WHERE action = $1", action)
            .await;
        assert!(n >= at_least, "{action}: {n}");
    }
    // An address without an account is recorded by a digest, never as typed.
    let typed = app
        .scalar_i64_str(
            "SELECT COUNT(*) FROM audit WHERE subject LIKE $1",
            "%ghost%",
        )
        .await;
    assert_eq!(typed, 0);
}
