//! Consultation transcripts: audio sent to a Whisper-compatible server (a real HTTP server
//! started by the test, speaking the multipart `POST /v1/audio/transcriptions` wire format,
//! failures included), the transcript sealed on its record, and a record drafted from it
//! that the doctor reviews and signs.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Backend, TestApp};
use crate::model_server::{ModelServer, Reply, Step};

const TRANSCRIPT: &str = "Patient: I have had a cough and wheezing for two weeks, worse at night.\n\
Doctor: Your temperature is 37.9 and your oxygen saturation is 95.\n\
Doctor: On examination I hear wheezing in both lungs.\n\
Doctor: I'll order a chest X-ray. Take salbutamol two puffs when short of breath.\n\
Doctor: Come back in two weeks.";

/// A WAV file's first bytes: enough for the service to know it is audio.
const WAV: &[u8] = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00";

/// A request as the server got it: its content type and body.
type Seen = (String, Vec<u8>);

/// What the scripted server answers, in order (then the last one again), and what it got.
#[derive(Clone, Default)]
struct Whisper {
    script: Arc<Mutex<Vec<(u16, String)>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Whisper {
    async fn start(script: Vec<(u16, &str)>) -> (Self, String) {
        let state = Whisper {
            script: Arc::new(Mutex::new(
                script.into_iter().map(|(s, b)| (s, b.to_owned())).collect(),
            )),
            seen: Default::default(),
        };
        async fn answer(
            State(w): State<Whisper>,
            headers: HeaderMap,
            body: Bytes,
        ) -> (StatusCode, String) {
            let kind = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            w.seen.lock().unwrap().push((kind, body.to_vec()));
            let mut script = w.script.lock().unwrap();
            let (status, body) = if script.len() > 1 {
                script.remove(0)
            } else {
                script[0].clone()
            };
            (StatusCode::from_u16(status).unwrap(), body)
        }
        let app = Router::new()
            .route("/v1/audio/transcriptions", post(answer))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (state, url)
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn app_with(backend: Backend, url: &str) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[
            ("TRANSCRIBE_URL", url),
            ("LLM_BACKOFF_MIN_MS", "1"),
            ("LLM_MAX_RETRIES", "2"),
        ],
    )
    .await
}

async fn send_audio(
    app: &TestApp,
    token: &str,
    record: &str,
    bytes: &[u8],
) -> crate::helpers::Answer {
    let response = app
        .client
        .post(app.url(&format!(
            "/api/v1/records/{record}/transcript/audio?name=visit.wav"
        )))
        .bearer_auth(token)
        .header("content-type", "audio/wav")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    crate::helpers::answer(response).await
}

async fn a_recording_becomes_a_sealed_transcript_and_a_draft_the_doctor_signs(backend: Backend) {
    if backend == Backend::Postgres && Backend::postgres_url().is_none() {
        return;
    }
    let ok = json!({"text": TRANSCRIPT}).to_string();
    let (whisper, url) = Whisper::start(vec![(503, "busy"), (200, &ok)]).await;
    let app = app_with(backend, &url).await;
    let care = app.care_setup().await;
    let record = app
        .post_as(
            &care.doctor,
            &format!("/api/v1/patients/{}/records", care.patient_id),
            json!({"appointment_id": care.appointment}),
        )
        .await;
    let record = record.assert_ok(201)["id"].as_str().unwrap().to_owned();

    // Not audio, or not the patient's doctor: refused before the server hears anything.
    send_audio(&app, &care.doctor, &record, b"just some text, not audio")
        .await
        .assert_problem(415, "unsupported_media_type");
    send_audio(&app, &care.patient, &record, WAV)
        .await
        .assert_problem(403, "forbidden");
    assert!(whisper.requests().is_empty());

    // The server is busy once, then answers: the transcript is kept, both attempts recorded.
    let stored = send_audio(&app, &care.doctor, &record, WAV).await;
    let stored = stored.assert_ok(201).clone();
    assert_eq!(stored["text"], TRANSCRIPT);
    assert_eq!(stored["source"], "audio");
    assert_eq!(stored["model"], "whisper-1");
    let requests = whisper.requests();
    assert_eq!(requests.len(), 2);
    let (kind, body) = &requests[1];
    assert!(kind.starts_with("multipart/form-data; boundary="), "{kind}");
    let text = String::from_utf8_lossy(body);
    assert!(text.contains("name=\"model\""), "{text}");
    assert!(text.contains("whisper-1"));
    assert!(
        text.contains("name=\"file\"; filename=\"visit.wav\""),
        "{text}"
    );
    assert!(
        body.windows(WAV.len()).any(|w| w == WAV),
        "the audio is sent as it came"
    );
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM orchestration_calls WHERE pipeline = $1",
            "transcribe"
        )
        .await,
        2
    );
    const RAW: &str = "SELECT sealed FROM transcripts WHERE record_id = $1";
    let raw: Vec<u8> = clinic::on_db!(&app.db, |pool| sqlx::query_scalar(RAW)
        .bind(record.parse::<Uuid>().unwrap())
        .fetch_one(pool)
        .await)
    .unwrap();
    assert!(
        !String::from_utf8_lossy(&raw).contains("wheezing"),
        "sealed"
    );

    // A draft of the record from it, by the offline rules here; nothing stored.
    let draft = app
        .post_as(
            &care.doctor,
            &format!("/api/v1/records/{record}/transcript/draft"),
            json!({}),
        )
        .await;
    let draft = draft.assert_ok(200).clone();
    assert!(
        draft["chief_complaint"]
            .as_str()
            .unwrap()
            .contains("cough and wheezing"),
        "{draft:#}"
    );
    assert_eq!(draft["vitals"]["temperature_c"], 37.9);
    assert_eq!(draft["vitals"]["spo2_percent"], 95.0);
    assert!(
        draft["findings"]
            .as_str()
            .unwrap()
            .contains("wheezing in both lungs")
    );
    assert!(draft["plan"].as_str().unwrap().contains("salbutamol"));
    assert_eq!(draft["follow_up_days"], 14);
    let unchanged = app
        .get_as(&care.doctor, &format!("/api/v1/records/{record}"))
        .await;
    assert_eq!(unchanged.assert_ok(200)["chief_complaint"], "");

    // The doctor reviews it, saves it and signs; then the patient reads the transcript.
    let transcript_path = format!("/api/v1/records/{record}/transcript");
    app.get_as(&care.patient, &transcript_path)
        .await
        .assert_problem(404, "not_found");
    let mut body = draft.clone();
    body["appointment_id"] = json!(care.appointment);
    app.request(
        Method::PUT,
        &format!("/api/v1/records/{record}"),
        Some(&care.doctor),
        Some(body),
    )
    .await
    .assert_ok(200);
    app.post_as(
        &care.doctor,
        &format!("/api/v1/records/{record}/sign"),
        json!({}),
    )
    .await
    .assert_ok(200);
    let mine = app.get_as(&care.patient, &transcript_path).await;
    assert_eq!(mine.assert_ok(200)["text"], TRANSCRIPT);

    // A pasted transcript replaces it as the latest.
    app.request(
        Method::PUT,
        &transcript_path,
        Some(&care.doctor),
        Some(json!({"text": "Doctor: corrected transcript."})),
    )
    .await
    .assert_ok(201);
    let latest = app.get_as(&care.doctor, &transcript_path).await;
    assert_eq!(latest.assert_ok(200)["source"], "pasted");
    // The patient's export carries the signed visit's latest transcript.
    let export = app.get_as(&care.patient, "/api/v1/me/export").await;
    let export = export.assert_ok(200);
    assert_eq!(export["transcripts"].as_array().unwrap().len(), 1);
    assert_eq!(
        export["transcripts"][0]["text"],
        "Doctor: corrected transcript."
    );
    assert_eq!(export["transcripts"][0]["record_id"], record);
}

