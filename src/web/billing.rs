//! Billing pages: for the front desk (`/desk/invoices`: a visit's invoice, taking a
//! payment, voiding with a credit note) and the invoice's printable page, which the
//! patient also opens from the portal once it is issued.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tera::Context;
use uuid::Uuid;

use crate::domain::billing::{
    self, DraftForm, Invoice, InvoiceQuery, InvoiceStatus, LineForm, LineKind, PaymentForm,
    PaymentMethod, money,
};
use crate::domain::clinics;
use crate::error::{Code, Error, Result};
use crate::state::AppState;
use crate::web::pages::{Fields, act, error_page, render};
use crate::web::session::SignedIn;
use crate::web::setup::amount;

fn service(s: &AppState) -> &str {
    &s.config.agent.service_name
}

/// An invoice with its amounts written out for the page.
#[derive(Serialize)]
struct Shown {
    invoice: Invoice,
    lines: Vec<[String; 5]>,
    payments: Vec<String>,
    subtotal: String,
    discount: String,
    tax: String,
    total: String,
    paid: String,
    balance: String,
}

fn shown(invoice: Invoice) -> Shown {
    let lines = invoice
        .lines
        .iter()
        .map(|l| {
            [
                money(l.unit_cents),
                if l.discount_cents == 0 {
                    String::new()
                } else {
                    money(l.discount_cents)
                },
                money(l.net_cents),
                format!("{}.{:02} %", l.tax_rate_bp / 100, l.tax_rate_bp % 100),
                money(l.total_cents),
            ]
        })
        .collect();
    let payments = invoice
        .payments
        .iter()
        .map(|p| money(p.amount_cents))
        .collect();
    Shown {
        payments,
        subtotal: money(invoice.subtotal_cents),
        discount: money(invoice.discount_cents),
        tax: money(invoice.tax_cents),
        total: money(invoice.total_cents),
        paid: money(invoice.paid_cents),
        balance: money(invoice.balance_cents),
        lines,
        invoice,
    }
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    clinic: Option<Uuid>,
    status: Option<InvoiceStatus>,
    /// Bill this visit: the new-invoice form is shown for it.
    appointment: Option<Uuid>,
}

pub async fn list_page(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Query(q): Query<ListQuery>,
) -> Response {
    let page = async {
        let appointment = match q.appointment {
            Some(id) => {
                Some(crate::domain::scheduling::appointments::get(&s.db, &user.actor, id).await?)
            }
            None => None,
        };
        let clinic_id = q
            .clinic
            .or(appointment.as_ref().map(|a| a.clinic_id))
            .or_else(|| {
                user.principal
                    .grants
                    .iter()
                    .find(|g| g.clinic_id.is_some())
                    .and_then(|g| g.clinic_id)
            })
            .ok_or_else(Error::forbidden)?;
        let clinic = clinics::get(&s.db, clinic_id)
            .await?
            .ok_or_else(|| Error::not_found("clinic"))?;
        let list = billing::list(
            &s.db,
            &user.actor,
            clinic_id,
            &InvoiceQuery {
                status: q.status,
                patient_id: None,
            },
        )
        .await?;
        let rows: Vec<Shown> = list.into_iter().map(shown).collect();
        let mut c = Context::new();
        c.insert("clinic", &clinic);
        c.insert("invoices", &rows);
        c.insert("status", &q.status);
        c.insert(
            "appointment",
            &appointment.map(|a| {
                serde_json::json!({"id": a.id, "patient": a.patient_name, "doctor": a.doctor_name,
                    "when": a.starts_at.with_timezone(&a.time_zone.tz()).format("%Y-%m-%d %H:%M").to_string()})
            }),
        );
        Ok::<_, Error>(c)
    };
    match page.await {
        Ok(c) => render("invoices.html", "Invoices", service(&s), Some(&user), c),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

/// A new draft for a visit, with an optional extra line.
pub async fn create(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let clinic: Uuid = f
            .get("clinic")
            .parse()
            .map_err(|_| Error::new(Code::ValidationFailed, "clinic: which clinic?"))?;
        let mut lines = Vec::new();
        let description = f.get("description").trim();
        if !description.is_empty() {
            lines.push(LineForm {
                kind: LineKind::Other,
                description: description.to_owned(),
                quantity: f.get("quantity").trim().parse().unwrap_or(1),
                unit_cents: amount("unit_price", f.get("unit_price"))?,
                discount_cents: match f.get("discount").trim() {
                    "" => 0,
                    d => amount("discount", d)?,
                },
            });
        }
        let form = DraftForm {
            appointment_id: f.get("appointment").parse().ok(),
            visit_type: Some(f.get("visit_type").trim().to_owned()).filter(|v| !v.is_empty()),
            lines,
            ..DraftForm::default()
        };
        let inv = billing::create_draft(&s.db, &user.actor, clinic, form).await?;
        Ok(format!("/invoices/{}", inv.id))
    })
    .await
}

