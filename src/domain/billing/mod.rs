//! Billing: invoices per visit and for pharmacy sales, in the clinic's currency and in
//! integer minor units. A draft gathers lines (the consultation from the price list, the
//! visit's dispensed medicines, other items), each with a discount and the clinic's tax
//! rate for its kind; issuing gives it the clinic's next number for the year (gap-free:
//! the counter is taken in the issuing transaction) and freezes it. Payments (partial
//! ones too) until it is paid; an issued invoice is voided only by a credit note that
//! names it. Its clinic's front desk, admins and pharmacists bill; the patient reads their
//! issued invoices.

pub mod lab_prices;
pub mod pdf;
pub mod report;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Db, Tx};
use crate::domain::actor::{Actor, Role};
use crate::domain::audit::{self, Entry};
use crate::domain::clinics::{self, doctors, prices};
use crate::domain::validate::Checks;
use crate::error::{Code, Error, Result};
use crate::storage::FileStore;
use crate::{on_db, on_tx};

crate::text_enum! {
    /// Where an invoice is in its life.
    pub enum InvoiceStatus {
        Draft = "draft",
        Issued = "issued",
        Paid = "paid",
        Void = "void",
    }
}

crate::text_enum! {
    /// An invoice, or a credit note voiding one.
    pub enum InvoiceKind {
        Invoice = "invoice",
        CreditNote = "credit_note",
    }
}

crate::text_enum! {
    /// What a line bills; the clinic's tax rate of the same name applies to it.
    pub enum LineKind {
        Consultation = "consultation",
        Medicine = "medicine",
        LabTest = "lab_test",
        Other = "other",
    }
}

crate::text_enum! {
    /// How a payment was made.
    pub enum PaymentMethod {
        Cash = "cash",
        Card = "card",
        Transfer = "transfer",
        Insurance = "insurance",
        Other = "other",
    }
}

/// Minor units written as a decimal amount: `6005` → `60.05`, `-5` → `-0.05`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// Who bills at a clinic: its front desk, admins and pharmacists.
pub fn require_billing_of(actor: &Actor, clinic_id: Uuid) -> Result<()> {
    if clinics::require_staff_of(actor, clinic_id).is_ok()
        || actor.principal()?.has_role_in(Role::Pharmacist, clinic_id)
    {
        Ok(())
    } else {
        Err(Error::forbidden())
    }
}

/// A tax rate, e.g. `consultation` at 0 or `medicine` at 600 (6 %).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct TaxRate {
    /// A line kind (`consultation`, `medicine`, `lab_test`, `other`): lines of that kind
    /// are taxed at it.
    pub name: String,
    /// Basis points: 2300 is 23 %.
    #[schema(minimum = 0, maximum = 10000)]
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    pub rate_bp: i64,
}

pub async fn tax_rates(db: &Db, clinic_id: Uuid) -> Result<Vec<TaxRate>> {
    const SQL: &str = "SELECT name, rate_bp FROM tax_rates WHERE clinic_id = $1 ORDER BY name";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, TaxRate>(SQL)
        .bind(clinic_id)
        .fetch_all(pool)
        .await)?)
}

/// Replaces the clinic's tax rates (its admins), audited.
pub async fn set_tax_rates(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    rates: Vec<TaxRate>,
) -> Result<Vec<TaxRate>> {
    clinics::require_admin_of(actor, clinic_id)?;
    clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let mut checks = Checks::new();
    for (i, r) in rates.iter().enumerate() {
        if r.name.parse::<LineKind>().is_err() {
            checks.fail(
                &format!("rates[{i}].name"),
                "must be consultation, medicine, lab_test or other",
            );
        }
        if !(0..=10_000).contains(&r.rate_bp) {
            checks.fail(
                &format!("rates[{i}].rate_bp"),
                "must be between 0 and 10000",
            );
        }
        if rates[..i].iter().any(|o| o.name == r.name) {
            checks.fail(&format!("rates[{i}].name"), "given twice");
        }
    }
    checks.finish()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    crate::exec_tx!(
        &mut tx,
        "DELETE FROM tax_rates WHERE clinic_id = $1",
        clinic_id
    )?;
    for r in &rates {
        crate::exec_tx!(
            &mut tx,
            "INSERT INTO tax_rates (id, clinic_id, name, rate_bp, created_at) VALUES ($1, $2, $3, $4, $5)",
            Uuid::now_v7(),
            clinic_id,
            &r.name,
            r.rate_bp,
            now
        )?;
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "billing.tax_rates_set",
            subject: format!("clinic:{clinic_id}"),
            clinic_id: Some(clinic_id),
            details: json!({"rates": rates.iter().map(|r| json!({"name": r.name, "rate_bp": r.rate_bp})).collect::<Vec<_>>()}),
        },
    )
    .await?;
    tx.commit().await?;
    tax_rates(db, clinic_id).await
}

