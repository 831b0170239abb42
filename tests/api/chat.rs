//! The booking agent over the chat API with the offline assistant: the patient scenarios
//! (through `clinic eval`), consent, confirmation rules, idempotent commits and sealed
//! sessions.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_chat_needs_consent_and_its_data_can_be_deleted,
    a_double_confirmation_books_once_and_a_decline_frees_the_hold,
    a_session_belongs_to_the_user_who_signed_in,
    a_doctor_gets_a_care_plan_from_a_note_and_a_patient_does_not,
    a_patient_reads_their_own_results_and_prescriptions_in_the_chat,
    a_chat_on_a_clinics_site_searches_and_books_only_that_clinic,
    typing_a_listed_number_picks_that_time,
    a_patient_checks_in_a_due_reminder_in_the_chat_after_confirming,
    naming_the_doctor_picks_which_visit_to_move,
);

impl TestApp {
    pub async fn with_demo(&self) {
        clinic::demo::load(&self.state).await.expect("demo data");
    }

    pub async fn chat_start(&self, token: Option<&str>) -> String {
        let a = self
            .request(
                Method::POST,
                "/api/v1/chat/sessions",
                token,
                Some(json!({"consent": true, "time_zone": "Europe/Lisbon"})),
            )
            .await;
        a.assert_ok(201);
        a.str("session_id")
    }

    /// Sends a message asking for the reply as a server-sent event stream.
    pub async fn say_streaming(&self, session: &str, text: &str) -> reqwest::Response {
        let path = format!("/api/v1/chat/sessions/{session}/messages");
        self.client
            .post(self.url(&path))
            .header("x-chat-secret", self.chat_secret(&path).unwrap_or_default())
            .header("accept", "text/event-stream")
            .json(&json!({"text": text}))
            .send()
            .await
            .unwrap()
    }

    pub async fn say(&self, token: Option<&str>, session: &str, text: &str) -> Answer {
        self.request(
            Method::POST,
            &format!("/api/v1/chat/sessions/{session}/messages"),
            token,
            Some(json!({"text": text})),
        )
        .await
    }

    pub async fn appointments_of(&self, token: &str) -> Vec<Value> {
        let a = self.get_as(token, "/api/v1/appointments/mine").await;
        a.assert_ok(200).as_array().unwrap().clone()
    }
}

async fn a_chat_needs_consent_and_its_data_can_be_deleted(app: TestApp) {
    app.post("/api/v1/chat/sessions", json!({"consent": false}))
        .await
        .assert_problem(422, "consent_required");
    app.post("/api/v1/chat/sessions", json!({}))
        .await
        .assert_problem(422, "invalid_body");
    let session = app.chat_start(None).await;
    let reply = app
        .say(None, &session, "I have a very itchy rash on my elbow")
        .await;
    assert_eq!(reply.assert_ok(200)["assistant"], "Offline assistant");
    // The context is on disk, sealed: the words are not in the file.
    let file = app.data_dir().join(format!("sessions/{session}.session"));
    let raw = std::fs::read(&file).expect("a session file");
    assert!(
        !raw.windows(5).any(|w| w == b"itchy"),
        "the session file holds plaintext"
    );
    // No model is configured: the offline assistant needs no model call, so none is logged.
    let log = std::fs::read_to_string(app.data_dir().join("logs/orchestration.log")).unwrap();
    assert!(
        !log.lines().any(|l| l.contains("\"event\":\"attempt\"")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("\"event\":\"context_saved\"")),
        "{log}"
    );

    let deleted = app
        .request(
            Method::DELETE,
            &format!("/api/v1/chat/sessions/{session}"),
            None,
            None,
        )
        .await;
    assert_eq!(deleted.status.as_u16(), 204);
    assert!(!file.exists());
    app.say(None, &session, "hello again")
        .await
        .assert_problem(404, "not_found");
    app.say(None, "not-a-uuid", "hello")
        .await
        .assert_problem(400, "invalid_path");
    let long = "a".repeat(2001);
    let session = app.chat_start(None).await;
    app.say(None, &session, &long)
        .await
        .assert_problem(422, "validation_failed");
}

