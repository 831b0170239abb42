//! A real HTTP server, started by a test, that speaks the OpenAI chat-completions wire
//! format (server-sent event streams with tool calls) and the Ollama chat API, and
//! answers from a per-test script. It records every request it receives.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::Response;
use axum::routing::post;
use serde_json::{Value, json};

/// What the scripted model answers: text, or tool calls as (name, raw arguments).
#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub content: String,
    pub calls: Vec<(String, String)>,
}

impl Reply {
    pub fn text(text: &str) -> Self {
        Self {
            content: text.into(),
            calls: Vec::new(),
        }
    }

    pub fn call(name: &str, arguments: Value) -> Self {
        Self::raw_call(name, &arguments.to_string())
    }

    pub fn raw_call(name: &str, arguments: &str) -> Self {
        Self {
            content: String::new(),
            calls: vec![(name.into(), arguments.into())],
        }
    }
}

type Compose = Box<dyn Fn(&Value) -> Reply + Send + Sync>;

/// One scripted exchange.
pub enum Step {
    /// Answer, computed from the request (so a step can use ids from earlier tool results).
    Answer(Compose),
    /// An HTTP error, with a `Retry-After` in seconds when given.
    Status(u16, Option<u64>),
    /// Stream part of an answer, then close the connection without finishing.
    Truncated(Reply),
    /// Wait this long, then answer (to outlast the client's timeout).
    Slow(Duration, Reply),
}

impl Step {
    pub fn reply(reply: Reply) -> Self {
        Self::Answer(Box::new(move |_| reply.clone()))
    }

    pub fn compose(f: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Self {
        Self::Answer(Box::new(f))
    }
}

#[derive(Clone, Default)]
struct Shared {
    script: Arc<Mutex<VecDeque<Step>>>,
    requests: Arc<Mutex<Vec<(Instant, Value)>>>,
}

pub struct ModelServer {
    pub url: String,
    shared: Shared,
}

impl ModelServer {
    pub async fn start(script: Vec<Step>) -> Self {
        let shared = Shared::default();
        shared.script.lock().unwrap().extend(script);
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/api/chat", post(ollama))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, shared }
    }

    pub fn push(&self, steps: Vec<Step>) {
        self.shared.script.lock().unwrap().extend(steps);
    }

    pub fn requests(&self) -> Vec<Value> {
        self.shared
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    pub fn request_times(&self) -> Vec<Instant> {
        self.shared
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| *t)
            .collect()
    }
}

fn next(shared: &Shared, request: Value) -> Option<Step> {
    shared
        .requests
        .lock()
        .unwrap()
        .push((Instant::now(), request));
    shared.script.lock().unwrap().pop_front()
}

/// The text of the last tool result in a request, parsed.
pub fn last_tool_result(request: &Value) -> Value {
    request["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "tool"))
        .and_then(|m| m["content"].as_str())
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or(Value::Null)
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let body = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "scripted-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {body}\n\n")
}

/// The answer as SSE chunks: text in two pieces, each tool call's arguments split in two.
fn sse(reply: &Reply, finish: bool) -> String {
    let mut out = chunk(json!({"role": "assistant", "content": ""}), None);
    if !reply.content.is_empty() {
        let (a, b) = reply.content.split_at(reply.content.len() / 2);
        out.push_str(&chunk(json!({"content": a}), None));
        out.push_str(&chunk(json!({"content": b}), None));
    }
    for (i, (name, args)) in reply.calls.iter().enumerate() {
        out.push_str(&chunk(
            json!({"tool_calls": [{"index": i, "id": format!("call_{i}"), "type": "function", "function": {"name": name, "arguments": ""}}]}),
            None,
        ));
        let cut = (0..=args.len() / 2)
            .rev()
            .find(|c| args.is_char_boundary(*c))
            .unwrap_or(0);
        let (a, b) = args.split_at(cut);
        for piece in [a, b] {
            out.push_str(&chunk(
                json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}),
                None,
            ));
        }
    }
    if finish {
        let reason = if reply.calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        };
        out.push_str(&chunk(json!({}), Some(reason)));
        let usage = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "scripted-model",
            "choices": [], "usage": {"prompt_tokens": 321, "completion_tokens": 12, "total_tokens": 333}});
        out.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    }
    out
}

