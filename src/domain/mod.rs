//! The rules of the clinic, by area, each module owning its SQL. Every function takes the
//! caller's [`actor::Actor`] where a permission is involved.
//!
//! Areas build on the ones listed before them and never on those after: `identity` (who
//! someone is: sign-in, people, invitations), `clinics` (clinics, doctors, staff,
//! specialties, prices, branding, reports), `scheduling` (schedules, slots, appointments,
//! waitlist), `care` (notes, care plans, reminders, access to clinical data), and
//! `erasure`, which reaches into all of them. `actor`, `audit`, `validate`,
//! `idempotency`, `orchestration` and `outbox` sit below every area.

pub mod actor;
pub mod audit;
pub mod care;
pub mod clinics;
pub mod erasure;
pub mod idempotency;
pub mod identity;
pub mod orchestration;
pub mod outbox;
#[cfg(test)]
mod query_plans;
pub mod scheduling;
pub mod validate;

#[cfg(test)]
mod tests {
    use super::care::{care_plans::PlanStatus, reminders::ReminderStatus};
    use super::clinics::{ClinicStatus, RequestStatus};
    use super::outbox::OutboxStatus;
    use super::scheduling::appointments::AppointmentStatus;
    use super::scheduling::slots::SlotStatus;
    use super::scheduling::waitlist::OfferStatus;

    /// The words each status enum knows are the words its column's CHECK allows, in both
    /// schemas: a status added on one side only fails here.
    #[test]
    fn status_enums_and_the_schemas_checks_list_the_same_words() {
        let words = |all: &[&str]| {
            let quoted: Vec<String> = all.iter().map(|w| format!("'{w}'")).collect();
            format!("CHECK (status IN ({}))", quoted.join(", "))
        };
        let enums: Vec<(&str, String)> = vec![
            (
                "clinics",
                words(
                    &ClinicStatus::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "clinic_requests",
                words(
                    &RequestStatus::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "slots",
                words(
                    &SlotStatus::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "appointments",
                words(
                    &AppointmentStatus::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "waitlist_offers",
                words(
                    &OfferStatus::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "care_plans",
                words(
                    &PlanStatus::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "reminders",
                words(
                    &ReminderStatus::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "outbox",
                words(
                    &OutboxStatus::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>(),
                ),
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