async fn a_double_confirmation_books_once_and_a_decline_frees_the_hold(app: TestApp) {
    app.with_demo().await;
    app.verified_patient("pia@example.org").await;
    let token = app.access_token("pia@example.org").await;
    let session = app.chat_start(Some(&token)).await;
    let listed = app
        .say(
            Some(&token),
            &session,
            "I need a dermatologist, any day next week",
        )
        .await;
    let picks: Vec<Value> = listed.assert_ok(200)["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "pick_slot")
        .cloned()
        .collect();
    assert!(picks.len() >= 2, "{:#}", listed.body);

    // Pick, then decline: the hold is let go, nothing is booked.
    let proposed = app
        .say(
            Some(&token),
            &session,
            picks[0]["message"].as_str().unwrap(),
        )
        .await;
    assert_eq!(
        proposed.assert_ok(200)["pending"]["kind"],
        "book",
        "{:#}",
        proposed.body
    );
    let declined = app
        .request(
            Method::POST,
            &format!("/api/v1/chat/sessions/{session}/decline"),
            Some(&token),
            None,
        )
        .await;
    assert!(declined.assert_ok(200)["pending"].is_null());
    assert_eq!(
        app.scalar_i64_str("SELECT COUNT(*) FROM slots WHERE status = $1", "held")
            .await,
        0,
        "the declined hold was let go"
    );
    assert!(app.appointments_of(&token).await.is_empty());

    // Pick again; the Confirm button pressed twice (and a "yes" after) books once.
    let proposed = app
        .say(
            Some(&token),
            &session,
            picks[1]["message"].as_str().unwrap(),
        )
        .await;
    assert_eq!(proposed.assert_ok(200)["pending"]["kind"], "book");
    let confirm = format!("/api/v1/chat/sessions/{session}/confirm");
    let (a, b) = tokio::join!(
        app.request(Method::POST, &confirm, Some(&token), None),
        app.request(Method::POST, &confirm, Some(&token), None),
    );
    let statuses = [a.status.as_u16(), b.status.as_u16()];
    assert!(
        statuses.contains(&200),
        "{statuses:?} {:#} {:#}",
        a.body,
        b.body
    );
    let booked = app.appointments_of(&token).await;
    assert_eq!(booked.len(), 1, "{booked:#?}");
    assert_eq!(booked[0]["slot_id"], picks[1]["slot_id"]);
    let again = app.say(Some(&token), &session, "yes").await;
    assert!(again.assert_ok(200)["committed"].is_null());
    assert_eq!(app.appointments_of(&token).await.len(), 1);
    app.request(Method::POST, &confirm, Some(&token), None)
        .await
        .assert_problem(409, "nothing_pending");
}

async fn a_session_belongs_to_the_user_who_signed_in(app: TestApp) {
    app.with_demo().await;
    app.verified_patient("una@example.org").await;
    app.verified_patient("eve@example.org").await;
    let una = app.access_token("una@example.org").await;
    let eve = app.access_token("eve@example.org").await;
    // Started anonymously, it becomes Una's when she sends a message signed in.
    let session = app.chat_start(None).await;
    app.say(Some(&una), &session, "what appointments do I have?")
        .await
        .assert_ok(200);
    app.say(Some(&eve), &session, "what did she say?")
        .await
        .assert_problem(404, "not_found");
    app.say(None, &session, "hello")
        .await
        .assert_problem(404, "not_found");
    app.request(
        Method::DELETE,
        &format!("/api/v1/chat/sessions/{session}"),
        Some(&eve),
        None,
    )
    .await;
    app.say(Some(&una), &session, "hello").await.assert_ok(200);
}

/// With `SESSION_STORE=database` (replicas), contexts live sealed in `chat_sessions`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_can_live_in_the_database_for_replicas() {
    let backend = if crate::helpers::Backend::postgres_url().is_some() {
        crate::helpers::Backend::Postgres
    } else {
        crate::helpers::Backend::Sqlite
    };
    let app = TestApp::spawn_with(backend, &[("SESSION_STORE", "database")]).await;
    let session = app.chat_start(None).await;
    app.say(None, &session, "my itchy elbow")
        .await
        .assert_ok(200);
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM chat_sessions WHERE sealed IS NOT NULL AND $1 <> ''",
            "x"
        )
        .await,
        1
    );
    // A second replica (another pool, same database and key) continues the conversation.
    let other = app.replica().await;
    let (sealed,): (Vec<u8>,) = clinic::on_db!(&other, |pool| sqlx::query_as(
        "SELECT sealed FROM chat_sessions"
    )
    .fetch_one(pool)
    .await)
    .unwrap();
    assert!(!sealed.windows(5).any(|w| w == b"itchy"));
    assert!(
        !app.data_dir()
            .join(format!("sessions/{session}.session"))
            .exists()
    );
    app.say(None, &session, "I need a dermatologist")
        .await
        .assert_ok(200);
    other.close().await;
}

