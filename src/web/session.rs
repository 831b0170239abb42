//! Cookie sessions for the console and the doctors' pages. A login's access token and
//! refresh token live in `HttpOnly; SameSite=Strict` cookies; an expired access token is
//! renewed with the refresh token on the way in. Every form carries a CSRF token bound to
//! the login, and cross-origin form posts are refused.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use secrecy::ExposeSecret;

use crate::domain::actor::{Actor, Principal, Role};
use crate::domain::identity::TokenPair;
use crate::error::{Code, Error};
use crate::state::AppState;

pub const ACCESS: &str = "clinic_access";
pub const REFRESH: &str = "clinic_refresh";

/// The signed-in console user of this request.
#[derive(Clone)]
pub struct ConsoleUser {
    pub actor: Actor,
    pub principal: Principal,
    pub csrf: String,
    digester: crate::crypto::Digester,
}

impl ConsoleUser {
    pub fn is_system_admin(&self) -> bool {
        self.principal.is_system_admin()
    }

    pub fn is_doctor(&self) -> bool {
        self.principal.has_role(Role::Doctor)
    }

    pub fn is_admin(&self) -> bool {
        self.is_system_admin() || self.principal.administered_clinics().next().is_some()
    }

    /// Refuses a form whose CSRF token is not this login's (compared in constant time).
    pub fn check_csrf(&self, token: &str) -> Result<(), Error> {
        let login = self.principal.session_id.to_string();
        if self.digester.matches(CSRF_PURPOSE, &login, token) {
            Ok(())
        } else {
            Err(Error::new(
                Code::Forbidden,
                "The form has expired; reload the page and try again.",
            ))
        }
    }
}

const CSRF_PURPOSE: &str = "console-csrf";

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()).filter_map(Result::ok))
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

fn secure(state: &AppState) -> bool {
    state
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

/// `Set-Cookie` values for a new login (or for signing out, with `None`).
pub fn cookies(state: &AppState, pair: Option<&TokenPair>) -> Vec<HeaderValue> {
    let make = |name: &'static str, value: Option<&str>, max_age: i64| {
        let mut c = Cookie::build((name, value.unwrap_or("").to_owned()))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(secure(state))
            .max_age(cookie::time::Duration::seconds(if value.is_some() {
                max_age
            } else {
                0
            }))
            .build();
        if value.is_none() {
            c.make_removal();
        }
        HeaderValue::from_str(&c.to_string()).ok()
    };
    let refresh_age = state.config.refresh_token_ttl.as_secs() as i64;
    [
        make(ACCESS, pair.map(|p| p.access_token.as_str()), refresh_age),
        make(REFRESH, pair.map(|p| p.refresh_token.as_str()), refresh_age),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Authenticates console requests from their cookies (renewing an expired access token),
/// refuses cross-origin posts, and adds the security headers.
pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if req.method() == Method::POST && !same_origin(req.headers()) {
        return crate::web::pages::problem_page(
            StatusCode::FORBIDDEN,
            "This form was sent from another site.",
        );
    }
    let mut set_cookies = Vec::new();
    let access = cookie_value(req.headers(), ACCESS);
    let refresh = cookie_value(req.headers(), REFRESH);
    let mut principal = match &access {
        Some(token) => state.identity.authenticate(token).await.ok(),
        None => None,
    };
    if principal.is_none()
        && let Some(refresh) = refresh.filter(|r| !r.is_empty())
    {
        match state.identity.refresh(&refresh).await {
            Ok(pair) => {
                principal = state.identity.authenticate(&pair.access_token).await.ok();
                set_cookies = cookies(&state, Some(&pair));
            }
            Err(_) => set_cookies = cookies(&state, None),
        }
    }
    if let Some(p) = principal {
        let digester =
            crate::crypto::Digester::new(state.config.jwt_secret.expose_secret().as_bytes());
        let csrf = digester.digest(CSRF_PURPOSE, &p.session_id.to_string());
        req.extensions_mut().insert(ConsoleUser {
            actor: Actor::User(p.clone()),
            principal: p,
            csrf,
            digester,
        });
    }
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for c in set_cookies {
        headers.append(header::SET_COOKIE, c);
    }
    response
}

/// A form post must come from our own pages: its `Origin` (or `Referer`) names our host.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|o| o.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .unwrap_or("");
            rest.split('/').next() == Some(host)
        }
        // Browsers send Origin on posts; a client without one is not a browser form.
        (_, None) => true,
        (None, Some(_)) => false,
    }
}

/// The console user, or a redirect to the sign-in page.
pub struct SignedIn(pub ConsoleUser);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Response> {
        match parts.extensions.get::<ConsoleUser>() {
            Some(user) => Ok(Self(user.clone())),
            None => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/admin");
                let to = format!("/admin/login?next={}", urlencoding(next));
                Err(Redirect::to(&to).into_response())
            }
        }
    }
}

fn urlencoding(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Only a path of this site: one leading `/`, then visible ASCII without a backslash.
/// Browsers drop tabs and line breaks from a URL and read `\\` as `/`, so anything else
/// could turn `/\t/evil.example` into another site; a header value must not break either.
pub fn safe_next(next: Option<&str>) -> Option<String> {
    next.filter(|n| {
        n.len() <= 2000
            && n.starts_with('/')
            && !n.starts_with("//")
            && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
    })
    .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_only_ever_a_path_of_this_site() {
        for bad in [
            "//evil.example",
            "/\t/evil.example",
            "/\\evil.example",
            "/\n/x",
            "/ /x",
            "https://evil.example",
            "evil.example",
            "/caf\u{e9}",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad:?}");
        }
        for good in ["/admin", "/doctor/patients/1?tab=notes#plan", "/"] {
            assert_eq!(safe_next(Some(good)).as_deref(), Some(good));
        }
    }
}
