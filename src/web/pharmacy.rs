//! The pharmacist's pages (`/pharmacy`): alerts, the catalogue with stock, receiving a
//! delivery, a medicine's batches with adjustments and its ledger, finding a patient with
//! prescriptions to dispense, dispensing them, and over-the-counter sales. Clinic admins
//! see the pages and keep the catalogue; stock moves only by pharmacists. Every action is
//! the API's domain call.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::NaiveDate;
use serde::Deserialize;
use tera::Context;
use uuid::Uuid;

use crate::domain::actor::Role;
use crate::domain::clinics::{self, Clinic};
use crate::domain::pharmacy::{
    self, Adjustment, Delivery, MedicineForm, Movement, alerts, dispensing,
};
use crate::error::{Code, Error, Result};
use crate::state::AppState;
use crate::web::pages::{Fields, act, error_page, render};
use crate::web::session::{ConsoleUser, SignedIn};

fn service(s: &AppState) -> &str {
    &s.config.agent.service_name
}

/// Whether the pharmacy belongs in this person's navigation.
pub fn works_a_pharmacy(user: &ConsoleUser) -> bool {
    user.principal
        .grants
        .iter()
        .any(|g| g.role == Role::Pharmacist && g.clinic_id.is_some())
}

/// The clinics whose pharmacy this person works or runs.
async fn pharmacy_clinics(s: &AppState, user: &ConsoleUser) -> Result<Vec<Clinic>> {
    if user.is_system_admin() {
        return clinics::list_all(&s.db, &user.actor).await;
    }
    let mut mine: Vec<Clinic> = Vec::new();
    for g in &user.principal.grants {
        if let (Role::Pharmacist | Role::ClinicAdmin, Some(id)) = (g.role, g.clinic_id)
            && !mine.iter().any(|c| c.id == id)
            && let Some(c) = clinics::get(&s.db, id).await?
        {
            mine.push(c);
        }
    }
    mine.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(mine)
}

#[derive(Deserialize, Default)]
pub struct PharmacyQuery {
    clinic: Option<Uuid>,
    /// A patient's name to find.
    q: Option<String>,
    patient: Option<Uuid>,
    done: Option<String>,
}

fn flash(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "added" => "The medicine is in the catalogue.",
        "received" => "The delivery is on the shelf.",
        "adjusted" => "The batch is corrected.",
        "dispensed" => "Dispensed.",
        "sold" => "Sold.",
        "saved" => "Saved.",
        _ => return None,
    })
}