/// `Accept: text/event-stream` gets the reply as server-sent events: text pieces, then the
/// whole reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_stream_as_server_sent_events() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let session = app.chat_start(None).await;
    let res = app
        .say_streaming(&session, "Do I have diabetes? I am thirsty all the time")
        .await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = res.text().await.unwrap();
    let mut text = String::new();
    let mut whole: Option<Value> = None;
    for (kind, data) in crate::helpers::sse_events(&body) {
        match kind.as_str() {
            "token" => text.push_str(&data),
            "reply" => whole = Some(serde_json::from_str(&data).unwrap()),
            other => panic!("unexpected event {other:?}"),
        }
    }
    let whole = whole.expect("a final reply event");
    assert_eq!(whole["reply"].as_str().unwrap(), text);
    assert!(text.contains("Endocrinology"), "{text}");
}

/// A long chat with a tool-calling model keeps what goes to the model within
/// AGENT_TOKEN_BUDGET: the oldest turns are folded into a summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_conversation_stays_within_the_token_budget() {
    use crate::model_server::{ModelServer, Reply, Step};
    let answer = "Dermatology can help; there are free times that day, pick one above. ".repeat(6);
    let server =
        ModelServer::start((0..7).map(|_| Step::reply(Reply::text(&answer))).collect()).await;
    let base = format!("{}/v1", server.url);
    let app = TestApp::spawn_with(
        crate::helpers::Backend::Sqlite,
        &[
            ("AGENT_TOKEN_BUDGET", "400"),
            ("OPENAI_BASE_URL", base.as_str()),
            ("LLM_MODEL", "scripted-model"),
            ("LLM_MODE", "tools"),
        ],
    )
    .await;
    app.with_demo().await;
    let session = app.chat_start(None).await;
    for day in [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "next monday",
        "next tuesday",
    ] {
        app.say(None, &session, &format!("I need a dermatologist on {day}"))
            .await
            .assert_ok(200);
    }
    let log = std::fs::read_to_string(app.data_dir().join("logs/orchestration.log")).unwrap();
    let starts: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "pipeline_start")
        .collect();
    let most = starts
        .iter()
        .map(|e| e["messages"].as_u64().unwrap())
        .max()
        .unwrap();
    let last = starts.last().unwrap()["messages"].as_u64().unwrap();
    assert!(
        last < 10,
        "the history sent was trimmed: {last} messages (at most {most})"
    );
    assert_eq!(starts.len(), 7);
    assert!(
        starts
            .iter()
            .all(|e| e["tokens_full_history"].as_u64().unwrap() > 0)
    );
}

