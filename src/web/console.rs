//! The admin console (`/admin`): sign-in, clinic requests and clinics, users, the audit
//! log with its chain check, the orchestration dashboard, clinic reports with CSV, and the
//! notification outbox. Every page and action goes through the domain with the signed-in
//! user's identity, so the console can do exactly what the REST API lets them do.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::FromRequestParts;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, NaiveTime, Utc};
use serde::Deserialize;
use tera::Context;
use uuid::Uuid;

use crate::domain::actor::{Grant, Role};
use crate::domain::audit::{self, AuditFilter};
use crate::domain::clinics;
use crate::domain::clinics::reports::{self, Period};
use crate::domain::identity::LoginOutcome;
use crate::domain::identity::people;
use crate::domain::orchestration::{self, StatsQuery};
use crate::domain::outbox;
use crate::domain::{billing, pharmacy};
use crate::state::AppState;
use crate::web::pages::{Chart, error_page, render};
use crate::web::session::{self, ConsoleUser, SignedIn};

fn service(s: &AppState) -> &str {
    &s.config.agent.service_name
}

/// Pages for clinic and system admins only.
fn require_admin(s: &AppState, user: &ConsoleUser) -> Result<(), Box<Response>> {
    if user.is_admin() {
        Ok(())
    } else if user.is_doctor() {
        Err(Box::new(Redirect::to("/doctor").into_response()))
    } else {
        Err(Box::new(error_page(
            &crate::error::Error::forbidden(),
            service(s),
            Some(user),
        )))
    }
}

/// A signed-in clinic or system admin: doctors are sent to their own pages, anyone else
/// gets 403, and nobody reaches an admin page without passing here.
pub struct Admin(pub ConsoleUser);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let SignedIn(user) = SignedIn::from_request_parts(parts, state).await?;
        require_admin(state, &user).map_err(|r| *r)?;
        Ok(Self(user))
    }
}

fn home_of(user: &ConsoleUser) -> &'static str {
    if !user.is_admin() && user.is_doctor() {
        "/doctor"
    } else if user.is_admin() {
        "/admin"
    } else if user.principal.has_role(Role::ClinicStaff) {
        "/desk"
    } else {
        "/me"
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    /// `code`: sign in with a mailed code instead of a password.
    mode: Option<String>,
    /// `password`: the password was just set.
    done: Option<String>,
}

pub async fn login_page(
    State(s): State<AppState>,
    user: Option<axum::Extension<ConsoleUser>>,
    Query(q): Query<LoginQuery>,
) -> Response {
    if let Some(axum::Extension(user)) = user {
        return Redirect::to(home_of(&user)).into_response();
    }
    let mut c = Context::new();
    c.insert(
        "next",
        &session::safe_next(q.next.as_deref()).unwrap_or_default(),
    );
    c.insert("email", "");
    c.insert("by_code", &(q.mode.as_deref() == Some("code")));
    let next = session::safe_next(q.next.as_deref()).unwrap_or_default();
    if !next.is_empty() {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", &next)
            .finish();
        c.insert("next_query", &query);
    }
    if q.done.as_deref() == Some("password") {
        c.insert("flash", "Your password is set. Sign in with it.");
    }
    render("login.html", "Sign in", service(&s), None, c)
}

#[derive(Deserialize)]
pub struct CodeStartForm {
    email: String,
    #[serde(default)]
    next: String,
}

/// Mails a sign-in code (whether the address has an account is not said) and asks for it.
pub async fn login_code_start(State(s): State<AppState>, Form(f): Form<CodeStartForm>) -> Response {
    let email = f.email.trim();
    if let Err(e) = s.identity.start_passwordless(email).await {
        return login_error(&s, email, &f.next, &e.for_people());
    }
    let mut c = Context::new();
    c.insert("next", &f.next);
    c.insert("email", email);
    c.insert("code_sent", &true);
    render("login.html", "Sign in", service(&s), None, c)
}

#[derive(Deserialize)]
pub struct CodeForm {
    email: String,
    code: String,
    #[serde(default)]
    next: String,
}

