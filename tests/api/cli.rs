//! The `clinic` binary as an operator runs it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_clinic");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `clinic serve` with no configuration at all (just a free port) creates its SQLite
/// database in WAL mode, serves, logs JSON, and stops cleanly on SIGTERM.
#[tokio::test]
async fn serve_runs_with_no_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CLINIC_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ready = false;
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            ready = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the server did not become ready");
    let db = dir.path().join("data/clinic.db");
    assert!(db.exists(), "no database at {}", db.display());
    assert!(
        dir.path().join("data/clinic.db-wal").exists(),
        "SQLite is not in WAL mode"
    );
    assert!(dir.path().join("data/jwt.secret").exists());

    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    let first = log.lines().next().expect("a log line");
    let line: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("not JSON ({e}): {first}"));
    assert!(
        line["timestamp"].is_string() && line["level"].is_string(),
        "{line}"
    );
    assert!(log.contains("shutting down"), "{log}");
}

#[tokio::test]
async fn create_admin_makes_a_system_admin_who_can_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("ARGON2_MEMORY_KIB", "64")
            .env("ARGON2_ITERATIONS", "1")
            .output()
            .unwrap()
    };
    let migrate = run(&["migrate"]);
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let out = run(&["create-admin", "--email", "Root@Clinic.test"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("system admin root@clinic.test"), "{stdout}");
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("a generated password")
        .to_owned();
    assert!(password.len() >= 20);

    // The printed password signs in, and the account is a system admin.
    clinic::install_crypto_provider();
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let config =
        clinic::config::Config::from_lookup(|k| (k == "CLINIC_DATA_DIR").then(|| data.clone()))
            .unwrap();
    let state = clinic::state::AppState::build(config).await.unwrap();
    match state
        .identity
        .login("root@clinic.test", &password)
        .await
        .unwrap()
    {
        clinic::domain::identity::LoginOutcome::Authenticated(pair) => {
            assert!(
                pair.user
                    .roles
                    .iter()
                    .any(|g| g.role == clinic::domain::actor::Role::SystemAdmin)
            );
            assert!(pair.user.email_verified);
        }
        other => panic!("{other:?}"),
    }
    state.db.close().await;

    let bad = run(&["create-admin", "--email", "not-an-email"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("email"));

    // Running it again for the same address keeps one account and sets the new password.
    let again = run(&[
        "create-admin",
        "--email",
        "root@clinic.test",
        "--password",
        "another long password",
    ]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(!String::from_utf8_lossy(&again.stdout).contains("password:"));
}

/// `clinic demo-data` loads three clinics in three zones, twenty-seven doctors with slots, a
/// pending application and sign-in-ready accounts, prints them, and loads nothing twice.
#[tokio::test]
async fn demo_data_loads_once_and_its_accounts_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(BIN)
            .arg("demo-data")
            .current_dir(dir.path())
            .env_clear()
            .env("ARGON2_MEMORY_KIB", "64")
            .env("ARGON2_ITERATIONS", "1")
            .output()
            .unwrap()
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains("demo data loaded: 3 clinics, 27 doctors"),
        "{stdout}"
    );
    assert!(stdout.contains("patient@demo.clinic"), "{stdout}");
    assert!(
        stdout.contains("password for all: demo-password"),
        "{stdout}"
    );
    let again = run();
    assert!(String::from_utf8_lossy(&again.stdout).contains("already loaded"));

    clinic::install_crypto_provider();
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let config =
        clinic::config::Config::from_lookup(|k| (k == "CLINIC_DATA_DIR").then(|| data.clone()))
            .unwrap();
    let state = clinic::state::AppState::build(config).await.unwrap();
    let db = &state.db;
    let clinics = clinic::domain::clinics::list(db, None, None).await.unwrap();
    let mut zones: Vec<&str> = clinics.iter().map(|c| c.time_zone.name()).collect();
    zones.sort_unstable();
    assert_eq!(
        zones,
        ["America/New_York", "Europe/Berlin", "Europe/Lisbon"]
    );
    let doctors = clinic::domain::clinics::doctors::browse(db, &Default::default())
        .await
        .unwrap();
    assert_eq!(doctors.len(), 27);
    let pending = clinic::domain::clinics::list_requests(
        db,
        &clinic::domain::actor::Actor::System,
        Some("pending"),
    )
    .await
    .unwrap();
    assert_eq!(pending.len(), 1);
    let slots = clinic::domain::scheduling::slots::free_for_doctor(
        db,
        doctors[0].id,
        &Default::default(),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert!(!slots.is_empty(), "demo doctors have free slots soon");
    for email in [
        "patient@demo.clinic",
        "admin@demo.clinic",
        "doctor@demo.clinic",
    ] {
        let outcome = state.identity.login(email, "demo-password").await.unwrap();
        assert!(
            matches!(
                outcome,
                clinic::domain::identity::LoginOutcome::Authenticated(_)
            ),
            "{email}: {outcome:?}"
        );
    }
    // The submit-notes flow: the demo patient has a plan from Dr. Ana Costa's note.
    let (patient,): (uuid::Uuid,) = clinic::on_db!(db, |pool| sqlx::query_as(
        "SELECT id FROM users WHERE email = 'patient@demo.clinic'"
    )
    .fetch_one(pool)
    .await)
    .unwrap();
    let me = clinic::domain::actor::Actor::User(clinic::domain::actor::Principal {
        user_id: patient,
        session_id: uuid::Uuid::nil(),
        email: "patient@demo.clinic".into(),
        grants: vec![clinic::domain::actor::Grant::global(
            clinic::domain::actor::Role::Patient,
        )],
    });
    let steps = clinic::domain::care::care_plans::actionable_steps(db, &me, patient)
        .await
        .unwrap();
    assert_eq!(steps.plans.len(), 1);
    assert_eq!(steps.plans[0].doctor_name, "Dr. Ana Costa");
    assert_eq!(steps.plans[0].plan.len(), 2);
    assert_eq!(steps.plans[0].checklist.len(), 2);
    assert!(!steps.upcoming.is_empty());
    state.db.close().await;
}

/// `clinic chat` books a demo appointment from the terminal with the offline assistant.
#[test]
fn clinic_chat_books_from_the_terminal() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], input: &str| {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("ARGON2_MEMORY_KIB", "64")
            .env("ARGON2_ITERATIONS", "1")
            .env("CLINIC_CHAT_PASSWORD", "demo-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(run(&["demo-data"], "").status.success());
    let out = run(
        &[
            "chat",
            "--email",
            "patient@demo.clinic",
            "--time-zone",
            "Europe/Lisbon",
        ],
        "I need a dermatologist next week\n/pick 1\n/confirm\n/quit\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[Offline assistant]"), "{stdout}");
    assert!(stdout.contains("/pick 1"), "{stdout}");
    assert!(stdout.contains("Booked:"), "{stdout}");
    // The session and the audit trail were written under the working directory.
    assert!(dir.path().join("logs/audit.log").exists());
    assert!(
        std::fs::read_dir(dir.path().join("sessions"))
            .unwrap()
            .count()
            >= 1
    );
}