fn respond(status: u16, content_type: &str, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap()
}

/// A whole (not streamed) chat.completion object.
fn whole(reply: &Reply) -> String {
    let calls: Vec<Value> = reply
        .calls
        .iter()
        .enumerate()
        .map(|(i, (name, args))| json!({"id": format!("call_{i}"), "type": "function", "function": {"name": name, "arguments": args}}))
        .collect();
    let mut message = json!({"role": "assistant", "content": reply.content});
    if !calls.is_empty() {
        message["tool_calls"] = json!(calls);
    }
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "scripted-model",
        "choices": [{"index": 0, "message": message,
            "finish_reason": if reply.calls.is_empty() { "stop" } else { "tool_calls" }}],
        "usage": {"prompt_tokens": 123, "completion_tokens": 45, "total_tokens": 168}})
    .to_string()
}

async fn openai(State(shared): State<Shared>, body: String) -> Response<Body> {
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let step = next(&shared, request.clone());
    if request["stream"] == false {
        return match step {
            None => respond(
                200,
                "application/json",
                whole(&Reply::text("(the script has no more answers)")),
            ),
            Some(Step::Answer(f)) => respond(200, "application/json", whole(&f(&request))),
            Some(Step::Truncated(_)) => respond(200, "application/json", "{\"id\":".into()),
            Some(Step::Slow(wait, reply)) => {
                tokio::time::sleep(wait).await;
                respond(200, "application/json", whole(&reply))
            }
            Some(Step::Status(code, _)) => {
                let body = json!({"error": {"message": format!("scripted {code}"), "type": "scripted", "param": null, "code": null}});
                respond(code, "application/json", body.to_string())
            }
        };
    }
    match step {
        None => respond(
            200,
            "text/event-stream",
            sse(&Reply::text("(the script has no more answers)"), true),
        ),
        Some(Step::Answer(f)) => respond(200, "text/event-stream", sse(&f(&request), true)),
        Some(Step::Truncated(reply)) => respond(200, "text/event-stream", sse(&reply, false)),
        Some(Step::Slow(wait, reply)) => {
            tokio::time::sleep(wait).await;
            respond(200, "text/event-stream", sse(&reply, true))
        }
        Some(Step::Status(code, retry_after)) => {
            let body = json!({"error": {"message": format!("scripted {code}"), "type": "scripted", "param": null, "code": null}});
            let mut r = respond(code, "application/json", body.to_string());
            if let Some(secs) = retry_after {
                r.headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            r
        }
    }
}

async fn ollama(State(shared): State<Shared>, body: String) -> Response<Body> {
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let reply = match next(&shared, request.clone()) {
        Some(Step::Answer(f)) => f(&request),
        Some(Step::Status(code, _)) => {
            return respond(
                code,
                "application/json",
                json!({"error": format!("scripted {code}")}).to_string(),
            );
        }
        Some(Step::Slow(wait, reply)) => {
            tokio::time::sleep(wait).await;
            reply
        }
        Some(Step::Truncated(_)) => return respond(200, "application/json", "{\"model\":".into()),
        None => Reply::text("(the script has no more answers)"),
    };
    let calls: Vec<Value> = reply
        .calls
        .iter()
        .map(|(name, args)| json!({"function": {"name": name, "arguments": serde_json::from_str::<Value>(args).unwrap_or(json!({}))}}))
        .collect();
    let body = json!({"model": "scripted-model", "created_at": "2026-11-24T00:00:00Z",
        "message": {"role": "assistant", "content": reply.content, "tool_calls": calls},
        "done": true, "total_duration": 1, "load_duration": 1, "prompt_eval_count": 200,
        "prompt_eval_duration": 1, "eval_count": 9, "eval_duration": 1});
    respond(200, "application/json", body.to_string())
}