/// Signs in with the mailed code (then the second factor, for authenticator users).
pub async fn login_code(State(s): State<AppState>, Form(f): Form<CodeForm>) -> Response {
    match s
        .identity
        .finish_passwordless(f.email.trim(), f.code.trim())
        .await
    {
        Ok(LoginOutcome::Authenticated(pair)) => signed_in(&s, &pair, &f.next),
        Ok(LoginOutcome::MfaRequired(challenge)) => {
            let mut c = Context::new();
            c.insert("next", &f.next);
            c.insert("mfa_token", &challenge.mfa_token);
            render("login.html", "Second factor", service(&s), None, c)
        }
        Err(e) => {
            let mut c = Context::new();
            c.insert("next", &f.next);
            c.insert("email", f.email.trim());
            c.insert("code_sent", &true);
            c.insert("error", &e.for_people());
            let mut r = render("login.html", "Sign in", service(&s), None, c);
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
    }
}

#[derive(Deserialize)]
pub struct PasswordQuery {
    email: Option<String>,
}

/// Where an invited person (or one who forgot it) sets a password: the address first; a
/// code is mailed to it; then the code and the new password.
pub async fn password_page(State(s): State<AppState>, Query(q): Query<PasswordQuery>) -> Response {
    let mut c = Context::new();
    c.insert("email", q.email.as_deref().unwrap_or("").trim());
    render("password.html", "Set your password", service(&s), None, c)
}

#[derive(Deserialize)]
pub struct PasswordStartForm {
    email: String,
}

pub async fn password_start(
    State(s): State<AppState>,
    Form(f): Form<PasswordStartForm>,
) -> Response {
    let email = f.email.trim();
    let mut c = Context::new();
    c.insert("email", email);
    match s.identity.start_password_reset(email).await {
        Ok(_) => c.insert("code_sent", &true),
        Err(e) => c.insert("error", &e.for_people()),
    }
    render("password.html", "Set your password", service(&s), None, c)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    email: String,
    code: String,
    new_password: String,
}

/// Sets the password with the mailed code (one use, expiring; every earlier login ends).
pub async fn password_set(State(s): State<AppState>, Form(f): Form<PasswordForm>) -> Response {
    let email = f.email.trim();
    match s
        .identity
        .finish_password_reset(email, f.code.trim(), &f.new_password)
        .await
    {
        Ok(()) => Redirect::to("/admin/login?done=password").into_response(),
        Err(e) => {
            let mut c = Context::new();
            c.insert("email", email);
            c.insert("code_sent", &true);
            c.insert("error", &e.for_people());
            let mut r = render("password.html", "Set your password", service(&s), None, c);
            *r.status_mut() = e.code().status();
            r
        }
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

fn signed_in(s: &AppState, pair: &crate::domain::identity::TokenPair, next: &str) -> Response {
    let roles: Vec<Role> = pair.user.roles.iter().map(|g| g.role).collect();
    let home = if roles
        .iter()
        .any(|r| matches!(r, Role::SystemAdmin | Role::ClinicAdmin))
    {
        "/admin"
    } else if roles.contains(&Role::Doctor) {
        "/doctor"
    } else if roles.contains(&Role::ClinicStaff) {
        "/desk"
    } else if roles.contains(&Role::Pharmacist) {
        "/pharmacy"
    } else {
        "/me"
    };
    let to = session::safe_next(Some(next).filter(|n| !n.is_empty())).unwrap_or(home.into());
    let mut response = Redirect::to(&to).into_response();
    for c in session::cookies(s, Some(pair)) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

fn login_error(s: &AppState, email: &str, next: &str, message: &str) -> Response {
    let mut c = Context::new();
    c.insert("next", next);
    c.insert("email", email);
    c.insert("error", message);
    let mut r = render("login.html", "Sign in", service(s), None, c);
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r
}

pub async fn login(State(s): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    match s.identity.login(f.email.trim(), &f.password).await {
        Ok(LoginOutcome::Authenticated(pair)) => signed_in(&s, &pair, &f.next),
        Ok(LoginOutcome::MfaRequired(challenge)) => {
            let mut c = Context::new();
            c.insert("next", &f.next);
            c.insert("mfa_token", &challenge.mfa_token);
            render("login.html", "Second factor", service(&s), None, c)
        }
        Err(e) => login_error(&s, &f.email, &f.next, &e.for_people()),
    }
}

#[derive(Deserialize)]
pub struct MfaForm {
    mfa_token: String,
    code: String,
    #[serde(default)]
    next: String,
}

pub async fn login_mfa(State(s): State<AppState>, Form(f): Form<MfaForm>) -> Response {
    match s.identity.complete_mfa(&f.mfa_token, f.code.trim()).await {
        Ok(pair) => signed_in(&s, &pair, &f.next),
        Err(e) => login_error(&s, "", &f.next, &e.for_people()),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub async fn logout(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&e, service(&s), Some(&user));
    }
    if let Err(e) = s.identity.logout(&user.principal).await {
        tracing::warn!(error = %e, "console logout");
    }
    let mut response = Redirect::to("/admin/login").into_response();
    for c in session::cookies(&s, None) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

pub async fn overview(State(s): State<AppState>, Admin(user): Admin) -> Response {
    let mut c = Context::new();
    if user.is_system_admin() {
        let counts = async {
            let pending = clinics::list_requests(&s.db, &user.actor, Some("pending")).await?;
            let dead = outbox::list(&s.db, &user.actor, Some("dead"), 500).await?;
            Ok::<_, crate::error::Error>((pending.len(), dead.len()))
        };
        match counts.await {
            Ok((pending, dead)) => {
                c.insert("pending", &pending);
                c.insert("dead", &dead);
            }
            Err(e) => return error_page(&e, service(&s), Some(&user)),
        }
    }
    render("overview.html", "Overview", service(&s), Some(&user), c)
}

/// Runs a console action, then goes back to `to` with a message (or shows the error).
async fn act<T, F>(s: &AppState, user: &ConsoleUser, csrf: &str, to: &str, op: F) -> Response
where
    F: std::future::Future<Output = crate::error::Result<T>>,
{
    if let Err(e) = user.check_csrf(csrf) {
        return error_page(&e, service(s), Some(user));
    }
    match op.await {
        Ok(_) => Redirect::to(to).into_response(),
        Err(e) => error_page(&e, service(s), Some(user)),
    }
}

pub async fn clinic_requests(State(s): State<AppState>, Admin(user): Admin) -> Response {
    let requests = match clinics::list_requests(&s.db, &user.actor, None).await {
        Ok(mut r) => {
            r.sort_by_key(|r| {
                (
                    r.status != crate::domain::clinics::RequestStatus::Pending,
                    std::cmp::Reverse(r.created_at),
                )
            });
            r
        }
        Err(e) => return error_page(&e, service(&s), Some(&user)),
    };
    let all = match clinics::list_all(&s.db, &user.actor).await {
        Ok(c) => c,
        Err(e) => return error_page(&e, service(&s), Some(&user)),
    };
    let mut c = Context::new();
    c.insert("requests", &requests);
    c.insert("clinics", &all);
    render("clinics.html", "Clinics", service(&s), Some(&user), c)
}

pub async fn decide_request(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path((id, decision)): Path<(Uuid, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let back = "/admin/clinic-requests";
    match decision.as_str() {
        "approve" => {
            act(
                &s,
                &user,
                &f.csrf,
                back,
                clinics::approve(&s.db, &s.mailer, &user.actor, id),
            )
            .await
        }
        "reject" => {
            act(
                &s,
                &user,
                &f.csrf,
                back,
                clinics::reject(&s.db, &s.mailer, &user.actor, id, &f.reason),
            )
            .await
        }
        _ => error_page(
            &crate::error::Error::not_found("action"),
            service(&s),
            Some(&user),
        ),
    }
}

pub async fn clinic_status(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path((id, change)): Path<(Uuid, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let active = match change.as_str() {
        "suspend" => false,
        "reactivate" => true,
        _ => {
            return error_page(
                &crate::error::Error::not_found("action"),
                service(&s),
                Some(&user),
            );
        }
    };
    let reason = if f.reason.trim().is_empty() {
        "From the console"
    } else {
        f.reason.as_str()
    };
    act(
        &s,
        &user,
        &f.csrf,
        "/admin/clinic-requests",
        clinics::set_status(&s.db, &user.actor, id, active, reason),
    )
    .await
}

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    offset: i64,
}

pub async fn users(
    State(s): State<AppState>,
    Admin(user): Admin,
    Query(q): Query<PageQuery>,
) -> Response {
    if !user.is_system_admin() {
        return error_page(&crate::error::Error::forbidden(), service(&s), Some(&user));
    }
    const LIMIT: i64 = 50;
    let offset = q.offset.max(0);
    let list = match people::list(&s.db, &user.actor, LIMIT, offset).await {
        Ok(l) => l,
        Err(e) => return error_page(&e, service(&s), Some(&user)),
    };
    let all = match clinics::list_all(&s.db, &user.actor).await {
        Ok(all) => all,
        Err(e) => return error_page(&e, service(&s), Some(&user)),
    };
    let mut c = Context::new();
    c.insert("users", &list);
    c.insert("clinics", &all);
    c.insert(
        "roles",
        &[
            "patient",
            "doctor",
            "clinic_staff",
            "clinic_admin",
            "pharmacist",
            "system_admin",
        ],
    );
    c.insert("offset", &offset);
    c.insert("limit", &LIMIT);
    c.insert("prev", &(offset - LIMIT).max(0));
    c.insert("next", &(offset + LIMIT));
    render("users.html", "Users", service(&s), Some(&user), c)
}

#[derive(Deserialize)]
pub struct NewUserForm {
    csrf: String,
    email: String,
    display_name: String,
    role: String,
    #[serde(default)]
    clinic_id: String,
}

pub async fn create_user(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Form(f): Form<NewUserForm>,
) -> Response {
    let role = Role::parse(&f.role);
    let clinic = f.clinic_id.parse::<Uuid>().ok();
    let grant = match (role, clinic) {
        (Some(role), Some(clinic)) if role.requires_clinic() => Grant::in_clinic(role, clinic),
        (Some(role), _) if !role.requires_clinic() => Grant::global(role),
        _ => {
            let e = crate::error::Error::new(
                crate::error::Code::ValidationFailed,
                "Pick a role, and a clinic for clinic roles.",
            );
            return error_page(&e, service(&s), Some(&user));
        }
    };
    act(
        &s,
        &user,
        &f.csrf,
        "/admin/users",
        crate::domain::identity::invitations::create_user(
            &s.db,
            &s.mailer,
            &user.actor,
            &f.email,
            &f.display_name,
            grant,
        ),
    )
    .await
}

pub async fn user_action(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path((id, action)): Path<(Uuid, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    match action.as_str() {
        "deactivate" => {
            act(
                &s,
                &user,
                &f.csrf,
                "/admin/users",
                people::deactivate(&s.db, &user.actor, id),
            )
            .await
        }
        "delete" => {
            act(&s, &user, &f.csrf, "/admin/users", async {
                crate::domain::erasure::erase_by_admin(&s.db, &user.actor, id)
                    .await
                    .map(|_| ())
            })
            .await
        }
        _ => error_page(
            &crate::error::Error::not_found("action"),
            service(&s),
            Some(&user),
        ),
    }
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor_id: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    before_seq: Option<i64>,
}

fn day_start(s: &str) -> Option<chrono::DateTime<Utc>> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

pub async fn audit_log(
    State(s): State<AppState>,
    Admin(user): Admin,
    Query(q): Query<AuditQuery>,
) -> Response {
    const LIMIT: i64 = 50;
    let filter = AuditFilter {
        actor_id: q.actor_id.trim().parse().ok(),
        action: Some(q.action.trim().to_owned()).filter(|a| !a.is_empty()),
        from: day_start(&q.from),
        to: day_start(&q.to).and_then(|t| t.checked_add_signed(chrono::Duration::days(1))),
        before_seq: q.before_seq,
        clinic_id: None,
        limit: Some(LIMIT),
    };
    let records = match audit::list(&s.db, &user.actor, &filter).await {
        Ok(r) => r,
        Err(e) => return error_page(&e, service(&s), Some(&user)),
    };
    let chain = if user.is_system_admin() {
        match audit::verify(&s.db, &user.actor).await {
            Ok(report) => Some(report),
            Err(e) => return error_page(&e, service(&s), Some(&user)),
        }
    } else {
        None
    };
    let older = (records.len() as i64 == LIMIT)
        .then(|| records.last().map(|r| r.seq))
        .flatten()
        .map(|seq| {
            let mut params = form_urlencoded::Serializer::new(String::new());
            params
                .append_pair("action", &q.action)
                .append_pair("actor_id", &q.actor_id)
                .append_pair("from", &q.from)
                .append_pair("to", &q.to)
                .append_pair("before_seq", &seq.to_string());
            format!("/admin/audit?{}", params.finish())
        });
    // Who acted, by name and address rather than an id (each person read once per page).
    let mut actors: BTreeMap<Uuid, String> = BTreeMap::new();
    for id in records.iter().filter_map(|r| r.actor_id) {
        if actors.contains_key(&id) {
            continue;
        }
        let name = match crate::domain::identity::people::find(&s.db, id).await {
            Ok(Some(u)) => format!("{} <{}>", u.display_name, u.email),
            Ok(None) => "an erased account".to_owned(),
            Err(e) => return error_page(&e, service(&s), Some(&user)),
        };
        actors.insert(id, name);
    }
    let actor_names: BTreeMap<String, String> = actors
        .into_iter()
        .map(|(id, name)| (id.to_string(), name))
        .collect();
    let mut c = Context::new();
    c.insert("records", &records);
    c.insert("actors", &actor_names);
    c.insert("chain", &chain);
    c.insert("older", &older);
    c.insert(
        "f",
        &serde_json::json!({"action": q.action, "actor_id": q.actor_id, "from": q.from, "to": q.to}),
    );
    render("audit.html", "Audit log", service(&s), Some(&user), c)
}

pub async fn orchestration_page(State(s): State<AppState>, Admin(user): Admin) -> Response {
    let stats = match orchestration::stats(&s.db, &user.actor, &StatsQuery::default()).await {
        Ok(st) => st,
        Err(e) => return error_page(&e, service(&s), Some(&user)),
    };
    let days = |f: &dyn Fn(&orchestration::Figures) -> f64| -> Vec<(String, f64)> {
        stats
            .by_day
            .iter()
            .map(|(d, fig)| (d.format("%m-%d").to_string(), f(fig)))
            .collect()
    };
    let charts = vec![
        Chart::new(
            "Calls (attempts) per day",
            "#0b5fff",
            &days(&|f| f.attempts as f64),
        ),
        Chart::new(
            "Latency p50 per day (ms)",
            "#2e7d32",
            &days(&|f| f.latency_p50_ms as f64),
        ),
        Chart::new(
            "Latency p95 per day (ms)",
            "#ef6c00",
            &days(&|f| f.latency_p95_ms as f64),
        ),
        Chart::new(
            "Tokens per day (in + out)",
            "#6a1b9a",
            &days(&|f| (f.tokens_in + f.tokens_out) as f64),
        ),
        Chart::new("Retries per day", "#00838f", &days(&|f| f.retries as f64)),
        Chart::new("Errors per day", "#c62828", &days(&|f| f.failures as f64)),
    ];
    let mut c = Context::new();
    c.insert("stats", &stats);
    c.insert("charts", &charts);
    render(
        "orchestration.html",
        "Orchestration",
        service(&s),
        Some(&user),
        c,
    )
}

#[derive(Deserialize)]
pub struct ReportQuery {
    clinic: Option<Uuid>,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    period: String,
    #[serde(default)]
    kind: String,
}

/// What the reports page shows for one clinic: appointments, and where the user may read
/// them, revenue and pharmacy stock.
struct Reports {
    clinics: Vec<clinics::Clinic>,
    report: Option<reports::Report>,
    revenue: Option<billing::report::Revenue>,
    stock: Option<pharmacy::report::StockReport>,
    period: Period,
}

/// A report the user may not read is left off the page.
fn unless_forbidden<T>(r: crate::error::Result<T>) -> crate::error::Result<Option<T>> {
    match r {
        Ok(x) => Ok(Some(x)),
        Err(e) if e.code() == crate::error::Code::Forbidden => Ok(None),
        Err(e) => Err(e),
    }
}

/// The clinics this user reports on, and the reports asked for (or the first clinic's).
async fn report_for(
    s: &AppState,
    user: &ConsoleUser,
    q: &ReportQuery,
) -> crate::error::Result<Reports> {
    let mut mine = clinics::list_all(&s.db, &user.actor).await?;
    if !user.is_system_admin() {
        mine.retain(|c| user.principal.administers_clinic(c.id));
    }
    let period = if q.period.is_empty() {
        Period::Day
    } else {
        Period::parse(&q.period)?
    };
    let Some(clinic) = q
        .clinic
        .and_then(|id| mine.iter().find(|c| c.id == id))
        .or_else(|| mine.first())
    else {
        return Ok(Reports {
            clinics: mine,
            report: None,
            revenue: None,
            stock: None,
            period,
        });
    };
    let (dfrom, dto) = reports::default_range(Utc::now(), clinic.tz());
    let from = NaiveDate::parse_from_str(&q.from, "%Y-%m-%d").unwrap_or(dfrom);
    let to = NaiveDate::parse_from_str(&q.to, "%Y-%m-%d").unwrap_or(dto);
    let id = clinic.id;
    let report = reports::clinic(&s.db, &user.actor, id, from, to, period).await?;
    let revenue =
        unless_forbidden(billing::report::revenue(&s.db, &user.actor, id, from, to, period).await)?;
    let stock = unless_forbidden(pharmacy::report::stock(&s.db, &user.actor, id, from, to).await)?;
    Ok(Reports {
        clinics: mine,
        report: Some(report),
        revenue,
        stock,
        period,
    })
}

pub async fn reports_page(
    State(s): State<AppState>,
    Admin(user): Admin,
    Query(q): Query<ReportQuery>,
) -> Response {
    let Reports {
        clinics: mine,
        report,
        revenue,
        stock,
        period,
    } = match report_for(&s, &user, &q).await {
        Ok(x) => x,
        Err(e) => return error_page(&e, service(&s), Some(&user)),
    };
    let mut c = Context::new();
    c.insert("clinics", &mine);
    c.insert(
        "period",
        match period {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        },
    );
    if let Some(r) = &report {
        let link = |kind: &str| {
            format!(
                "/admin/reports.csv?clinic={}&from={}&to={}&period={}&kind={kind}",
                r.clinic_id,
                r.from,
                r.to,
                if q.period.trim().is_empty() {
                    "day"
                } else {
                    q.period.as_str()
                }
            )
        };
        let periods: Vec<(String, f64)> = r
            .by_period
            .iter()
            .map(|(k, v)| (k.clone(), (v.total() - v.cancelled) as f64))
            .collect();
        let no_shows: Vec<(String, f64)> = r
            .by_period
            .iter()
            .map(|(k, v)| (k.clone(), v.no_show_rate().map_or(0.0, |r| r * 100.0)))
            .collect();
        let specialties: Vec<(String, f64)> = r
            .by_specialty
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64))
            .collect();
        let hours: Vec<(String, f64)> = r
            .by_hour
            .iter()
            .enumerate()
            .map(|(h, v)| (format!("{h:02}"), *v as f64))
            .collect();
        let mut charts = vec![
            serde_json::json!({"chart": Chart::new("Appointments per period", "#0b5fff", &periods), "csv": link("periods")}),
            serde_json::json!({"chart": Chart::new("No-show rate per period (%)", "#c62828", &no_shows), "csv": link("periods")}),
            serde_json::json!({"chart": Chart::new("Demand by specialty", "#6a1b9a", &specialties), "csv": link("specialties")}),
            serde_json::json!({"chart": Chart::new("Demand by hour of day (local)", "#2e7d32", &hours), "csv": link("hours")}),
        ];
        if let Some(rev) = &revenue {
            // Whole units on the bars; the tables and the CSV carry the cents.
            let units = |cents: i64| cents as f64 / 100.0;
            let invoiced: Vec<(String, f64)> = rev
                .periods
                .iter()
                .map(|p| (p.period.clone(), units(p.invoiced_cents)))
                .collect();
            let by_specialty: Vec<(String, f64)> = rev
                .by_specialty
                .iter()
                .map(|p| (p.specialty.clone(), units(p.invoiced_cents)))
                .collect();
            charts.push(serde_json::json!({"chart": Chart::new("Invoiced per period", "#00838f", &invoiced), "csv": link("revenue")}));
            charts.push(serde_json::json!({"chart": Chart::new("Invoiced by specialty", "#ef6c00", &by_specialty), "csv": link("revenue")}));
        }
        c.insert("charts", &charts);
        c.insert("from", &r.from.to_string());
        c.insert("to", &r.to.to_string());
        c.insert("revenue_csv", &link("revenue"));
        c.insert("stock_csv", &link("stock"));
    } else {
        c.insert("from", "");
        c.insert("to", "");
    }
    let money = billing::money;
    c.insert(
        "revenue",
        &revenue.as_ref().map(|r| {
            serde_json::json!({
                "periods": r.periods.iter().map(|p| serde_json::json!({
                    "period": p.period, "invoiced": money(p.invoiced_cents), "paid": money(p.paid_cents)})).collect::<Vec<_>>(),
                "by_doctor": r.by_doctor.iter().map(|d| serde_json::json!({
                    "name": d.doctor, "invoiced": money(d.invoiced_cents)})).collect::<Vec<_>>(),
                "by_specialty": r.by_specialty.iter().map(|d| serde_json::json!({
                    "name": d.specialty, "invoiced": money(d.invoiced_cents)})).collect::<Vec<_>>(),
                "outstanding": r.outstanding.iter().map(|o| serde_json::json!({
                    "id": o.invoice_id, "number": o.number, "bill_to": o.bill_to,
                    "owed": money(o.total_cents - o.paid_cents)})).collect::<Vec<_>>(),
                "outstanding_total": money(r.outstanding_cents),
            })
        }),
    );
    c.insert(
        "stock",
        &stock.as_ref().map(|st| {
            serde_json::json!({
                "lines": st.lines.iter().map(|l| serde_json::json!({
                    "name": format!("{} {}", l.name, l.strength).trim().to_owned(),
                    "on_hand": l.on_hand, "expired_on_hand": l.expired_on_hand, "unit": l.unit,
                    "cost_value": money(l.cost_value_cents), "price_value": money(l.price_value_cents),
                    "currency": l.currency, "received": l.movements.received, "dispensed": -l.movements.dispensed,
                    "adjusted": l.movements.adjusted, "expired": -l.movements.expired, "returned": l.movements.returned,
                })).collect::<Vec<_>>(),
                "cost_value": money(st.cost_value_cents),
                "price_value": money(st.price_value_cents),
            })
        }),
    );
    c.insert("report", &report);
    render("reports.html", "Reports", service(&s), Some(&user), c)
}

pub async fn report_csv(
    State(s): State<AppState>,
    Admin(user): Admin,
    Query(q): Query<ReportQuery>,
) -> Response {
    let kind = if q.kind.is_empty() {
        "periods"
    } else {
        q.kind.as_str()
    };
    let csv = match report_for(&s, &user, &q).await {
        Ok(r) => match (kind, r.report, r.revenue, r.stock) {
            ("revenue", _, Some(revenue), _) => Ok(revenue.csv()),
            ("stock", _, _, Some(stock)) => stock.csv(),
            ("revenue" | "stock", ..) => Err(crate::error::Error::forbidden()),
            (_, Some(report), ..) => report.csv(kind),
            (_, None, ..) => Err(crate::error::Error::not_found("clinic")),
        },
        Err(e) => Err(e),
    };
    match csv {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"report-{kind}.csv\""),
                ),
            ],
            body,
        )
            .into_response(),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

#[derive(Deserialize)]
pub struct OutboxQuery {
    #[serde(default)]
    status: String,
}

pub async fn outbox_page(
    State(s): State<AppState>,
    Admin(user): Admin,
    Query(q): Query<OutboxQuery>,
) -> Response {
    let status = Some(q.status.as_str()).filter(|s| !s.is_empty());
    match outbox::list(&s.db, &user.actor, status, 200).await {
        Ok(list) => {
            let mut c = Context::new();
            c.insert("notifications", &list);
            c.insert("status", &q.status);
            render("outbox.html", "Notifications", service(&s), Some(&user), c)
        }
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

pub async fn retry_notification(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Response {
    act(
        &s,
        &user,
        &f.csrf,
        "/admin/outbox?status=dead",
        outbox::retry(&s.db, &user.actor, id),
    )
    .await
}
