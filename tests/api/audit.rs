//! The audit chain: several replicas extend one chain, and an edited record is found.

use clinic::domain::actor::Actor;
use clinic::domain::clinics::{self, ClinicApplication};
use serde_json::json;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(two_replicas_extend_one_chain_and_an_edited_record_is_found);

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
        .map(|l| serde_json::from_str(l).unwrap())
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

fn mailer(db: &clinic::db::Db) -> clinic::notify::mail::Mailer {
    clinic::notify::mail::Mailer::new(db.clone(), "Replica <replica@clinic.localhost>", None)
        .unwrap()
}