async fn a_doctor_gets_a_care_plan_from_a_note_and_a_patient_does_not(app: TestApp) {
    app.with_demo().await;
    let login = app
        .post(
            "/api/v1/auth/login",
            json!({"email": "doctor@demo.clinic", "password": "demo-password"}),
        )
        .await;
    let doctor = login.str("access_token");
    let note = "Care plan: Take amoxicillin 500 mg twice daily for 7 days. Buy a thermometer. Book a follow-up in 3 weeks.";
    let session = app.chat_start(Some(&doctor)).await;
    let reply = app.say(Some(&doctor), &session, note).await;
    let text = reply.assert_ok(200)["reply"].as_str().unwrap().to_owned();
    assert!(
        text.contains("Plan: Take amoxicillin 500 mg, 2 times a day for 7 days"),
        "{text}"
    );
    assert!(text.contains("To do: Buy a thermometer"), "{text}");
    assert!(
        text.contains("To do: Book a follow-up (in 21 days)"),
        "{text}"
    );

    app.verified_patient("curious@example.org").await;
    let patient = app.access_token("curious@example.org").await;
    let session = app.chat_start(Some(&patient)).await;
    let refused = app.say(Some(&patient), &session, note).await;
    let text = refused.assert_ok(200)["reply"].as_str().unwrap().to_owned();
    assert!(text.contains("Only doctors"), "{text}");
}

