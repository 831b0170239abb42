//! Extractors whose rejections are problem+json: the request body, path, query and the
//! authenticated caller.

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::domain::actor::Actor;
use crate::error::{Code, Error};
use crate::state::AppState;

/// `axum::Json` with problem+json rejections.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` with problem+json rejections.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct Path<T>(pub T);

/// `axum::extract::Query` with problem+json rejections.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct Query<T>(pub T);

/// The caller: anonymous without an `Authorization` header; a bearer token that is
/// present but not valid is refused rather than treated as anonymous.
impl FromRequestParts<AppState> for Actor {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            return Ok(Actor::Anonymous);
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::new(
                    Code::InvalidToken,
                    "Send the access token as `Authorization: Bearer <token>`.",
                )
            })?;
        Ok(Actor::User(state.identity.authenticate(token).await?))
    }
}