/// A record drafted by a model (an OpenAI-compatible server started here): an unknown
/// ICD-10 code is sent back with what is wrong and corrected; answers that stay invalid
/// after two repairs give a clear error; nothing drafted is stored either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_draft_with_an_unknown_code_is_repaired_or_refused() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if backend == Backend::Postgres && Backend::postgres_url().is_none() {
            continue;
        }
        let draft = |code: &str, temperature: f64| {
            Step::reply(Reply::text(
                &json!({"chief_complaint": "Cough and wheezing for two weeks",
                    "vitals": {"temperature_c": temperature},
                    "findings": "Wheezing in both lungs",
                    "diagnoses": [{"text": "Asthma", "code": code}],
                    "plan": "Salbutamol as needed", "follow_up_days": 14})
                .to_string(),
            ))
        };
        let server = ModelServer::start(vec![
            draft("J45.7", 37.9),
            draft("J45.9", 37.9),
            Step::reply(Reply::text("The patient has asthma.")),
            draft("J45.9", 400.0),
            draft("J45.7", 37.9),
        ])
        .await;
        let base = format!("{}/v1", server.url);
        let app = TestApp::spawn_with(
            backend,
            &[
                ("OPENAI_BASE_URL", base.as_str()),
                ("LLM_MODEL", "scripted-model"),
                ("LLM_TIMEOUT_MS", "2000"),
            ],
        )
        .await;
        let care = app.care_setup().await;
        let record = app
            .post_as(
                &care.doctor,
                &format!("/api/v1/patients/{}/records", care.patient_id),
                json!({"appointment_id": care.appointment}),
            )
            .await;
        let record = record.assert_ok(201)["id"].as_str().unwrap().to_owned();
        app.request(
            Method::PUT,
            &format!("/api/v1/records/{record}/transcript"),
            Some(&care.doctor),
            Some(json!({"text": TRANSCRIPT})),
        )
        .await
        .assert_ok(201);
        let draft_path = format!("/api/v1/records/{record}/transcript/draft");

        // J45.7 is not in the WHO list: the model is told so and answers J45.9.
        let repaired = app.post_as(&care.doctor, &draft_path, json!({})).await;
        let repaired = repaired.assert_ok(200);
        assert_eq!(repaired["diagnoses"][0]["code"], "J45.9", "{repaired:#}");
        assert_eq!(repaired["vitals"]["temperature_c"], 37.9);
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0]["messages"][1]["content"], TRANSCRIPT);
        let told = requests[1]["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            told.contains("not valid") && told.contains("J45.7"),
            "{told}"
        );

        // Prose, then 400 °C, then the unknown code again: refused after two repairs.
        let refused = app.post_as(&care.doctor, &draft_path, json!({})).await;
        refused.assert_problem(502, "extraction_failed");
        assert_eq!(server.requests().len(), 5, "one try and two repairs");
        let calls = app
            .scalar_i64_str(
                "SELECT COUNT(*) FROM orchestration_calls WHERE pipeline = $1",
                "draft_record",
            )
            .await;
        assert_eq!(calls, 5);
        // Nothing drafted was stored: the record is as the doctor left it.
        let unchanged = app
            .get_as(&care.doctor, &format!("/api/v1/records/{record}"))
            .await;
        let unchanged = unchanged.assert_ok(200);
        assert_eq!(unchanged["chief_complaint"], "");
        assert_eq!(unchanged["diagnoses"].as_array().unwrap().len(), 0);
    }
}

