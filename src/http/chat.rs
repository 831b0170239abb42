//! The chat API the widget, `clinic chat` and integrators use. Replies are JSON, or a
//! server-sent event stream when the client accepts `text/event-stream`.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::header::ACCEPT;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use futures_util::StreamExt;

use crate::agent::{ChatKey, Reply};
use crate::domain::actor::Actor;
use crate::error::{Problem, Result};
use crate::http::extract::{Json, Path};
use crate::llm::{Delta, Deltas};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(message))
        .routes(routes!(confirm))
        .routes(routes!(decline))
        .routes(routes!(delete))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartChat {
    /// The user agrees that the conversation is kept (encrypted; deletable at any time).
    #[schema(schema_with = crate::domain::validate::schema::consent)]
    pub consent: bool,
    /// The user's IANA time zone, e.g. `Europe/Lisbon`; relative days are read in it.
    #[serde(default)]
    #[schema(schema_with = crate::domain::validate::schema::time_zone)]
    pub time_zone: Option<String>,
    /// The language of the user's interface (ISO 639-1, e.g. `pt`); the model answers in it
    /// where it can.
    #[serde(default)]
    #[schema(pattern = "^[a-z]{2}$")]
    pub language: Option<String>,
    /// The clinic whose site the chat is on (the widget's `data-clinic`): the agent then
    /// searches, lists and books only that clinic's doctors, in its zone and currency.
    /// Absent: the whole network.
    #[serde(default)]
    #[schema(nullable)]
    pub clinic_id: Option<uuid::Uuid>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    #[schema(schema_with = crate::domain::validate::schema::message)]
    pub text: String,
}

/// Starts a conversation (anonymous or signed in); consent is required.
#[utoipa::path(post, path = "/chat/sessions", tag = "chat", request_body = StartChat, responses(
    (status = 201, body = Reply),
    (status = 404, description = "No such active clinic (`clinic_id`)", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn start(
    State(s): State<AppState>,
    actor: Actor,
    Json(body): Json<StartChat>,
) -> Result<Response> {
    let reply = s
        .agent
        .start(
            &actor,
            body.consent,
            body.time_zone.as_deref(),
            body.language.as_deref(),
            body.clinic_id,
        )
        .await?;
    // The secret also goes back as a cookie scoped to this conversation, for clients
    // that keep cookies rather than a header (same site only).
    let secure = s
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let cookie = cookie::Cookie::build((
        SECRET_COOKIE,
        reply.session_secret.clone().unwrap_or_default(),
    ))
    .path(format!("/api/v1/chat/sessions/{}", reply.session_id))
    .http_only(true)
    .secure(secure)
    .same_site(cookie::SameSite::Strict)
    .build();
    let mut response = (StatusCode::CREATED, Json(reply)).into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&cookie.to_string()) {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, value);
    }
    Ok(response)
}

const SECRET_COOKIE: &str = "clinic_chat_secret";

/// Sends the user's message; the reply carries slot buttons and the pending proposal.
/// With `Accept: text/event-stream` the reply text streams as `token` events, then a
/// `reply` event with the whole answer.
#[utoipa::path(post, path = "/chat/sessions/{id}/messages", tag = "chat", params(("id" = Uuid, Path), ("x-chat-secret" = Option<String>, Header, description = "The session_secret the conversation started with (or its cookie); needed until a signed-in user holds the conversation")),
    request_body = ChatMessage, responses(
    (status = 200, body = Reply),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn message(
    State(s): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(body): Json<ChatMessage>,
) -> Result<Response> {
    let secret = chat_secret(&headers);
    let chat = ChatKey {
        id,
        secret: &secret,
    };
    if !wants_stream(&headers) {
        return Ok(Json(s.agent.message(&actor, chat, &body.text).await?).into_response());
    }
    // Problems with the request itself still get their status code; the turn then runs
    // in its own task and the model's text is sent as it is written.
    s.agent.check(&actor, chat, &body.text).await?;
    let (deltas, rx) = Deltas::new();
    let agent = s.agent.clone();
    let turn = tokio::spawn(async move {
        let chat = ChatKey {
            id,
            secret: &secret,
        };
        agent
            .message_streaming(&actor, chat, &body.text, Some(&deltas))
            .await
    });
    Ok(Sse::new(live(rx, turn)).into_response())
}

struct Live {
    rx: tokio::sync::mpsc::UnboundedReceiver<Delta>,
    turn: Option<tokio::task::JoinHandle<Result<Reply>>>,
    streamed: bool,
}

/// `token` events as the model writes (`reset` when an attempt broke off and the text
/// starts again), then one `reply` event with the whole answer, or an `error` event.
fn live(
    rx: tokio::sync::mpsc::UnboundedReceiver<Delta>,
    turn: tokio::task::JoinHandle<Result<Reply>>,
) -> impl futures_util::Stream<Item = std::result::Result<Event, Infallible>> {
    let state = Live {
        rx,
        turn: Some(turn),
        streamed: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        if let Some(delta) = st.rx.recv().await {
            let event = match delta {
                Delta::Text(text) => {
                    st.streamed = true;
                    Event::default().event("token").data(text)
                }
                Delta::Reset => {
                    st.streamed = false;
                    Event::default().event("reset").data("")
                }
            };
            return Some((vec![Ok(event)], st));
        }
        let turn = st.turn.take()?;
        let events = match turn.await {
            Ok(Ok(reply)) => {
                let mut events = if st.streamed {
                    Vec::new()
                } else {
                    token_events(&reply.reply)
                };
                events.push(Ok(reply_event(&reply)));
                events
            }
            Ok(Err(e)) => vec![Ok(Event::default().event("error").data(problem_json(&e)))],
            Err(e) => {
                tracing::error!(error = %e, "a chat turn panicked");
                vec![Ok(Event::default()
                    .event("error")
                    .data("{\"code\":\"internal\"}"))]
            }
        };
        Some((events, st))
    })
    .flat_map(futures_util::stream::iter)
}