/// A line as the desk enters it.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineForm {
    pub kind: LineKind,
    pub description: String,
    #[serde(
        default = "one",
        deserialize_with = "crate::domain::validate::whole_number"
    )]
    #[schema(minimum = 1, maximum = 10000)]
    pub quantity: i64,
    /// Price of one, in minor units.
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    #[schema(minimum = 0, maximum = 100000000)]
    pub unit_cents: i64,
    /// Taken off the line before tax, in minor units (at most the line's amount).
    #[serde(default, deserialize_with = "crate::domain::validate::whole_number")]
    #[schema(minimum = 0, maximum = 100000000)]
    pub discount_cents: i64,
}

fn one() -> i64 {
    1
}

/// A new draft.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftForm {
    /// Whom it is for (a patient the clinic knows); taken from the visit when absent.
    pub patient_id: Option<Uuid>,
    /// The visit billed: its consultation becomes a line, priced from the price list.
    pub appointment_id: Option<Uuid>,
    /// The price list's visit type for the consultation (default `consultation`; the
    /// doctor's fee when the list has no such price).
    pub visit_type: Option<String>,
    /// Dispensings of this clinic to bill (each on one live invoice at most).
    #[serde(default)]
    pub dispensing_ids: Vec<Uuid>,
    /// Lab orders of this clinic to bill at its lab prices (each on one live invoice at
    /// most). Absent with a visit: the visit's lab orders not yet billed that have a price.
    #[serde(default)]
    pub lab_order_ids: Option<Vec<Uuid>>,
    #[serde(default)]
    pub lines: Vec<LineForm>,
    /// The name and address on the invoice (default: the patient's name).
    #[serde(default)]
    pub bill_to: String,
    #[serde(default)]
    pub note: String,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Line {
    pub position: i64,
    pub kind: LineKind,
    pub description: String,
    pub quantity: i64,
    pub unit_cents: i64,
    pub discount_cents: i64,
    pub tax_rate_bp: i64,
    pub net_cents: i64,
    pub tax_cents: i64,
    pub total_cents: i64,
    pub dispensing_id: Option<Uuid>,
    pub lab_order_id: Option<Uuid>,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Payment {
    pub id: Uuid,
    pub method: PaymentMethod,
    pub amount_cents: i64,
    pub paid_on: NaiveDate,
    pub reference: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Invoice {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub clinic_name: String,
    pub kind: InvoiceKind,
    pub status: InvoiceStatus,
    /// e.g. `LIS-2026-000123`, once issued.
    pub number: Option<String>,
    /// The invoice a credit note voids.
    pub credits: Option<Uuid>,
    pub patient_id: Option<Uuid>,
    pub appointment_id: Option<Uuid>,
    pub bill_to: String,
    pub currency: String,
    pub subtotal_cents: i64,
    pub discount_cents: i64,
    pub tax_cents: i64,
    pub total_cents: i64,
    pub paid_cents: i64,
    pub note: String,
    pub issued_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[sqlx(skip)]
    pub lines: Vec<Line>,
    #[sqlx(skip)]
    pub payments: Vec<Payment>,
    /// What is still owed.
    #[sqlx(skip)]
    pub balance_cents: i64,
}

impl Invoice {
    /// With what is still owed: the unpaid part of an issued invoice, else nothing.
    fn with_balance(mut self) -> Self {
        self.balance_cents = match (self.kind, self.status) {
            (InvoiceKind::Invoice, InvoiceStatus::Issued) => self.total_cents - self.paid_cents,
            _ => 0,
        };
        self
    }
}

/// Tax on a net amount, rounded half away from zero (integer arithmetic).
fn tax_of(net: i64, bp: i64) -> i64 {
    let raw = net * bp;
    if raw >= 0 {
        (raw + 5_000) / 10_000
    } else {
        -((-raw + 5_000) / 10_000)
    }
}

struct NewLine {
    kind: LineKind,
    description: String,
    quantity: i64,
    unit_cents: i64,
    discount_cents: i64,
    dispensing_id: Option<Uuid>,
    lab_order_id: Option<Uuid>,
}

/// The lines of live invoices (not void, not credit notes) that meet `$cond`: what is
/// billed already.
macro_rules! live_lines {
    ($cond:literal) => {
        concat!(
            "FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id WHERE ",
            $cond,
            " AND i.status <> 'void' AND i.kind = 'invoice'"
        )
    };
}

macro_rules! select_invoices {
    ($rest:literal) => {
        concat!(
            "SELECT i.id, i.clinic_id, c.name AS clinic_name, i.kind, i.status, i.number, i.credits, i.patient_id, i.appointment_id, \
             i.bill_to, i.currency, i.subtotal_cents, i.discount_cents, i.tax_cents, i.total_cents, i.paid_cents, i.note, i.issued_at, i.created_at \
             FROM invoices i JOIN clinics c ON c.id = i.clinic_id ",
            $rest
        )
    };
}

async fn load(db: &Db, id: Uuid) -> Result<Invoice> {
    const SQL: &str = select_invoices!("WHERE i.id = $1");
    let mut inv: Invoice = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?
    .ok_or_else(|| Error::not_found("invoice"))?;
    const LINES: &str = "SELECT position, kind, description, quantity, unit_cents, discount_cents, tax_rate_bp, net_cents, tax_cents, total_cents, dispensing_id, lab_order_id \
        FROM invoice_lines WHERE invoice_id = $1 ORDER BY position";
    inv.lines = on_db!(db, |pool| sqlx::query_as(LINES)
        .bind(id)
        .fetch_all(pool)
        .await)?;
    const PAYMENTS: &str = "SELECT id, method, amount_cents, paid_on, reference, created_at FROM payments WHERE invoice_id = $1 ORDER BY created_at";
    inv.payments = on_db!(db, |pool| sqlx::query_as(PAYMENTS)
        .bind(id)
        .fetch_all(pool)
        .await)?;
    Ok(inv.with_balance())
}

/// An invoice for someone who may bill at its clinic, or for its patient once issued;
/// to anyone else it does not exist.
pub async fn get(db: &Db, actor: &Actor, id: Uuid) -> Result<Invoice> {
    let inv = load(db, id).await?;
    let me = actor.principal()?.user_id;
    let patients = inv.patient_id == Some(me) && inv.status != InvoiceStatus::Draft;
    if patients || require_billing_of(actor, inv.clinic_id).is_ok() {
        Ok(inv)
    } else {
        Err(Error::not_found("invoice"))
    }
}

/// The consultation's price: the price list's for the doctor and visit type, else the
/// clinic-wide one, else the doctor's fee.
pub async fn consultation_price(
    db: &Db,
    clinic_id: Uuid,
    doctor_id: Uuid,
    visit_type: &str,
) -> Result<(i64, String)> {
    let list = prices::list(db, clinic_id).await?;
    let price = list
        .iter()
        .find(|p| p.visit_type == visit_type && p.doctor_id == Some(doctor_id))
        .or_else(|| {
            list.iter()
                .find(|p| p.visit_type == visit_type && p.doctor_id.is_none())
        });
    match price {
        Some(p) => Ok((p.amount_cents, p.currency.clone())),
        None => {
            let d = doctors::find(db, doctor_id).await?;
            Ok((d.fee_cents, d.currency))
        }
    }
}

/// Opens a draft (the clinic's front desk, admins and pharmacists), audited.
pub async fn create_draft(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    f: DraftForm,
) -> Result<Invoice> {
    require_billing_of(actor, clinic_id)?;
    clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let mut checks = Checks::new();
    let mut lines: Vec<NewLine> = Vec::new();
    let mut patient_id = f.patient_id;
    let mut currency: Option<String> = None;
    if let Some(a) = f.appointment_id {
        let appointment = crate::domain::scheduling::appointments::get(db, actor, a).await?;
        if appointment.clinic_id != clinic_id {
            return Err(Error::not_found("appointment"));
        }
        if patient_id.is_some_and(|p| p != appointment.patient_id) {
            checks.fail("patient_id", "is not the visit's patient");
        }
        patient_id = Some(appointment.patient_id);
        let visit_type = f.visit_type.as_deref().unwrap_or("consultation");
        let (cents, cur) =
            consultation_price(db, clinic_id, appointment.doctor_id, visit_type).await?;
        currency = Some(cur);
        let local = appointment
            .starts_at
            .with_timezone(&appointment.time_zone.tz());
        lines.push(NewLine {
            kind: LineKind::Consultation,
            description: format!(
                "Consultation ({}) with {}, {}",
                visit_type.replace('_', " "),
                appointment.doctor_name,
                local.format("%Y-%m-%d %H:%M")
            ),
            quantity: 1,
            unit_cents: cents,
            discount_cents: 0,
            dispensing_id: None,
            lab_order_id: None,
        });
    }
    for d in &f.dispensing_ids {
        #[derive(sqlx::FromRow)]
        struct Given {
            clinic_id: Uuid,
            patient_id: Option<Uuid>,
            quantity: i64,
            name: String,
            strength: String,
            unit_price_cents: i64,
            currency: String,
        }
        const SQL: &str = "SELECT x.clinic_id, x.patient_id, x.quantity, m.name, m.strength, m.unit_price_cents, m.currency \
            FROM dispensings x JOIN medicines m ON m.id = x.medicine_id WHERE x.id = $1";
        let given: Option<Given> = on_db!(db, |pool| sqlx::query_as(SQL)
            .bind(d)
            .fetch_optional(pool)
            .await)?;
        match given {
            Some(g) if g.clinic_id == clinic_id => {
                if let (Some(p), Some(gp)) = (patient_id, g.patient_id)
                    && p != gp
                {
                    checks.fail("dispensing_ids", "a dispensing is for another patient");
                }
                patient_id = patient_id.or(g.patient_id);
                currency.get_or_insert(g.currency);
                lines.push(NewLine {
                    kind: LineKind::Medicine,
                    description: format!("{} {}", g.name, g.strength).trim().to_owned(),
                    quantity: g.quantity,
                    unit_cents: g.unit_price_cents,
                    discount_cents: 0,
                    dispensing_id: Some(*d),
                    lab_order_id: None,
                });
            }
            _ => checks.fail(
                "dispensing_ids",
                format!("{d} is not a dispensing of this clinic"),
            ),
        }
    }
    let lab_ids = lab_orders_to_bill(db, &f).await?;
    for (i, (o, named)) in lab_ids.iter().enumerate() {
        match lab_line(db, clinic_id, *o).await? {
            LabLine::Line(l, patient, cur) => {
                if patient_id.is_some_and(|p| p != patient) {
                    checks.fail("lab_order_ids", "a lab order is for another patient");
                }
                patient_id = patient_id.or(Some(patient));
                currency.get_or_insert(cur);
                lines.push(l);
            }
            LabLine::Unpriced(name) if *named => checks.fail(
                &format!("lab_order_ids[{i}]"),
                format!("{name} has no lab price at this clinic"),
            ),
            LabLine::Unpriced(_) => {}
            LabLine::NotHere => checks.fail(
                &format!("lab_order_ids[{i}]"),
                format!("{o} is not a lab order of this clinic"),
            ),
        }
    }
    for (i, l) in f.lines.iter().enumerate() {
        let field = format!("lines[{i}]");
        let description = checks.line(&format!("{field}.description"), &l.description, 1, 200);
        if !(1..=10_000).contains(&l.quantity) {
            checks.fail(&format!("{field}.quantity"), "must be between 1 and 10000");
        }
        if !(0..=100_000_000).contains(&l.unit_cents) {
            checks.fail(
                &format!("{field}.unit_cents"),
                "must be between 0 and 100000000",
            );
        }
        if l.discount_cents < 0 || l.discount_cents > l.unit_cents.saturating_mul(l.quantity) {
            checks.fail(
                &format!("{field}.discount_cents"),
                "must be between 0 and the line's amount",
            );
        }
        lines.push(NewLine {
            kind: l.kind,
            description,
            quantity: l.quantity,
            unit_cents: l.unit_cents,
            discount_cents: l.discount_cents,
            dispensing_id: None,
            lab_order_id: None,
        });
    }
    if lines.is_empty() {
        checks.fail(
            "lines",
            "an invoice bills something: a visit, dispensings or lines",
        );
    }
    if lines.len() > 200 {
        checks.fail("lines", "at most 200 lines");
    }
    let note = checks.text("note", &f.note, 0, 1000);
    let mut bill_to = checks.text("bill_to", &f.bill_to, 0, 500);
    if let Some(p) = patient_id
        && !clinics::patients::knows_now(db, clinic_id, p).await?
    {
        checks.fail("patient_id", "is not a patient of this clinic");
    }
    checks.finish()?;
    if bill_to.is_empty()
        && let Some(p) = patient_id
        && let Some(u) = crate::domain::identity::people::find(db, p).await?
    {
        bill_to = u.display_name;
    }
    let currency = currency.unwrap_or_else(|| "EUR".into());
    let rates = tax_rates(db, clinic_id).await?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let mut tx = db.begin().await?;
    // A dispensing or a lab order is billed once: on no other invoice that is not void.
    for l in &lines {
        const DISPENSING: &str = concat!("SELECT COUNT(*) ", live_lines!("l.dispensing_id = $1"));
        const LAB: &str = concat!("SELECT COUNT(*) ", live_lines!("l.lab_order_id = $1"));
        let (sql, what, item) = match (l.dispensing_id, l.lab_order_id) {
            (Some(d), _) => (DISPENSING, "A dispensing", d),
            (_, Some(o)) => (LAB, "A lab order", o),
            _ => continue,
        };
        let (n,): (i64,) = on_tx!(&mut tx, |conn| sqlx::query_as(sql)
            .bind(item)
            .fetch_one(&mut *conn)
            .await)?;
        if n > 0 {
            return Err(Error::new(
                Code::Conflict,
                format!("{what} is already on another invoice."),
            ));
        }
    }
    const INVOICE: &str = "INSERT INTO invoices (id, clinic_id, kind, status, patient_id, appointment_id, bill_to, currency, note, created_by, created_at, updated_at) \
        VALUES ($1, $2, 'invoice', 'draft', $3, $4, $5, $6, $7, $8, $9, $9)";
    crate::exec_tx!(
        &mut tx,
        INVOICE,
        id,
        clinic_id,
        patient_id,
        f.appointment_id,
        &bill_to,
        &currency,
        &note,
        actor.user_id(),
        now
    )?;
    write_lines(&mut tx, id, &lines, &rates, 1).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "invoice.drafted",
            subject: format!("invoice:{id}"),
            clinic_id: Some(clinic_id),
            details: json!({"lines": lines.len(), "appointment": f.appointment_id, "patient": patient_id}),
        },
    )
    .await?;
    tx.commit().await?;
    load(db, id).await
}