async fn a_refused_or_missing_transcription_server_stores_nothing(backend: Backend) {
    if backend == Backend::Postgres && Backend::postgres_url().is_none() {
        return;
    }
    // The server refuses the audio (a client error): no retry, nothing kept.
    let (whisper, url) = Whisper::start(vec![(400, "{\"error\": \"bad audio\"}")]).await;
    let app = app_with(backend, &url).await;
    let care = app.care_setup().await;
    let record = app
        .post_as(
            &care.doctor,
            &format!("/api/v1/patients/{}/records", care.patient_id),
            json!({}),
        )
        .await;
    let record = record.assert_ok(201)["id"].as_str().unwrap().to_owned();
    send_audio(&app, &care.doctor, &record, WAV)
        .await
        .assert_problem(502, "extraction_failed");
    assert_eq!(whisper.requests().len(), 1);
    const KEPT: &str = "SELECT COUNT(*) FROM transcripts WHERE patient_id = $1";
    let kept: i64 = clinic::on_db!(&app.db, |pool| sqlx::query_scalar(KEPT)
        .bind(care.patient_id)
        .fetch_one(pool)
        .await)
    .unwrap();
    assert_eq!(kept, 0);

    // Without a transcription server: a clear 503, and pasting still works.
    let plain = TestApp::spawn(backend).await;
    let care = plain.care_setup().await;
    let record = plain
        .post_as(
            &care.doctor,
            &format!("/api/v1/patients/{}/records", care.patient_id),
            json!({}),
        )
        .await;
    let record = record.assert_ok(201)["id"].as_str().unwrap().to_owned();
    send_audio(&plain, &care.doctor, &record, WAV)
        .await
        .assert_problem(503, "service_unavailable");
    plain
        .request(
            Method::PUT,
            &format!("/api/v1/records/{record}/transcript"),
            Some(&care.doctor),
            Some(json!({"text": TRANSCRIPT})),
        )
        .await
        .assert_ok(201);
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_recording_becomes_a_sealed_transcript_and_a_draft_the_doctor_signs() {
        super::a_recording_becomes_a_sealed_transcript_and_a_draft_the_doctor_signs(
            Backend::Sqlite,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_or_missing_transcription_server_stores_nothing() {
        super::a_refused_or_missing_transcription_server_stores_nothing(Backend::Sqlite).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_recording_becomes_a_sealed_transcript_and_a_draft_the_doctor_signs() {
        super::a_recording_becomes_a_sealed_transcript_and_a_draft_the_doctor_signs(
            Backend::Postgres,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_or_missing_transcription_server_stores_nothing() {
        super::a_refused_or_missing_transcription_server_stores_nothing(Backend::Postgres).await;
    }
}