/// The invoice's page: printable; with the desk's actions for those who bill.
pub async fn page(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
) -> Response {
    let page = async {
        let inv = billing::get(&s.db, &user.actor, id).await?;
        let bills = billing::require_billing_of(&user.actor, inv.clinic_id).is_ok();
        let clinic = clinics::get(&s.db, inv.clinic_id)
            .await?
            .ok_or_else(|| Error::not_found("clinic"))?;
        let mut c = Context::new();
        c.insert("clinic", &clinic);
        c.insert("has_logo", &clinic.logo_path.is_some());
        c.insert("bills", &bills);
        c.insert("methods", PaymentMethod::ALL);
        c.insert("shown", &shown(inv));
        Ok::<_, Error>(c)
    };
    match page.await {
        Ok(c) => render("invoice.html", "Invoice", service(&s), Some(&user), c),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

/// Issue, delete (a draft), pay, or void by a credit note.
pub async fn action(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path((id, what)): Path<(Uuid, String)>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        match what.as_str() {
            "issue" => {
                billing::issue(&s.db, s.files.as_ref(), &user.actor, id).await?;
            }
            "delete" => {
                let inv = billing::get(&s.db, &user.actor, id).await?;
                billing::delete_draft(&s.db, &user.actor, id).await?;
                return Ok(format!("/desk/invoices?clinic={}", inv.clinic_id));
            }
            "pay" => {
                let method: PaymentMethod = f.get("method").parse().map_err(|e: String| {
                    Error::new(Code::ValidationFailed, format!("method: {e}"))
                })?;
                let amount = amount("amount", f.get("amount"))?;
                let payment = PaymentForm {
                    method,
                    amount_cents: amount,
                    paid_on: None,
                    reference: f.get("reference").to_owned(),
                };
                billing::pay(&s.db, &user.actor, id, payment).await?;
            }
            "credit" => {
                let note = billing::credit(&s.db, &user.actor, id, f.get("reason")).await?;
                return Ok(format!("/invoices/{}", note.id));
            }
            _ => return Err(Error::not_found("action")),
        }
        Ok(format!("/invoices/{id}"))
    })
    .await
}

/// What a patient's portal lists: their issued invoices, amounts written out.
pub async fn mine_for_portal(
    s: &AppState,
    actor: &crate::domain::actor::Actor,
) -> Result<Vec<serde_json::Value>> {
    Ok(billing::mine(&s.db, actor)
        .await?
        .into_iter()
        .map(|i| {
            serde_json::json!({"id": i.id, "number": i.number, "kind": i.kind, "status": i.status, "clinic": i.clinic_name,
                "currency": i.currency, "total": money(i.total_cents), "balance": money(i.balance_cents),
                "owed": i.balance_cents > 0, "issued_at": i.issued_at})
        })
        .collect())
}

/// The invoice's PDF, for those who may read it.
pub async fn pdf(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
) -> Response {
    match billing::pdf_of(&s.db, s.files.as_ref(), &user.actor, id).await {
        Ok((name, bytes)) => crate::http::billing::pdf_response(&name, bytes),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}