/// The lab orders a draft bills, each with whether it was named (rather than taken from
/// the visit).
async fn lab_orders_to_bill(db: &Db, f: &DraftForm) -> Result<Vec<(Uuid, bool)>> {
    match (&f.lab_order_ids, f.appointment_id) {
        (Some(ids), _) => {
            let mut seen = std::collections::HashSet::new();
            if ids.iter().any(|o| !seen.insert(*o)) {
                let mut checks = Checks::new();
                checks.fail("lab_order_ids", "names a lab order more than once");
                checks.finish()?;
            }
            Ok(ids.iter().map(|o| (*o, true)).collect())
        }
        (None, Some(a)) => {
            const SQL: &str = concat!(
                "SELECT o.id FROM lab_orders o JOIN visit_records r ON r.id = o.record_id \
                 WHERE r.appointment_id = $1 AND o.deleted_at IS NULL AND r.deleted_at IS NULL AND NOT EXISTS (SELECT 1 ",
                live_lines!("l.lab_order_id = o.id"),
                ") ORDER BY o.created_at, o.id"
            );
            let ids: Vec<(Uuid,)> =
                on_db!(db, |pool| sqlx::query_as(SQL).bind(a).fetch_all(pool).await)?;
            Ok(ids.into_iter().map(|(o,)| (o, false)).collect())
        }
        (None, None) => Ok(Vec::new()),
    }
}