async fn a_patient_reads_their_own_results_and_prescriptions_in_the_chat(app: TestApp) {
    app.with_demo().await;
    let reply_to = |a: &Answer| a.assert_ok(200)["reply"].as_str().unwrap().to_owned();

    // Nobody signed in: nothing private is read; the reply offers to log in.
    let session = app.chat_start(None).await;
    let anonymous = app
        .say(None, &session, "what were my last lab results?")
        .await;
    let text = reply_to(&anonymous);
    assert!(text.contains("log in"), "{text}");
    assert!(!text.contains("LDL"), "{text}");
    assert!(
        anonymous.body["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "log_in"),
        "{:#}",
        anonymous.body
    );

    // The demo patient: reviewed values with their ranges and flags, in their language.
    let login = app
        .post(
            "/api/v1/auth/login",
            json!({"email": clinic::demo::PATIENT, "password": clinic::demo::PASSWORD}),
        )
        .await;
    let token = login.str("access_token");
    let session = app.chat_start(Some(&token)).await;
    let text = reply_to(
        &app.say(Some(&token), &session, "what were my last lab results?")
            .await,
    );
    assert!(
        text.contains("LDL cholesterol (calculated): 162 mg/dL (high; ≤ 130)"),
        "{text}"
    );
    assert!(
        text.contains("Hemoglobin A1c: 5.4 % (normal; 4 – 5.6)"),
        "{text}"
    );
    assert!(text.contains("your doctor can tell you"), "{text}");
    let text = reply_to(
        &app.say(
            Some(&token),
            &session,
            "Quais são os resultados dos meus exames?",
        )
        .await,
    );
    assert!(text.contains("162 mg/dL (alto"), "{text}");
    let text = reply_to(
        &app.say(Some(&token), &session, "what did the doctor prescribe?")
            .await,
    );
    assert!(text.contains("cetirizine 10 mg, once a day"), "{text}");
    assert!(text.contains("hydrocortisone 1% cream"), "{text}");
    // And their care plan: what the signed visit's prescriptions became, with reminders.
    let text = reply_to(
        &app.say(Some(&token), &session, "what is my care plan?")
            .await,
    );
    assert!(text.contains("Your care plan (from Dr."), "{text}");
    assert!(text.contains("cetirizine 10 mg, once a day"), "{text}");
    assert!(text.contains("Next reminders:"), "{text}");
    // What they owe, from their issued invoices: the rash visit's 84.60 less 20.00 paid.
    let text = reply_to(&app.say(Some(&token), &session, "what do I owe?").await);
    assert!(text.contains("You owe 64.60 EUR"), "{text}");
    assert!(text.contains("64.60 EUR to pay"), "{text}");
    assert!(text.contains("paid"), "{text}");
    let text = reply_to(&app.say(Some(&token), &session, "Quanto devo?").await);
    assert!(text.contains("Tem 64.60 EUR por pagar"), "{text}");
    // What a visit costs, from the price list, then an offer to look for times.
    let text = reply_to(
        &app.say(Some(&token), &session, "how much is a dermatology visit?")
            .await,
    );
    assert!(
        text.contains("A consultation in Dermatology costs:"),
        "{text}"
    );
    assert!(text.contains(" EUR"), "{text}");
    assert!(text.contains("look for free times"), "{text}");
    // The reads were the patient's own, audited like the REST ones.
    let me = app
        .get_as(&token, "/api/v1/me")
        .await
        .str("id")
        .parse()
        .unwrap();
    const READS: &str = "SELECT COUNT(*) FROM audit WHERE action = 'lab.read' AND actor_id = $1";
    assert!(app.count(READS, me).await >= 2);

    // A patient with no record hears so, and never someone else's values.
    app.verified_patient("new@example.org").await;
    let other = app.access_token("new@example.org").await;
    let session = app.chat_start(Some(&other)).await;
    let text = reply_to(
        &app.say(Some(&other), &session, "show me my lab results")
            .await,
    );
    assert!(text.contains("no lab results yet"), "{text}");
    assert!(!text.contains("162"), "{text}");
    let text = reply_to(&app.say(Some(&other), &session, "my prescriptions").await);
    assert!(text.contains("no prescriptions"), "{text}");
    let text = reply_to(
        &app.say(Some(&other), &session, "what is my care plan?")
            .await,
    );
    assert!(text.contains("no care plan in force"), "{text}");
    let text = reply_to(&app.say(Some(&other), &session, "do I owe anything?").await);
    assert!(text.contains("no invoices"), "{text}");
    assert!(!text.contains("64.60"), "{text}");
    // Nobody signed in is asked to log in.
    let anonymous = app.chat_start(None).await;
    let text = reply_to(&app.say(None, &anonymous, "what do I owe?").await);
    assert!(text.contains("log in"), "{text}");
}

/// The slot buttons of a reply.
fn picks(a: &Answer) -> Vec<Value> {
    a.assert_ok(200)["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "pick_slot")
        .cloned()
        .collect()
}

async fn a_chat_on_a_clinics_site_searches_and_books_only_that_clinic(app: TestApp) {
    app.with_demo().await;
    const CLINIC: &str = "SELECT id FROM clinics WHERE name = $1";
    let brooklyn: uuid::Uuid = clinic::on_db!(&app.db, |pool| sqlx::query_scalar(CLINIC)
        .bind("Brooklyn Family Health")
        .fetch_one(pool)
        .await)
    .unwrap();
    app.verified_patient("nyc@example.org").await;
    let token = app.access_token("nyc@example.org").await;
    let start = |clinic: Option<uuid::Uuid>| {
        let token = token.clone();
        let app = &app;
        async move {
            let mut body = json!({"consent": true, "time_zone": "Europe/Lisbon"});
            if let Some(c) = clinic {
                body["clinic_id"] = json!(c);
            }
            app.request(
                Method::POST,
                "/api/v1/chat/sessions",
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    let ask = "I have an itchy rash on my arm and need a dermatologist";

    // A free time at another clinic (Lisbon), two days or more ahead.
    const ELSEWHERE: &str = "SELECT s.id FROM slots s JOIN clinics c ON c.id = s.clinic_id \
        WHERE c.name = $1 AND s.status = 'open' AND s.starts_at > $2 ORDER BY s.starts_at LIMIT 1";
    let elsewhere: uuid::Uuid = clinic::on_db!(&app.db, |pool| sqlx::query_scalar(ELSEWHERE)
        .bind("Lisbon Central Clinic")
        .bind(chrono::Utc::now() + chrono::Duration::days(2))
        .fetch_one(pool)
        .await)
    .unwrap();

    // On Brooklyn's site: only Brooklyn's dermatologist, priced in dollars, and a time
    // from another clinic cannot be held from this chat.
    let on_site = start(Some(brooklyn)).await.str("session_id");
    let listed = app.say(Some(&token), &on_site, ask).await;
    let offered = picks(&listed);
    assert!(!offered.is_empty(), "{:#}", listed.body);
    for p in &offered {
        let label = p["label"].as_str().unwrap();
        assert!(
            label.contains("Dr. Maya Patel · Brooklyn Family Health"),
            "{label}"
        );
    }
    let text = listed.body["reply"].as_str().unwrap();
    assert!(text.contains("USD") && !text.contains("EUR"), "{text}");
    let refused = app
        .say(
            Some(&token),
            &on_site,
            &format!("Book slot {elsewhere} (a time in Lisbon)"),
        )
        .await;
    assert!(
        refused.assert_ok(200)["pending"].is_null(),
        "{:#}",
        refused.body
    );
    const HELD: &str = "SELECT COUNT(*) FROM slots WHERE id = $1 AND status <> 'open'";
    let held: i64 = clinic::on_db!(&app.db, |pool| sqlx::query_scalar(HELD)
        .bind(elsewhere)
        .fetch_one(pool)
        .await)
    .unwrap();
    assert_eq!(held, 0, "the other clinic's time stays free");
    // Its own times are held as usual.
    let proposed = app
        .say(
            Some(&token),
            &on_site,
            offered[0]["message"].as_str().unwrap(),
        )
        .await;
    assert_eq!(
        proposed.assert_ok(200)["pending"]["kind"],
        "book",
        "{:#}",
        proposed.body
    );

    // An unknown or suspended clinic starts no chat.
    start(Some(uuid::Uuid::now_v7()))
        .await
        .assert_problem(404, "not_found");
}

async fn typing_a_listed_number_picks_that_time(app: TestApp) {
    app.with_demo().await;
    app.verified_patient("one@example.org").await;
    let token = app.access_token("one@example.org").await;
    let session = app.chat_start(Some(&token)).await;
    let listed = app
        .say(Some(&token), &session, "I need a dermatologist next week")
        .await;
    let offered = picks(&listed);
    assert!(offered.len() >= 2, "{:#}", listed.body);
    for typed in ["2", " 2. ", "#2"] {
        let proposed = app.say(Some(&token), &session, typed).await;
        let proposed = proposed.assert_ok(200);
        assert_eq!(
            proposed["pending"]["kind"], "book",
            "{typed:?}: {proposed:#}"
        );
        assert!(
            proposed["pending"]["summary"].as_str().unwrap().contains(
                offered[1]["label"]
                    .as_str()
                    .unwrap()
                    .split(" · ")
                    .nth(1)
                    .unwrap()
            ),
            "{proposed:#}"
        );
        app.request(
            Method::POST,
            &format!("/api/v1/chat/sessions/{session}/decline"),
            Some(&token),
            None,
        )
        .await
        .assert_ok(200);
        // The same times are offered again after a decline.
        app.say(Some(&token), &session, "I need a dermatologist next week")
            .await
            .assert_ok(200);
    }
}

async fn a_patient_checks_in_a_due_reminder_in_the_chat_after_confirming(app: TestApp) {
    let care = app.care_setup().await;
    app.submit_note(&care, "Take amoxicillin 500 mg twice daily for 7 days.")
        .await
        .assert_ok(201);
    // Every reminder days ahead (a reminder counts as due from two hours before its time,
    // which would make this test depend on the hour it runs).
    const LATER: &str = "UPDATE reminders SET due_at = $2 WHERE patient_id = $1";
    clinic::on_db!(&app.db, |pool| sqlx::query(LATER)
        .bind(care.patient_id)
        .bind(chrono::Utc::now() + chrono::Duration::days(3))
        .execute(pool)
        .await
        .map(|_| ()))
    .unwrap();
    let session = app.chat_start(Some(&care.patient)).await;
    // Nothing is due yet.
    let text = app
        .say(Some(&care.patient), &session, "I took it")
        .await
        .assert_ok(200)["reply"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains("Nothing in your care plan is due"), "{text}");

    // The first reminder falls due.
    let first = app.first_reminder_due(care.patient_id, 20).await;
    const STATUS: &str = "SELECT status FROM reminders WHERE id = $1";
    let status = || async {
        clinic::on_db!(&app.db, |pool| sqlx::query_scalar::<_, String>(STATUS)
            .bind(first)
            .fetch_one(pool)
            .await)
        .unwrap()
    };
    let asked = app
        .say(
            Some(&care.patient),
            &session,
            "did I take my medicine today?",
        )
        .await;
    let text = asked.assert_ok(200)["reply"].as_str().unwrap().to_owned();
    assert!(text.contains("Due now: Take amoxicillin 500 mg"), "{text}");

    // "I took it" proposes; nothing changes until the patient confirms.
    let proposed = app
        .say(Some(&care.patient), &session, "I've taken my medicine")
        .await;
    let proposed = proposed.assert_ok(200);
    assert_eq!(proposed["pending"]["kind"], "check_in", "{proposed:#}");
    assert!(
        proposed["pending"]["summary"]
            .as_str()
            .unwrap()
            .contains("Take amoxicillin 500 mg"),
        "{proposed:#}"
    );
    assert_eq!(status().await, "scheduled");
    let done = app.say(Some(&care.patient), &session, "yes").await;
    let text = done.assert_ok(200)["reply"].as_str().unwrap().to_owned();
    assert!(
        text.contains("Checked in: Take amoxicillin 500 mg"),
        "{text}"
    );
    assert_eq!(status().await, "done");
    let text = app
        .say(
            Some(&care.patient),
            &session,
            "did I take my medicine today?",
        )
        .await
        .assert_ok(200)["reply"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains("Done today: Take amoxicillin 500 mg"),
        "{text}"
    );
    // Nothing more is due; a stranger's chat never checks anything in.
    let text = app
        .say(Some(&care.patient), &session, "I took it")
        .await
        .assert_ok(200)["reply"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains("Nothing in your care plan is due"), "{text}");
}

/// `clinic eval` runs every conversation in `tests/scenarios/` through the HTTP API with
/// the offline assistant, and fails under 100 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes_with_the_offline_assistant_through_clinic_eval() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let count = std::fs::read_dir(&scenarios)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count();
    assert!(count >= 50, "{count} scenarios");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_clinic"))
        .arg("eval")
        .arg("--scenarios")
        .arg(&scenarios)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "off")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("passed: {count}/{count} (100.0 %)")),
        "{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

/// With several visits, "move my appointment with Dr. Mota" moves that one: the agent asks
/// for the new day instead of listing them all again.
async fn naming_the_doctor_picks_which_visit_to_move(app: TestApp) {
    let clinic = app.approved_clinic("Two Doctors", "Europe/Lisbon").await;
    let lobo = app
        .doctor_with_schedule(&clinic, "Dr. Beatriz Lobo", TestApp::all_week(), 0)
        .await;
    let mota = app
        .doctor_with_schedule(&clinic, "Dr. Carlos Mota", TestApp::all_week(), 0)
        .await;
    let (_, token) = app.user_with("two@example.org", &[]).await;
    for doctor in [lobo, mota] {
        let slot = app.free_slots(doctor, "").await[40]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.post_as(&token, &format!("/api/v1/slots/{slot}/hold"), json!({}))
            .await
            .assert_ok(201);
        app.post_as(&token, &format!("/api/v1/slots/{slot}/confirm"), json!({}))
            .await
            .assert_ok(201);
    }
    let session = app.chat_start(Some(&token)).await;
    let listed = app
        .say(
            Some(&token),
            &session,
            "I want to reschedule my appointment",
        )
        .await;
    let text = listed.assert_ok(200)["reply"].as_str().unwrap().to_owned();
    assert!(text.contains("Lobo") && text.contains("Mota"), "{text}");
    let session = app.chat_start(Some(&token)).await;
    let named = app
        .say(
            Some(&token),
            &session,
            "I want to move my appointment with Dr. Mota",
        )
        .await;
    let text = named.assert_ok(200)["reply"].as_str().unwrap().to_owned();
    assert!(text.contains("Mota") && !text.contains("Lobo"), "{text}");
    assert!(!text.contains("Say its number"), "{text}");
}