pub async fn home(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Query(q): Query<PharmacyQuery>,
) -> Response {
    let page = async {
        let all = pharmacy_clinics(&s, &user).await?;
        let clinic = match q.clinic {
            Some(id) => all.iter().find(|c| c.id == id).cloned(),
            None => all.first().cloned(),
        }
        .ok_or_else(Error::forbidden)?;
        let catalogue = pharmacy::catalogue(&s.db, &user.actor, clinic.id).await?;
        let now = alerts::list(&s.db, &user.actor, clinic.id, None).await?;
        let pharmacist = pharmacy::require_pharmacist_of(&user.actor, clinic.id).is_ok();
        let mut c = Context::new();
        if pharmacist {
            let found = match q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                Some(text) => {
                    Some(dispensing::find_patients(&s.db, &user.actor, clinic.id, text).await?)
                }
                None => None,
            };
            c.insert("found", &found);
            let rx = match q.patient {
                Some(p) => Some(
                    dispensing::prescriptions_of(&s.db, &user.actor, clinic.id, p)
                        .await?
                        .into_iter()
                        .map(|rx| {
                            // The catalogue entry whose name the prescription names.
                            let named = rx.medicine.to_lowercase();
                            let suggested = catalogue
                                .iter()
                                .filter(|m| m.active)
                                .find(|m| {
                                    let name = m.name.to_lowercase();
                                    named.contains(&name) || name.contains(&named)
                                })
                                .map(|m| m.id);
                            serde_json::json!({"rx": rx, "suggested": suggested})
                        })
                        .collect::<Vec<_>>(),
                ),
                None => None,
            };
            c.insert("prescriptions", &rx);
        } else {
            c.insert("found", &None::<()>);
            c.insert("prescriptions", &None::<()>);
        }
        c.insert("clinics", &all);
        c.insert("clinic", &clinic);
        let prices: Vec<String> = catalogue
            .iter()
            .map(|m| {
                format!(
                    "{} {}",
                    crate::domain::billing::money(m.unit_price_cents),
                    m.currency
                )
            })
            .collect();
        c.insert("prices", &prices);
        // What the shelf is worth (unexpired stock), at cost and at price.
        let worth = |per: fn(&pharmacy::Medicine) -> i64| {
            crate::domain::billing::money(catalogue.iter().map(|m| m.on_hand * per(m)).sum())
        };
        c.insert("worth_cost", &worth(|m| m.unit_cost_cents));
        c.insert("worth_price", &worth(|m| m.unit_price_cents));
        c.insert(
            "worth_currency",
            &catalogue.first().map_or("", |m| m.currency.as_str()),
        );
        c.insert("medicines", &catalogue);
        c.insert("alerts", &now);
        c.insert("pharmacist", &pharmacist);
        c.insert("q", &q.q.clone().unwrap_or_default());
        c.insert("patient", &q.patient);
        c.insert("flash", &flash(q.done.as_deref()));
        Ok::<_, Error>(c)
    };
    match page.await {
        Ok(c) => render("pharmacy.html", "Pharmacy", service(&s), Some(&user), c),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

pub async fn medicine_page(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    Query(q): Query<PharmacyQuery>,
) -> Response {
    let page = async {
        let m = pharmacy::medicine(&s.db, &user.actor, id).await?;
        let batches = pharmacy::batches(&s.db, &user.actor, id).await?;
        let moves = pharmacy::ledger(&s.db, &user.actor, m.clinic_id, Some(id), 100).await?;
        let mut c = Context::new();
        c.insert(
            "pharmacist",
            &pharmacy::require_pharmacist_of(&user.actor, m.clinic_id).is_ok(),
        );
        c.insert("medicine", &m);
        c.insert("batches", &batches);
        c.insert("moves", &moves);
        c.insert("flash", &flash(q.done.as_deref()));
        Ok::<_, Error>(c)
    };
    match page.await {
        Ok(c) => render("medicine.html", "Medicine", service(&s), Some(&user), c),
        Err(e) => error_page(&e, service(&s), Some(&user)),
    }
}

fn uuid_field(f: &Fields, name: &str) -> Result<Uuid> {
    f.get(name)
        .parse()
        .map_err(|_| Error::new(Code::ValidationFailed, format!("{name}: which one?")))
}

fn number(f: &Fields, name: &str) -> Result<i64> {
    f.get(name)
        .trim()
        .parse()
        .map_err(|_| Error::new(Code::ValidationFailed, format!("{name}: a whole number")))
}

fn cents(f: &Fields, name: &str) -> Result<i64> {
    crate::web::setup::amount(name, f.get(name))
}

fn medicine_form(f: &Fields) -> Result<MedicineForm> {
    Ok(MedicineForm {
        name: f.get("name").to_owned(),
        generic_name: f.get("generic_name").to_owned(),
        form: f.get("form").to_owned(),
        strength: f.get("strength").to_owned(),
        dosage_guidance: f.get("dosage_guidance").to_owned(),
        unit: f.get("unit").to_owned(),
        unit_cost_cents: cents(f, "unit_cost")?,
        unit_price_cents: cents(f, "unit_price")?,
        currency: Some(f.get("currency").trim().to_uppercase()).filter(|c| !c.is_empty()),
        prescription_only: f.get("prescription_only") == "yes",
        low_stock_threshold: match f.get("low_stock_threshold").trim() {
            "" => 0,
            _ => number(f, "low_stock_threshold")?,
        },
        active: f.get("retired") != "yes",
    })
}

pub async fn add_medicine(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let clinic = uuid_field(&f, "clinic")?;
        pharmacy::add_medicine(&s.db, &user.actor, clinic, medicine_form(&f)?).await?;
        Ok(format!("/pharmacy?clinic={clinic}&done=added"))
    })
    .await
}

pub async fn update_medicine(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        pharmacy::update_medicine(&s.db, &user.actor, id, medicine_form(&f)?).await?;
        Ok(format!("/pharmacy/medicines/{id}?done=saved"))
    })
    .await
}

pub async fn receive(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let expiry = NaiveDate::parse_from_str(f.get("expiry_date").trim(), "%Y-%m-%d")
            .map_err(|_| Error::new(Code::ValidationFailed, "expiry_date: a date"))?;
        let delivery = Delivery {
            batch_number: f.get("batch_number").to_owned(),
            expiry_date: expiry,
            quantity: number(&f, "quantity")?,
            location: f.get("location").to_owned(),
        };
        pharmacy::receive(&s.db, &user.actor, id, delivery).await?;
        Ok(format!("/pharmacy/medicines/{id}?done=received"))
    })
    .await
}

pub async fn adjust(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    Path(id): Path<Uuid>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let kind: Movement = f
            .get("kind")
            .parse()
            .map_err(|e: String| Error::new(Code::ValidationFailed, format!("kind: {e}")))?;
        let a = Adjustment {
            kind,
            quantity: number(&f, "quantity")?,
            reason: f.get("reason").to_owned(),
        };
        let b = pharmacy::adjust(&s.db, &user.actor, id, a).await?;
        Ok(format!(
            "/pharmacy/medicines/{}?done=adjusted",
            b.medicine_id
        ))
    })
    .await
}

pub async fn dispense(
    State(s): State<AppState>,
    SignedIn(user): SignedIn,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    act(service(&s), &user, f.get("csrf"), async {
        let clinic = uuid_field(&f, "clinic")?;
        let prescription = f.get("prescription").parse().ok();
        let form = dispensing::DispenseForm {
            medicine_id: uuid_field(&f, "medicine")?,
            quantity: number(&f, "quantity")?,
            prescription_id: prescription,
        };
        let d = dispensing::dispense(&s.db, &user.actor, clinic, form).await?;
        Ok(match d.patient_id {
            Some(p) => format!("/pharmacy?clinic={clinic}&patient={p}&done=dispensed"),
            None => format!("/pharmacy?clinic={clinic}&done=sold"),
        })
    })
    .await
}