enum LabLine {
    /// The line, the order's patient and the price's currency.
    Line(NewLine, Uuid, String),
    /// The test's name: the clinic has no price for it.
    Unpriced(String),
    NotHere,
}

/// A lab order of the clinic as a line at the clinic's price for its test.
async fn lab_line(db: &Db, clinic_id: Uuid, order: Uuid) -> Result<LabLine> {
    #[derive(sqlx::FromRow)]
    struct Ordered {
        clinic_id: Uuid,
        patient_id: Uuid,
        test_code: String,
        test_name: String,
    }
    const SQL: &str = "SELECT clinic_id, patient_id, test_code, test_name FROM lab_orders WHERE id = $1 AND deleted_at IS NULL";
    let ordered: Option<Ordered> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(order)
        .fetch_optional(pool)
        .await)?;
    let Some(o) = ordered.filter(|o| o.clinic_id == clinic_id) else {
        return Ok(LabLine::NotHere);
    };
    Ok(
        match lab_prices::price_of(db, clinic_id, &o.test_code).await? {
            Some(p) => LabLine::Line(
                NewLine {
                    kind: LineKind::LabTest,
                    description: format!("Lab test: {}", o.test_name),
                    quantity: 1,
                    unit_cents: p.amount_cents,
                    discount_cents: 0,
                    dispensing_id: None,
                    lab_order_id: Some(order),
                },
                o.patient_id,
                p.currency,
            ),
            None => LabLine::Unpriced(o.test_name),
        },
    )
}

