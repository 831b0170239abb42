//! The answers that come from the edge rather than from one handler, added to every
//! operation of the API description that can give them, so that the description tells
//! the truth: a path or query that does not parse (400), a malformed body (400) or one
//! that does not validate (422), a missing, expired or forged token (401), a role that
//! does not reach (403), an id that names nothing (404), a rate limit (429), and a service
//! that is busy (503).

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};

/// Paths whose operations are rate limited per client address.
const RATE_LIMITED: [&str; 2] = ["/api/v1/auth/", "/api/v1/clinic-requests"];

fn problem(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                Content::new(Some(Ref::from_schema_name("Problem"))),
            )
            .build(),
    )
}

/// Adds the common answers to each operation that lacks them.
pub fn document(openapi: &mut OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let rate_limited = RATE_LIMITED.iter().any(|p| path.starts_with(p));
        let in_path = path.contains('{');
        for op in [
            item.get.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.patch.as_mut(),
            item.delete.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            add_common(op, in_path, rate_limited);
        }
    }
}

fn add_common(op: &mut Operation, in_path: bool, rate_limited: bool) {
    let has_query = op.parameters.as_ref().is_some_and(|ps| !ps.is_empty());
    let has_body = op.request_body.is_some();
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(description));
    };
    if in_path || has_query || has_body {
        add(
            "400",
            "A path, query or body that does not parse (`invalid_path`, `invalid_query`, `malformed_json`)",
        );
    }
    // Any call may carry a token; one that is expired, revoked or forged is refused.
    add(
        "401",
        "Sign-in needed, or the token is expired, revoked or not ours",
    );
    if secured {
        add("403", "Signed in, but not allowed to do this");
    }
    if in_path {
        add(
            "404",
            "Nothing with that id (or nothing this caller may see)",
        );
    }
    if has_body || has_query {
        add(
            "422",
            "The request parses but is not valid (`validation_failed`, `invalid_body`)",
        );
    }
    if has_body {
        add("413", "The body is too large");
    }
    if rate_limited {
        add("429", "Too many requests from this address; retry later");
    }
    add(
        "503",
        "Busy: the database or the connection limit is full; retry shortly",
    );
}