/// `clinic extract-plan FILE` prints the checklist and plan of a note (offline model),
/// and a clear error for an empty one.
#[test]
fn extract_plan_prints_the_checklist_and_plan_of_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let note = dir.path().join("note.txt");
    std::fs::write(
        &note,
        "Take amoxicillin 500 mg twice daily for 7 days.\nBuy a thermometer. Book a follow-up in 3 weeks.",
    )
    .unwrap();
    let run = |file: &std::path::Path| {
        Command::new(BIN)
            .arg("extract-plan")
            .arg(file)
            .current_dir(dir.path())
            .env_clear()
            .output()
            .unwrap()
    };
    let out = run(&note);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["plan"][0]["action"], "Take amoxicillin 500 mg");
    assert_eq!(printed["plan"][0]["times_per_day"], 2);
    assert_eq!(printed["plan"][0]["duration_days"], 7);
    assert_eq!(printed["checklist"][1]["due_in_days"], 21);
    // The call is in the orchestration log.
    let log = std::fs::read_to_string(dir.path().join("logs/orchestration.log")).unwrap();
    assert!(log.contains("\"pipeline\":\"extract\""), "{log}");

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "  \n").unwrap();
    let out = run(&empty);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 to 20000 characters"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let missing = run(&dir.path().join("nope.txt"));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.txt"));
}
