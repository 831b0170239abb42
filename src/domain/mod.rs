//! The rules of the clinic, by area, each module owning its SQL. Every function takes the
//! caller's [`actor::Actor`] where a permission is involved.
//!
//! Areas build on the ones listed before them and never on those after: `identity` (who
//! someone is: sign-in, people, invitations), `clinics` (clinics, doctors, staff,
//! specialties, prices, branding, reports), `scheduling` (schedules, slots, appointments,
//! waitlist), `care` (notes, care plans, reminders, access to clinical data), `clinical`
//! (profiles, visit records, prescriptions, labs), `pharmacy` (catalogue, stock ledger,
//! dispensing, alerts), `billing` (invoices, payments, credit notes), and `erasure`, which
//! reaches into all
//! of them. `actor`, `audit`, `validate`,
//! `idempotency`, `orchestration` and `outbox` sit below every area.

pub mod actor;
pub mod audit;
pub mod billing;
pub mod care;
pub mod clinical;
pub mod clinics;
pub mod erasure;
pub mod idempotency;
pub mod identity;
pub mod orchestration;
pub mod outbox;
pub mod pharmacy;
#[cfg(test)]
mod query_plans;
pub mod scheduling;
pub mod validate;

#[cfg(test)]
mod tests {
    use super::billing::{InvoiceKind, InvoiceStatus, LineKind, PaymentMethod};
    use super::care::{care_plans::PlanStatus, reminders::ReminderStatus};
    use super::clinical::labs::{Flag, OrderStatus};
    use super::clinical::prescriptions::Route;
    use super::clinical::profiles::{BloodGroup, Sex};
    use super::clinical::records::{RecordKind, RecordStatus};
    use super::clinical::transcripts::Source;
    use super::clinics::{ClinicStatus, RequestStatus};
    use super::outbox::OutboxStatus;
    use super::pharmacy::Movement;
    use super::scheduling::appointments::AppointmentStatus;
    use super::scheduling::slots::SlotStatus;
    use super::scheduling::waitlist::OfferStatus;

    /// The words each status enum knows are the words its column's CHECK allows, in both
    /// schemas: a status added on one side only fails here.
    #[test]
    fn status_enums_and_the_schemas_checks_list_the_same_words() {
        fn words<T: Copy>(column: &str, all: &[T], word: fn(T) -> &'static str) -> String {
            let quoted: Vec<String> = all.iter().map(|w| format!("'{}'", word(*w))).collect();
            format!("CHECK ({column} IN ({}))", quoted.join(", "))
        }
        let enums: Vec<(&str, String)> = vec![
            (
                "clinics",
                words("status", ClinicStatus::ALL, ClinicStatus::as_str),
            ),
            (
                "clinic_requests",
                words("status", RequestStatus::ALL, RequestStatus::as_str),
            ),
            (
                "slots",
                words("status", SlotStatus::ALL, SlotStatus::as_str),
            ),
            (
                "appointments",
                words("status", AppointmentStatus::ALL, AppointmentStatus::as_str),
            ),
            (
                "waitlist_offers",
                words("status", OfferStatus::ALL, OfferStatus::as_str),
            ),
            (
                "care_plans",
                words("status", PlanStatus::ALL, PlanStatus::as_str),
            ),
            (
                "reminders",
                words("status", ReminderStatus::ALL, ReminderStatus::as_str),
            ),
            (
                "outbox",
                words("status", OutboxStatus::ALL, OutboxStatus::as_str),
            ),
            ("patient_profiles", words("sex", Sex::ALL, Sex::as_str)),
            (
                "patient_profiles",
                words("blood_group", BloodGroup::ALL, BloodGroup::as_str),
            ),
            (
                "visit_records",
                words("kind", RecordKind::ALL, RecordKind::as_str),
            ),
            (
                "visit_records",
                words("status", RecordStatus::ALL, RecordStatus::as_str),
            ),
            ("prescriptions", words("route", Route::ALL, Route::as_str)),
            (
                "lab_orders",
                words("status", OrderStatus::ALL, OrderStatus::as_str),
            ),
            ("lab_results", words("flag", Flag::ALL, Flag::as_str)),
            ("transcripts", words("source", Source::ALL, Source::as_str)),
            (
                "stock_ledger",
                words("kind", Movement::ALL, Movement::as_str),
            ),
            (
                "invoices",
                words("kind", InvoiceKind::ALL, InvoiceKind::as_str),
            ),
            (
                "invoices",
                words("status", InvoiceStatus::ALL, InvoiceStatus::as_str),
            ),
            (
                "invoice_lines",
                words("kind", LineKind::ALL, LineKind::as_str),
            ),
            (
                "payments",
                words("method", PaymentMethod::ALL, PaymentMethod::as_str),
            ),
        ];
        for backend in ["sqlite", "postgres"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(backend);
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            let schema: String = files
                .iter()
                .map(|f| std::fs::read_to_string(f).unwrap())
                .collect();
            for (table, check) in &enums {
                let start = schema
                    .find(&format!("CREATE TABLE {table} ("))
                    .unwrap_or_else(|| panic!("{backend}: no table {table}"));
                let end = schema[start..]
                    .find(");")
                    .map_or(schema.len(), |e| start + e);
                assert!(
                    schema[start..end].contains(check.as_str()),
                    "{backend}: {table} should have {check}"
                );
            }
        }
    }
}