/// Writes lines (their tax at the clinic's rate for their kind, `sign` +1 or −1) and the
/// invoice's totals.
async fn write_lines(
    tx: &mut Tx,
    invoice: Uuid,
    lines: &[NewLine],
    rates: &[TaxRate],
    sign: i64,
) -> Result<()> {
    let (mut subtotal, mut discount, mut tax_total, mut total) = (0, 0, 0, 0);
    const LINE: &str = "INSERT INTO invoice_lines (id, invoice_id, position, kind, description, quantity, unit_cents, discount_cents, tax_rate_bp, \
        net_cents, tax_cents, total_cents, dispensing_id, lab_order_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
    for (i, l) in lines.iter().enumerate() {
        let bp = rates
            .iter()
            .find(|r| r.name == l.kind.as_str())
            .map_or(0, |r| r.rate_bp);
        let gross = sign * l.unit_cents * l.quantity;
        let disc = sign * l.discount_cents;
        let net = gross - disc;
        let tax = tax_of(net, bp);
        subtotal += gross;
        discount += disc;
        tax_total += tax;
        total += net + tax;
        crate::exec_tx!(
            tx,
            LINE,
            Uuid::now_v7(),
            invoice,
            i as i64 + 1,
            l.kind.as_str(),
            &l.description,
            l.quantity,
            sign * l.unit_cents,
            l.discount_cents,
            bp,
            net,
            tax,
            net + tax,
            l.dispensing_id,
            l.lab_order_id
        )?;
    }
    const TOTALS: &str = "UPDATE invoices SET subtotal_cents = $2, discount_cents = $3, tax_cents = $4, total_cents = $5 WHERE id = $1";
    crate::exec_tx!(tx, TOTALS, invoice, subtotal, discount, tax_total, total)?;
    Ok(())
}

/// The clinic's prefix for numbers: the first three letters of its name.
fn prefix(name: &str) -> String {
    let p: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(3)
        .collect::<String>()
        .to_uppercase();
    if p.is_empty() { "INV".into() } else { p }
}