fn problem_json(e: &crate::error::Error) -> String {
    serde_json::json!({"code": e.code().as_str(), "detail": e.to_string()}).to_string()
}

/// Commits the pending proposal (the widget's Confirm button). Idempotent.
#[utoipa::path(post, path = "/chat/sessions/{id}/confirm", tag = "chat", params(("id" = Uuid, Path), ("x-chat-secret" = Option<String>, Header, description = "The session_secret the conversation started with (or its cookie); needed until a signed-in user holds the conversation")), responses(
    (status = 200, body = Reply),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn confirm(
    State(s): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let secret = chat_secret(&headers);
    let chat = ChatKey {
        id,
        secret: &secret,
    };
    Ok(answer(&headers, s.agent.confirm(&actor, chat).await?))
}

/// Drops the pending proposal (the widget's Decline button).
#[utoipa::path(post, path = "/chat/sessions/{id}/decline", tag = "chat", params(("id" = Uuid, Path), ("x-chat-secret" = Option<String>, Header, description = "The session_secret the conversation started with (or its cookie); needed until a signed-in user holds the conversation")), responses(
    (status = 200, body = Reply),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn decline(
    State(s): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let secret = chat_secret(&headers);
    let chat = ChatKey {
        id,
        secret: &secret,
    };
    Ok(answer(&headers, s.agent.decline(&actor, chat).await?))
}

/// Deletes the conversation data.
#[utoipa::path(delete, path = "/chat/sessions/{id}", tag = "chat", params(("id" = Uuid, Path), ("x-chat-secret" = Option<String>, Header, description = "The session_secret the conversation started with (or its cookie); needed until a signed-in user holds the conversation")), responses(
    (status = 204, description = "deleted"),
))]
async fn delete(
    State(s): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    let secret = chat_secret(&headers);
    s.agent
        .delete(
            &actor,
            ChatKey {
                id,
                secret: &secret,
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The conversation's secret, as the client that started it sends it back: the
/// `X-Chat-Secret` header, or the cookie the start set.
fn chat_secret(headers: &HeaderMap) -> String {
    if let Some(secret) = headers.get("x-chat-secret").and_then(|v| v.to_str().ok()) {
        return secret.to_owned();
    }
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(|c| c.ok())
        .find(|c| c.name() == SECRET_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default()
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// A reply the orchestrator wrote itself (no model), as events: its text in pieces.
fn token_events(text: &str) -> Vec<std::result::Result<Event, Infallible>> {
    let mut events = Vec::new();
    let mut piece = String::new();
    for word in text.split_inclusive(' ') {
        piece.push_str(word);
        if piece.len() >= 24 {
            events.push(Ok(Event::default()
                .event("token")
                .data(std::mem::take(&mut piece))));
        }
    }
    if !piece.is_empty() {
        events.push(Ok(Event::default().event("token").data(piece)));
    }
    events
}

fn reply_event(reply: &Reply) -> Event {
    Event::default()
        .event("reply")
        .data(serde_json::to_string(reply).unwrap_or_default())
}

fn answer(headers: &HeaderMap, reply: Reply) -> Response {
    if !wants_stream(headers) {
        return Json(reply).into_response();
    }
    let mut events = token_events(&reply.reply);
    events.push(Ok(reply_event(&reply)));
    Sse::new(futures_util::stream::iter(events)).into_response()
}