/// Takes the clinic's next number for the year, inside the issuing transaction.
async fn next_number(
    tx: &mut Tx,
    clinic_id: Uuid,
    clinic_name: &str,
    year: i64,
) -> Result<(i64, String)> {
    const SQL: &str = "INSERT INTO invoice_counters (clinic_id, year, last_number) VALUES ($1, $2, 1) \
        ON CONFLICT (clinic_id, year) DO UPDATE SET last_number = invoice_counters.last_number + 1 RETURNING last_number";
    let (n,): (i64,) = on_tx!(tx, |conn| sqlx::query_as(SQL)
        .bind(clinic_id)
        .bind(year)
        .fetch_one(&mut *conn)
        .await)?;
    Ok((n, format!("{}-{year}-{n:06}", prefix(clinic_name))))
}

/// Issues a draft: the next number, and no more changes.
pub async fn issue(db: &Db, files: &dyn FileStore, actor: &Actor, id: Uuid) -> Result<Invoice> {
    let inv = load(db, id).await?;
    if require_billing_of(actor, inv.clinic_id).is_err() {
        return Err(Error::not_found("invoice"));
    }
    let clinic = clinics::get(db, inv.clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let now = Utc::now();
    let year = i64::from(now.with_timezone(&clinic.tz()).year());
    // Read before the transaction: the mailed PDF carries it.
    let logo = match inv.patient_id {
        Some(_) => logo_of(files, &clinic).await,
        None => None,
    };
    let mut tx = db.begin().await?;
    // Only a draft, once: the status is checked in the same statement that changes it.
    let (seq, number) = next_number(&mut tx, inv.clinic_id, &clinic.name, year).await?;
    const ISSUE: &str = "UPDATE invoices SET status = 'issued', number = $2, year = $3, sequence = $4, issued_at = $5, updated_at = $5 \
        WHERE id = $1 AND status = 'draft'";
    if crate::exec_tx!(&mut tx, ISSUE, id, &number, year, seq, now)? == 0 {
        return Err(Error::new(
            Code::InvalidTransition,
            "Only a draft is issued, once.",
        ));
    }
    // The patient gets it by mail, its PDF attached, in the same transaction.
    if let Some(patient) = inv.patient_id {
        let mut issued = inv.clone();
        issued.number = Some(number.clone());
        issued.status = InvoiceStatus::Issued;
        issued.issued_at = Some(now);
        let issued = issued.with_balance();
        let to = crate::notify::outbox::contact(&mut tx, patient).await?;
        let site = db.policy().site.as_deref();
        let news = crate::notify::messages::InvoiceNews {
            name: &to.display_name,
            clinic: &clinic.name,
            number: &number,
            total: format!("{} {}", money(inv.total_cents), inv.currency),
            link: site.map(|s| format!("{}/invoices/{id}", s.trim_end_matches('/'))),
        };
        let mut message: crate::notify::outbox::Message =
            crate::notify::messages::Kind::InvoiceIssued(&news)
                .render(to.language)?
                .into();
        message.attachment = Some(crate::notify::outbox::Attachment::new(
            &format!("{number}.pdf"),
            "application/pdf",
            &pdf::render(&issued, &clinic, logo.as_ref()),
        ));
        crate::notify::outbox::enqueue(
            &mut tx,
            db.policy(),
            "invoice_issued",
            &format!("invoice:{id}"),
            &to,
            &message,
            now,
        )
        .await?;
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "invoice.issued",
            subject: format!("invoice:{id}"),
            clinic_id: Some(inv.clinic_id),
            details: json!({"number": number, "total_cents": inv.total_cents}),
        },
    )
    .await?;
    tx.commit().await?;
    load(db, id).await
}

/// The invoice as PDF, for whoever may read it, with its file name.
pub async fn pdf_of(
    db: &Db,
    files: &dyn FileStore,
    actor: &Actor,
    id: Uuid,
) -> Result<(String, Vec<u8>)> {
    let inv = get(db, actor, id).await?;
    let clinic = clinics::get(db, inv.clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let name = format!("{}.pdf", inv.number.as_deref().unwrap_or("draft"));
    let logo = logo_of(files, &clinic).await;
    Ok((name, pdf::render(&inv, &clinic, logo.as_ref())))
}

/// The clinic's logo for its invoices; an invoice without it beats no invoice, so a logo
/// that cannot be read is logged and left out.
async fn logo_of(files: &dyn FileStore, clinic: &clinics::Clinic) -> Option<pdf::Logo> {
    let key = clinic.logo_path.as_deref()?;
    match files.get(key).await {
        Ok(Some(bytes)) => pdf::Logo::read(&bytes),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(key, error = %e, "reading a clinic's logo for an invoice failed");
            None
        }
    }
}

/// Deletes a draft (nothing was issued).
pub async fn delete_draft(db: &Db, actor: &Actor, id: Uuid) -> Result<()> {
    let inv = load(db, id).await?;
    if require_billing_of(actor, inv.clinic_id).is_err() {
        return Err(Error::not_found("invoice"));
    }
    let mut tx = db.begin().await?;
    crate::exec_tx!(
        &mut tx,
        "DELETE FROM invoice_lines WHERE invoice_id = $1 AND EXISTS (SELECT 1 FROM invoices WHERE id = $1 AND status = 'draft')",
        id
    )?;
    if crate::exec_tx!(
        &mut tx,
        "DELETE FROM invoices WHERE id = $1 AND status = 'draft'",
        id
    )? == 0
    {
        return Err(Error::new(
            Code::InvalidTransition,
            "An issued invoice stays; void it with a credit note.",
        ));
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "invoice.draft_deleted",
            subject: format!("invoice:{id}"),
            clinic_id: Some(inv.clinic_id),
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentForm {
    pub method: PaymentMethod,
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    #[schema(minimum = 1)]
    pub amount_cents: i64,
    /// Default today at the clinic.
    pub paid_on: Option<NaiveDate>,
    #[serde(default)]
    pub reference: String,
}

/// Records a payment of an issued invoice; paying in full makes it paid. More than is
/// owed is refused.
pub async fn pay(db: &Db, actor: &Actor, id: Uuid, f: PaymentForm) -> Result<Invoice> {
    let inv = load(db, id).await?;
    if require_billing_of(actor, inv.clinic_id).is_err() {
        return Err(Error::not_found("invoice"));
    }
    let mut checks = Checks::new();
    let reference = checks.line("reference", &f.reference, 0, 120);
    if f.amount_cents <= 0 {
        checks.fail("amount_cents", "must be more than 0");
    }
    // By default today at the clinic.
    let today = match clinics::get(db, inv.clinic_id).await? {
        Some(c) => Utc::now().with_timezone(&c.tz()).date_naive(),
        None => Utc::now().date_naive(),
    };
    let paid_on = f.paid_on.unwrap_or(today);
    crate::domain::validate::check_date(&mut checks, "paid_on", paid_on);
    checks.finish()?;
    if inv.kind != InvoiceKind::Invoice || inv.status != InvoiceStatus::Issued {
        return Err(Error::new(
            Code::InvalidTransition,
            format!(
                "This {} is {}: nothing to pay.",
                inv.kind.as_str().replace('_', " "),
                inv.status.as_str()
            ),
        ));
    }
    let now = Utc::now();
    let mut tx = db.begin().await?;
    // The amount is checked against what is owed in the statement that adds it.
    const ADD: &str = "UPDATE invoices SET paid_cents = paid_cents + $2, \
        status = CASE WHEN paid_cents + $2 = total_cents THEN 'paid' ELSE status END, updated_at = $3 \
        WHERE id = $1 AND status = 'issued' AND paid_cents + $2 <= total_cents";
    if crate::exec_tx!(&mut tx, ADD, id, f.amount_cents, now)? == 0 {
        return Err(Error::new(
            Code::Conflict,
            format!(
                "That is more than is owed ({} minor units).",
                inv.total_cents - inv.paid_cents
            ),
        ));
    }
    const PAYMENT: &str = "INSERT INTO payments (id, invoice_id, method, amount_cents, paid_on, reference, recorded_by, created_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    crate::exec_tx!(
        &mut tx,
        PAYMENT,
        Uuid::now_v7(),
        id,
        f.method.as_str(),
        f.amount_cents,
        paid_on,
        &reference,
        actor.user_id(),
        now
    )?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "invoice.paid",
            subject: format!("invoice:{id}"),
            clinic_id: Some(inv.clinic_id),
            details: json!({"amount_cents": f.amount_cents, "method": f.method.as_str()}),
        },
    )
    .await?;
    tx.commit().await?;
    load(db, id).await
}

/// Voids an issued (or paid) invoice by a credit note naming it: the note takes the next
/// number and reverses every line; the invoice becomes void. Returns the credit note.
pub async fn credit(db: &Db, actor: &Actor, id: Uuid, reason: &str) -> Result<Invoice> {
    let inv = load(db, id).await?;
    if require_billing_of(actor, inv.clinic_id).is_err() {
        return Err(Error::not_found("invoice"));
    }
    let mut checks = Checks::new();
    let reason = checks.text("reason", reason, 3, 500);
    checks.finish()?;
    if inv.kind != InvoiceKind::Invoice
        || !matches!(inv.status, InvoiceStatus::Issued | InvoiceStatus::Paid)
    {
        return Err(Error::new(
            Code::InvalidTransition,
            "Only an issued invoice is voided by a credit note; a draft is deleted.",
        ));
    }
    let clinic = clinics::get(db, inv.clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let now = Utc::now();
    let year = i64::from(now.with_timezone(&clinic.tz()).year());
    let note_id = Uuid::now_v7();
    let mut tx = db.begin().await?;
    const VOID: &str = "UPDATE invoices SET status = 'void', updated_at = $2 WHERE id = $1 AND status IN ('issued', 'paid') AND kind = 'invoice'";
    if crate::exec_tx!(&mut tx, VOID, id, now)? == 0 {
        return Err(Error::new(
            Code::InvalidTransition,
            "This invoice is already void.",
        ));
    }
    let (seq, number) = next_number(&mut tx, inv.clinic_id, &clinic.name, year).await?;
    const NOTE: &str = "INSERT INTO invoices (id, clinic_id, kind, status, number, year, sequence, credits, patient_id, appointment_id, bill_to, currency, note, \
        issued_at, created_by, created_at, updated_at) VALUES ($1, $2, 'credit_note', 'issued', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $12, $12)";
    crate::exec_tx!(
        &mut tx,
        NOTE,
        note_id,
        inv.clinic_id,
        &number,
        year,
        seq,
        id,
        inv.patient_id,
        inv.appointment_id,
        &inv.bill_to,
        &inv.currency,
        format!("Voids {}: {reason}", inv.number.as_deref().unwrap_or("")),
        now,
        actor.user_id()
    )
    .map_err(|e| {
        Error::from(e).on_unique(
            "invoices_one_credit_key",
            Code::InvalidTransition,
            "This invoice is already void.",
        )
    })?;
    // The same lines, reversed, at the rates they were billed at.
    const LINE: &str = "INSERT INTO invoice_lines (id, invoice_id, position, kind, description, quantity, unit_cents, discount_cents, tax_rate_bp, \
        net_cents, tax_cents, total_cents, dispensing_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)";
    for l in &inv.lines {
        crate::exec_tx!(
            &mut tx,
            LINE,
            Uuid::now_v7(),
            note_id,
            l.position,
            l.kind.as_str(),
            &l.description,
            l.quantity,
            -l.unit_cents,
            l.discount_cents,
            l.tax_rate_bp,
            -l.net_cents,
            -l.tax_cents,
            -l.total_cents
        )?;
    }
    const TOTALS: &str = "UPDATE invoices SET subtotal_cents = $2, discount_cents = $3, tax_cents = $4, total_cents = $5 WHERE id = $1";
    crate::exec_tx!(
        &mut tx,
        TOTALS,
        note_id,
        -inv.subtotal_cents,
        -inv.discount_cents,
        -inv.tax_cents,
        -inv.total_cents
    )?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "invoice.credited",
            subject: format!("invoice:{id}"),
            clinic_id: Some(inv.clinic_id),
            details: json!({"credit_note": number, "reason": reason, "paid_cents": inv.paid_cents}),
        },
    )
    .await?;
    tx.commit().await?;
    load(db, note_id).await
}

#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InvoiceQuery {
    /// `draft`, `issued` (owed), `paid` or `void`.
    pub status: Option<InvoiceStatus>,
    pub patient_id: Option<Uuid>,
}

/// The clinic's invoices and credit notes, newest first.
pub async fn list(
    db: &Db,
    actor: &Actor,
    clinic_id: Uuid,
    q: &InvoiceQuery,
) -> Result<Vec<Invoice>> {
    require_billing_of(actor, clinic_id)?;
    const SQL: &str = select_invoices!(
        "WHERE i.clinic_id = $1 AND ($2 IS NULL OR i.status = $2) AND ($3 IS NULL OR i.patient_id = $3) ORDER BY i.created_at DESC LIMIT 500"
    );
    let rows: Vec<Invoice> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(clinic_id)
        .bind(q.status.map(InvoiceStatus::as_str))
        .bind(q.patient_id)
        .fetch_all(pool)
        .await)?;
    Ok(rows.into_iter().map(Invoice::with_balance).collect())
}

/// The signed-in patient's issued invoices and credit notes, with what they owe.
pub async fn mine(db: &Db, actor: &Actor) -> Result<Vec<Invoice>> {
    let me = actor.principal()?.user_id;
    const SQL: &str = select_invoices!(
        "WHERE i.patient_id = $1 AND i.status <> 'draft' ORDER BY i.issued_at DESC LIMIT 200"
    );
    let rows: Vec<Invoice> = on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(me)
        .fetch_all(pool)
        .await)?;
    Ok(rows.into_iter().map(Invoice::with_balance).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_rounds_half_away_from_zero_in_whole_minor_units() {
        assert_eq!(tax_of(1000, 2300), 230);
        assert_eq!(tax_of(1005, 600), 60); // 60.3
        assert_eq!(tax_of(1025, 600), 62); // 61.5
        assert_eq!(tax_of(-1025, 600), -62);
        assert_eq!(tax_of(999, 0), 0);
    }

    #[test]
    fn numbers_carry_the_clinics_prefix() {
        assert_eq!(prefix("Lisbon Central Clinic"), "LIS");
        assert_eq!(prefix("1st Care"), "1ST");
        assert_eq!(prefix("¡¡"), "INV");
    }
}
