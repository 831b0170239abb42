//! `clinic demo-data` / `serve --demo`: a realistic small network to click through: three
//! clinics in three time zones, twenty-seven doctors with weekly schedules, a patient, a
//! system admin and one clinic application waiting for a decision.

use anyhow::Context;
use chrono::Utc;
use serde_json::json;

use crate::domain::actor::{Actor, Grant, Role};
use crate::domain::clinics::doctors::{self, DoctorForm};
use crate::domain::clinics::{self, ClinicApplication};
use crate::domain::identity::people::{self, NewUser};
use crate::domain::scheduling::schedules::ScheduleForm;
use crate::domain::scheduling::slots;
use crate::state::{AppState, DemoAccount, DemoAccounts};

/// Every demo account signs in with this password.
pub const PASSWORD: &str = "demo-password";
pub const ADMIN: &str = "admin@demo.clinic";
pub const PATIENT: &str = "patient@demo.clinic";
/// The first clinic's front desk.
pub const DESK: &str = "desk@demo.clinic";
/// The first clinic's pharmacist.
pub const PHARMACIST: &str = "pharmacy@demo.clinic";

struct DemoClinic {
    name: &'static str,
    address: &'static str,
    time_zone: &'static str,
    admin: &'static str,
    doctors: &'static [DemoDoctor],
}

/// (name, email, languages, fee in cents, specialties, hours)
type DemoDoctor = (
    &'static str,
    &'static str,
    &'static [&'static str],
    i64,
    &'static [&'static str],
    Hours,
);

#[derive(Clone, Copy)]
enum Hours {
    /// Monday to Friday 09:00–17:00, lunch 12:30–13:30.
    Office,
    /// Monday to Friday 08:00–14:00.
    Mornings,
    /// Tuesday and Thursday 13:00–19:00, Saturday 09:00–13:00.
    Afternoons,
}

impl Hours {
    fn rules(self) -> serde_json::Value {
        let weekdays = ["mon", "tue", "wed", "thu", "fri"];
        match self {
            Hours::Office => json!(weekdays.map(|d| json!({"weekday": d, "start": "09:00", "end": "17:00", "breaks": [["12:30", "13:30"]]}))),
            Hours::Mornings => json!(weekdays.map(|d| json!({"weekday": d, "start": "08:00", "end": "14:00"}))),
            Hours::Afternoons => json!([
                {"weekday": "tue", "start": "13:00", "end": "19:00"},
                {"weekday": "thu", "start": "13:00", "end": "19:00"},
                {"weekday": "sat", "start": "09:00", "end": "13:00"},
            ]),
        }
    }
}

const CLINICS: &[DemoClinic] = &[
    DemoClinic {
        name: "Lisbon Central Clinic",
        address: "Avenida da Liberdade 100, 1250-146 Lisboa",
        time_zone: "Europe/Lisbon",
        admin: "lisbon-admin@demo.clinic",
        doctors: &[
            (
                "Dr. Ana Costa",
                "doctor@demo.clinic",
                &["pt", "en"],
                6000,
                &["dermatology"],
                Hours::Afternoons,
            ),
            (
                "Dr. Rui Almeida",
                "rui@demo.clinic",
                &["pt", "en", "es"],
                5500,
                &["general-practice"],
                Hours::Office,
            ),
            (
                "Dr. Marta Sousa",
                "marta@demo.clinic",
                &["pt", "en"],
                8000,
                &["cardiology"],
                Hours::Mornings,
            ),
            (
                "Dr. João Pereira",
                "joao@demo.clinic",
                &["pt"],
                7000,
                &["orthopedics"],
                Hours::Office,
            ),
            (
                "Dr. Inês Ferreira",
                "ines@demo.clinic",
                &["pt", "en", "fr"],
                6500,
                &["pediatrics"],
                Hours::Mornings,
            ),
            (
                "Dr. Tiago Santos",
                "tiago@demo.clinic",
                &["pt", "en"],
                9000,
                &["ophthalmology"],
                Hours::Afternoons,
            ),
            (
                "Dr. Sofia Lopes",
                "sofia@demo.clinic",
                &["pt", "en"],
                7500,
                &["psychiatry"],
                Hours::Office,
            ),
            (
                "Dr. Beatriz Nunes",
                "beatriz@demo.clinic",
                &["pt", "en", "es"],
                5000,
                &["dentistry"],
                Hours::Office,
            ),
            (
                "Dr. Carla Mendes",
                "carla@demo.clinic",
                &["pt", "en", "es"],
                7000,
                &["obstetrics-gynecology"],
                Hours::Mornings,
            ),
        ],
    },
    DemoClinic {
        name: "Brooklyn Family Health",
        address: "350 Atlantic Ave, Brooklyn, NY 11217",
        time_zone: "America/New_York",
        admin: "brooklyn-admin@demo.clinic",
        doctors: &[
            (
                "Dr. Maya Patel",
                "maya@demo.clinic",
                &["en", "hi"],
                12000,
                &["dermatology"],
                Hours::Office,
            ),
            (
                "Dr. James Carter",
                "james@demo.clinic",
                &["en"],
                10000,
                &["general-practice", "internal-medicine"],
                Hours::Office,
            ),
            (
                "Dr. Lucia Gómez",
                "lucia@demo.clinic",
                &["en", "es"],
                15000,
                &["obstetrics-gynecology"],
                Hours::Mornings,
            ),
            (
                "Dr. David Kim",
                "david@demo.clinic",
                &["en", "ko"],
                14000,
                &["orthopedics", "sports-medicine"],
                Hours::Afternoons,
            ),
            (
                "Dr. Sarah Cohen",
                "sarah@demo.clinic",
                &["en", "he"],
                16000,
                &["neurology"],
                Hours::Office,
            ),
            (
                "Dr. Omar Haddad",
                "omar@demo.clinic",
                &["en", "ar"],
                13000,
                &["gastroenterology"],
                Hours::Mornings,
            ),
            (
                "Dr. Grace Liu",
                "grace@demo.clinic",
                &["en", "zh"],
                11000,
                &["ent"],
                Hours::Afternoons,
            ),
            (
                "Dr. Ethan Brooks",
                "ethan@demo.clinic",
                &["en"],
                9000,
                &["dentistry"],
                Hours::Office,
            ),
            (
                "Dr. Olivia Reyes",
                "olivia@demo.clinic",
                &["en", "es"],
                10000,
                &["pediatrics"],
                Hours::Office,
            ),
            (
                "Dr. Noah Fischer",
                "noah@demo.clinic",
                &["en"],
                15000,
                &["psychiatry"],
                Hours::Office,
            ),
        ],
    },
    DemoClinic {
        name: "Praxis Berlin Mitte",
        address: "Friedrichstraße 50, 10117 Berlin",
        time_zone: "Europe/Berlin",
        admin: "berlin-admin@demo.clinic",
        doctors: &[
            (
                "Dr. Lena Schmidt",
                "lena@demo.clinic",
                &["de", "en"],
                7000,
                &["dermatology"],
                Hours::Office,
            ),
            (
                "Dr. Felix Wagner",
                "felix@demo.clinic",
                &["de", "en"],
                6000,
                &["general-practice"],
                Hours::Mornings,
            ),
            (
                "Dr. Hanna Becker",
                "hanna@demo.clinic",
                &["de"],
                9000,
                &["endocrinology"],
                Hours::Office,
            ),
            (
                "Dr. Paul Richter",
                "paul@demo.clinic",
                &["de", "en", "pl"],
                8500,
                &["pulmonology"],
                Hours::Afternoons,
            ),
            (
                "Dr. Emma Wolf",
                "emma@demo.clinic",
                &["de", "en"],
                6500,
                &["physiotherapy"],
                Hours::Office,
            ),
            (
                "Dr. Jonas Klein",
                "jonas@demo.clinic",
                &["de", "en", "tr"],
                8000,
                &["urology"],
                Hours::Mornings,
            ),
            (
                "Dr. Mia Hoffmann",
                "mia@demo.clinic",
                &["de", "en"],
                8000,
                &["ophthalmology"],
                Hours::Office,
            ),
            (
                "Dr. Lukas Braun",
                "lukas@demo.clinic",
                &["de", "en"],
                7500,
                &["ent"],
                Hours::Office,
            ),
        ],
    },
];

/// What was loaded, for the terminal.
pub struct Summary {
    pub clinics: usize,
    pub doctors: usize,
    pub slots: u64,
    pub already_loaded: bool,
}

/// Loads the demo once; a second run changes nothing.
pub async fn load(state: &AppState) -> anyhow::Result<Summary> {
    let db = &state.db;
    let system = Actor::System;
    if clinics::list(db, None, Some(CLINICS[0].name))
        .await
        .map_err(anyhow_of)?
        .iter()
        .any(|c| c.name == CLINICS[0].name)
    {
        let _ = state.demo_accounts.set(DemoAccounts {
            password: PASSWORD,
            accounts: account_list(),
        });
        return Ok(Summary {
            clinics: CLINICS.len(),
            doctors: 0,
            slots: 0,
            already_loaded: true,
        });
    }
    let hash = state
        .identity
        .passwords()
        .hash(PASSWORD)
        .await
        .map_err(anyhow_of)?;
    people::create_admin(db, ADMIN, "Demo Admin", &hash)
        .await
        .map_err(anyhow_of)?;
    let patient_id = account(state, PATIENT, "Pat Demo", &hash, Role::Patient).await?;
    let mut first_doctor = None;

    let (mut doctor_count, mut slot_count) = (0, 0);
    for c in CLINICS {
        let application = ClinicApplication {
            name: c.name.into(),
            address: c.address.into(),
            time_zone: c.time_zone.into(),
            contact_name: "Clinic Admin".into(),
            contact_email: c.admin.into(),
            contact_phone: "+1 555 0100".into(),
            specialties: c
                .doctors
                .iter()
                .flat_map(|d| d.4.iter().map(|s| (*s).to_owned()))
                .collect(),
        };
        let request = clinics::apply(db, &system, application)
            .await
            .map_err(anyhow_of)
            .with_context(|| c.name)?;
        let clinic = clinics::approve(db, &state.mailer, &system, request.id)
            .await
            .map_err(anyhow_of)?;
        set_password(state, c.admin, &hash).await?;
        let mut doctor_rules = Vec::new();
        for (name, email, languages, fee, specialties, hours) in c.doctors {
            let form = DoctorForm {
                display_name: (*name).into(),
                bio: format!("{name} sees patients at {}.", c.name),
                languages: languages.iter().map(|l| (*l).to_owned()).collect(),
                fee_cents: *fee,
                currency: Some(
                    if c.time_zone.starts_with("America") {
                        "USD"
                    } else {
                        "EUR"
                    }
                    .into(),
                ),
                specialties: specialties.iter().map(|s| (*s).to_owned()).collect(),
                email: Some((*email).into()),
            };
            let doctor = doctors::create(db, &state.mailer, &system, clinic.id, form)
                .await
                .map_err(anyhow_of)
                .with_context(|| *name)?;
            set_password(state, email, &hash).await?;
            if first_doctor.is_none() {
                first_doctor = doctor
                    .user_id
                    .map(|user| (doctor.id, user, clinic.id, *email));
            }
            let schedule: ScheduleForm = serde_json::from_value(json!({
                "rules": hours.rules(), "slot_minutes": 30, "buffer_minutes": 0, "min_notice_minutes": 60, "horizon_days": 60
            }))?;
            slot_count += slots::set_schedule(db, &system, doctor.id, schedule)
                .await
                .map_err(anyhow_of)?
                .created;
            doctor_rules.push((doctor.id, hours.rules()));
            doctor_count += 1;
        }
        let desk = if c.name == CLINICS[0].name {
            Some(desk_account(state, clinic.id, &hash).await?)
        } else {
            None
        };
        plan_shifts(state, clinic.id, desk, &doctor_rules).await?;
        if c.name == CLINICS[0].name {
            stock_pharmacy(state, clinic.id, &hash).await?;
        }
    }
    if let Some(doctor) = first_doctor {
        let clinic_id = doctor.2;
        submit_note(state, patient_id, doctor).await?;
        bill_history(state, clinic_id, patient_id).await?;
    }
    let pending = ClinicApplication {
        name: "Porto Smile Dental".into(),
        address: "Rua de Santa Catarina 200, 4000-442 Porto".into(),
        time_zone: "Europe/Lisbon".into(),
        contact_name: "Carla Mendes".into(),
        contact_email: "porto-admin@demo.clinic".into(),
        contact_phone: "+351 220 000 000".into(),
        specialties: vec!["dentistry".into()],
    };
    clinics::apply(db, &system, pending)
        .await
        .map_err(anyhow_of)?;
    let _ = state.demo_accounts.set(DemoAccounts {
        password: PASSWORD,
        accounts: account_list(),
    });
    Ok(Summary {
        clinics: CLINICS.len(),
        doctors: doctor_count,
        slots: slot_count,
        already_loaded: false,
    })
}

/// The accounts to try, one per line.
/// The demo accounts, one per role (all share [`PASSWORD`]).
pub fn account_list() -> Vec<DemoAccount> {
    let account = |role: String, email: &str, opens: &str| DemoAccount {
        role,
        email: email.to_owned(),
        opens: opens.to_owned(),
    };
    let mut list = vec![
        account("System admin".into(), ADMIN, "/admin"),
        account("Patient".into(), PATIENT, "/me"),
        account(format!("Front desk ({})", CLINICS[0].name), DESK, "/desk"),
        account(
            format!("Pharmacist ({})", CLINICS[0].name),
            PHARMACIST,
            "/pharmacy",
        ),
        account(
            format!("Doctor ({})", CLINICS[0].doctors[0].0),
            CLINICS[0].doctors[0].1,
            "/doctor",
        ),
    ];
    list.extend(
        CLINICS
            .iter()
            .map(|c| account(format!("Clinic admin ({})", c.name), c.admin, "/admin")),
    );
    list
}

/// When the demo data is in the state's database, hands its accounts to the demo page.
pub async fn show_accounts_if_loaded(state: &AppState) -> anyhow::Result<()> {
    if crate::domain::identity::people::find_by_email(&state.db, ADMIN)
        .await
        .map_err(anyhow_of)?
        .is_some()
    {
        let _ = state.demo_accounts.set(DemoAccounts {
            password: PASSWORD,
            accounts: account_list(),
        });
    }
    Ok(())
}

pub fn accounts() -> Vec<String> {
    let mut lines: Vec<String> = account_list()
        .iter()
        .map(|a| format!("{:<40} {}", a.role, a.email))
        .collect();
    lines.push(format!("password for all: {PASSWORD}"));
    lines
}

/// The demo's submit-notes flow: the demo patient chooses the first doctor, who writes a
/// note; its checklist and plan (rule-based extraction) become reminders.
async fn submit_note(
    state: &AppState,
    patient_id: uuid::Uuid,
    (doctor_id, doctor_user, clinic_id, email): (uuid::Uuid, uuid::Uuid, uuid::Uuid, &str),
) -> anyhow::Result<()> {
    let as_user = |user_id, email: &str, grant| {
        Actor::User(crate::domain::actor::Principal {
            user_id,
            session_id: uuid::Uuid::nil(),
            email: email.to_owned(),
            grants: vec![grant],
        })
    };
    let patient = as_user(patient_id, PATIENT, Grant::global(Role::Patient));
    doctors::select(&state.db, &patient, doctor_id)
        .await
        .map_err(anyhow_of)?;
    let doctor = as_user(
        doctor_user,
        email,
        Grant::in_clinic(Role::Doctor, clinic_id),
    );
    clinical_history(state, &patient, &doctor, patient_id).await?;
    let extraction = crate::domain::care::care_plans::extract_rules(DEMO_NOTE);
    crate::domain::care::notes::submit(&state.db, &doctor, patient_id, DEMO_NOTE, &extraction)
        .await
        .map_err(anyhow_of)?;
    Ok(())
}

/// A realistic history for the demo patient: a profile, a check-up four months ago with a
/// lipid panel (a high LDL) and an HbA1c, and a visit last month with two prescriptions.
async fn clinical_history(
    state: &AppState,
    patient: &Actor,
    doctor: &Actor,
    patient_id: uuid::Uuid,
) -> anyhow::Result<()> {
    use crate::domain::clinical::{labs, profiles, records, transcripts};
    let db = &state.db;
    let profile: profiles::ProfileBody = serde_json::from_value(json!({
        "date_of_birth": "1985-04-12", "sex": "female", "blood_group": "A+",
        "insurance_id": "DEMO-4471-22",
        "emergency_contacts": [{"name": "Sam Demo", "relation": "partner", "phone": "+15550100200"}],
        "clinical": {"allergies": ["penicillin"], "chronic_conditions": ["mild persistent asthma"],
                     "medical_history": "Appendectomy in 2004. Non-smoker.",
                     "current_medication": ["salbutamol inhaler as needed"]}
    }))?;
    profiles::update_mine(db, patient, &profile)
        .await
        .map_err(anyhow_of)?;
    let now = Utc::now();
    let check_up: records::RecordBody = serde_json::from_value(json!({
        "visited_at": now - chrono::Duration::days(120),
        "chief_complaint": "Annual check-up",
        "vitals": {"systolic_mmhg": 142, "diastolic_mmhg": 91, "heart_rate_bpm": 74, "temperature_c": 36.6,
                   "spo2_percent": 98, "weight_kg": 71.5, "height_cm": 166},
        "findings": "Blood pressure above target on two readings. Chest clear.",
        "diagnoses": [{"text": "Essential hypertension", "code": "I10"}],
        "plan": "Lifestyle advice; lipid panel and HbA1c; recheck blood pressure in three months."
    }))?;
    let first = records::create(db, doctor, patient_id, &check_up)
        .await
        .map_err(anyhow_of)?;
    records::sign(db, doctor, first.id)
        .await
        .map_err(anyhow_of)?;
    let order: labs::OrderBody =
        serde_json::from_value(json!({"tests": [{"code": "57698-3"}, {"code": "4548-4"}]}))?;
    for o in labs::order(db, doctor, first.id, &order)
        .await
        .map_err(anyhow_of)?
    {
        let values = if o.test_code == "57698-3" {
            json!([{"code": "2093-3", "value": 236}, {"code": "13457-7", "value": 162},
                   {"code": "2085-9", "value": 48}, {"code": "2571-8", "value": 131}])
        } else {
            json!([{"code": "4548-4", "value": 5.4}])
        };
        let results: labs::ResultsBody = serde_json::from_value(json!({"values": values}))?;
        labs::enter_results(db, doctor, o.id, &results)
            .await
            .map_err(anyhow_of)?;
        labs::review(db, doctor, o.id).await.map_err(anyhow_of)?;
    }
    let rash: records::RecordBody = serde_json::from_value(json!({
        "visited_at": now - chrono::Duration::days(30),
        "chief_complaint": "Itchy rash on both forearms for a week",
        "vitals": {"systolic_mmhg": 134, "diastolic_mmhg": 84, "temperature_c": 36.7},
        "findings": "Erythematous, scaly patches on both forearms after a new detergent.",
        "diagnoses": [{"text": "Allergic contact dermatitis", "code": "L23.9"}],
        "plan": "Avoid the detergent; topical steroid and an antihistamine.",
        "prescriptions": [
            {"medicine": "hydrocortisone 1% cream", "dose": "thin layer", "route": "topical",
             "times_per_day": 2, "duration_days": 7, "quantity": 1},
            {"medicine": "cetirizine", "dose": "10 mg", "route": "oral", "times_per_day": 1,
             "duration_days": 5, "quantity": 5}
        ]
    }))?;
    let second = records::create(db, doctor, patient_id, &rash)
        .await
        .map_err(anyhow_of)?;
    transcripts::store(
        db,
        doctor,
        second.id,
        transcripts::Source::Pasted,
        DEMO_TRANSCRIPT,
        None,
    )
    .await
    .map_err(anyhow_of)?;
    records::sign(db, doctor, second.id)
        .await
        .map_err(anyhow_of)?;
    Ok(())
}

const DEMO_TRANSCRIPT: &str = "Patient: I have had an itchy rash on both forearms for about a week.\n\
Doctor: Did anything change before it started?\n\
Patient: We switched to a new laundry detergent.\n\
Doctor: On examination I can see red, scaly patches on both forearms, nothing elsewhere.\n\
Doctor: Stop the new detergent. Apply hydrocortisone cream twice a day for a week and take cetirizine 10 mg once a day for five days.";

const DEMO_NOTE: &str = "Mild contact dermatitis on both forearms. Apply hydrocortisone 1% cream twice daily for 7 days. \
    Take cetirizine 10 mg once daily for 5 days. Buy a fragrance-free moisturiser. Book a follow-up in 3 weeks.";

async fn account(
    state: &AppState,
    email: &str,
    name: &str,
    hash: &str,
    role: Role,
) -> anyhow::Result<uuid::Uuid> {
    let now = Utc::now();
    let mut tx = state.db.begin().await?;
    let id = people::insert(
        &mut tx,
        NewUser {
            email,
            display_name: name,
            password_hash: Some(hash),
            verified: true,
            language: Default::default(),
        },
        now,
    )
    .await
    .map_err(anyhow_of)?;
    people::insert_grant(&mut tx, id, Grant::global(role), now)
        .await
        .map_err(anyhow_of)?;
    tx.commit().await?;
    Ok(id)
}

struct DemoMedicine {
    name: &'static str,
    form: &'static str,
    strength: &'static str,
    unit: &'static str,
    cost: i64,
    price: i64,
    prescription_only: bool,
    alert: i64,
    /// (batch, days to expiry, units)
    batches: &'static [(&'static str, u64, i64)],
}

const MEDICINES: &[DemoMedicine] = &[
    DemoMedicine {
        name: "Amoxicillin",
        form: "capsule",
        strength: "500 mg",
        unit: "capsule",
        cost: 8,
        price: 20,
        prescription_only: true,
        alert: 30,
        batches: &[("AMX-2611", 200, 120), ("AMX-2702", 400, 200)],
    },
    DemoMedicine {
        name: "Ibuprofen",
        form: "tablet",
        strength: "400 mg",
        unit: "tablet",
        cost: 3,
        price: 10,
        prescription_only: false,
        alert: 50,
        batches: &[("IBU-2612", 12, 60), ("IBU-2705", 300, 240)],
    },
    DemoMedicine {
        name: "Paracetamol",
        form: "tablet",
        strength: "500 mg",
        unit: "tablet",
        cost: 2,
        price: 6,
        prescription_only: false,
        alert: 40,
        batches: &[("PAR-2704", 250, 300)],
    },
    DemoMedicine {
        name: "Cetirizine",
        form: "tablet",
        strength: "10 mg",
        unit: "tablet",
        cost: 4,
        price: 12,
        prescription_only: false,
        alert: 20,
        batches: &[("CET-2703", 180, 90)],
    },
    DemoMedicine {
        name: "Salbutamol",
        form: "inhaler",
        strength: "100 mcg",
        unit: "inhaler",
        cost: 250,
        price: 600,
        prescription_only: true,
        alert: 5,
        batches: &[("SAL-2702", 200, 3)],
    },
];

/// A pharmacist and a stocked pharmacy: a few medicines in batches, one batch expiring
/// within the month and one medicine below its alert level, and a morning's sales.
async fn stock_pharmacy(state: &AppState, clinic_id: uuid::Uuid, hash: &str) -> anyhow::Result<()> {
    use crate::domain::actor::Principal;
    use crate::domain::pharmacy::{self, Delivery, MedicineForm, dispensing};
    let id = account(state, PHARMACIST, "Paula Farmácia", hash, Role::Patient).await?;
    let grant = Grant::in_clinic(Role::Pharmacist, clinic_id);
    let mut tx = state.db.begin().await?;
    people::insert_grant(&mut tx, id, grant, Utc::now())
        .await
        .map_err(anyhow_of)?;
    tx.commit().await?;
    // The stock is received and sold as the pharmacist.
    let pharmacist = Actor::User(Principal {
        user_id: id,
        session_id: uuid::Uuid::nil(),
        email: PHARMACIST.into(),
        grants: vec![Grant::global(Role::Patient), grant],
    });
    let db = &state.db;
    let today = Utc::now().date_naive();
    for d in MEDICINES {
        let (name, rx) = (d.name, d.prescription_only);
        let m = pharmacy::add_medicine(
            db,
            &pharmacist,
            clinic_id,
            MedicineForm {
                name: name.into(),
                generic_name: name.to_lowercase(),
                form: d.form.into(),
                strength: d.strength.into(),
                dosage_guidance: String::new(),
                unit: d.unit.into(),
                unit_cost_cents: d.cost,
                unit_price_cents: d.price,
                currency: Some("EUR".into()),
                prescription_only: rx,
                low_stock_threshold: d.alert,
                active: true,
            },
        )
        .await
        .map_err(anyhow_of)?;
        for (number, days, quantity) in d.batches {
            let delivery = Delivery {
                batch_number: (*number).into(),
                expiry_date: today + chrono::Days::new(*days),
                quantity: *quantity,
                location: "Shelf A".into(),
            };
            pharmacy::receive(db, &pharmacist, m.id, delivery)
                .await
                .map_err(anyhow_of)?;
        }
        if !rx {
            let sale = dispensing::DispenseForm {
                medicine_id: m.id,
                quantity: 2,
                prescription_id: None,
            };
            dispensing::dispense(db, &pharmacist, clinic_id, sale)
                .await
                .map_err(anyhow_of)?;
        }
    }
    Ok(())
}

/// The demo patient's bills for their two visits: the check-up paid by card, the rash
/// visit issued and partly paid (so the portal shows what is owed).
async fn bill_history(
    state: &AppState,
    clinic_id: uuid::Uuid,
    patient_id: uuid::Uuid,
) -> anyhow::Result<()> {
    use crate::domain::billing::{
        self, DraftForm, LineForm, LineKind, PaymentForm, PaymentMethod, TaxRate,
    };
    let db = &state.db;
    let system = Actor::System;
    let rates = vec![
        TaxRate {
            name: "consultation".into(),
            rate_bp: 0,
        },
        TaxRate {
            name: "medicine".into(),
            rate_bp: 600,
        },
        TaxRate {
            name: "other".into(),
            rate_bp: 2300,
        },
    ];
    billing::set_tax_rates(db, &system, clinic_id, rates)
        .await
        .map_err(anyhow_of)?;
    // Lab prices: a visit's invoice bills its lab orders at them.
    let lab = |code: &str, cents| billing::lab_prices::LabPriceItem {
        test_code: code.into(),
        amount_cents: cents,
        currency: "EUR".into(),
    };
    let lab_prices = vec![
        lab("58410-2", 1200),
        lab("57698-3", 2000),
        lab("4548-4", 1500),
        lab("custom", 2500),
    ];
    billing::lab_prices::replace(db, &system, clinic_id, lab_prices)
        .await
        .map_err(anyhow_of)?;
    let line = |kind, description: &str, quantity, unit_cents| LineForm {
        kind,
        description: description.into(),
        quantity,
        unit_cents,
        discount_cents: 0,
    };
    let bills = [
        (
            vec![
                line(LineKind::Consultation, "Annual check-up", 1, 6000),
                line(LineKind::LabTest, "Lipid panel and HbA1c", 1, 3500),
            ],
            9500,
        ),
        (
            vec![
                line(LineKind::Consultation, "Dermatology consultation", 1, 6000),
                line(LineKind::Other, "Patch test", 1, 2000),
            ],
            2000,
        ),
    ];
    for (lines, paid) in bills {
        let draft = DraftForm {
            patient_id: Some(patient_id),
            lines,
            ..DraftForm::default()
        };
        let invoice = billing::create_draft(db, &system, clinic_id, draft)
            .await
            .map_err(anyhow_of)?;
        billing::issue(db, state.files.as_ref(), &system, invoice.id)
            .await
            .map_err(anyhow_of)?;
        let payment = PaymentForm {
            method: PaymentMethod::Card,
            amount_cents: paid,
            paid_on: None,
            reference: String::new(),
        };
        billing::pay(db, &system, invoice.id, payment)
            .await
            .map_err(anyhow_of)?;
    }
    Ok(())
}

/// A receptionist at the clinic.
async fn desk_account(
    state: &AppState,
    clinic_id: uuid::Uuid,
    hash: &str,
) -> anyhow::Result<uuid::Uuid> {
    let id = account(state, DESK, "Rita Reception", hash, Role::Patient).await?;
    let mut tx = state.db.begin().await?;
    people::insert_grant(
        &mut tx,
        id,
        Grant::in_clinic(Role::ClinicStaff, clinic_id),
        Utc::now(),
    )
    .await
    .map_err(anyhow_of)?;
    tx.commit().await?;
    Ok(id)
}

/// Opening hours (weekdays 08:00–20:00, Saturday mornings), each doctor on shift through
/// their schedule's hours, and the desk on weekday mornings, so the shifts page shows
/// the afternoons' front-desk gap.
async fn plan_shifts(
    state: &AppState,
    clinic_id: uuid::Uuid,
    desk: Option<uuid::Uuid>,
    doctor_rules: &[(uuid::Uuid, serde_json::Value)],
) -> anyhow::Result<()> {
    use crate::domain::scheduling::shifts::{self, OpeningSpan, ShiftForm};
    let system = Actor::System;
    let db = &state.db;
    let mut hours: Vec<OpeningSpan> = ["mon", "tue", "wed", "thu", "fri"]
        .iter()
        .map(|d| OpeningSpan {
            weekday: (*d).into(),
            start: "08:00".into(),
            end: "20:00".into(),
        })
        .collect();
    hours.push(OpeningSpan {
        weekday: "sat".into(),
        start: "09:00".into(),
        end: "13:00".into(),
    });
    shifts::set_opening_hours(db, &system, clinic_id, hours)
        .await
        .map_err(anyhow_of)?;
    let shift = |role: Role,
                 doctor: Option<uuid::Uuid>,
                 user: Option<uuid::Uuid>,
                 day: &str,
                 start: &str,
                 end: &str| ShiftForm {
        role,
        doctor_id: doctor,
        user_id: user,
        weekday: day.into(),
        start: start.into(),
        end: end.into(),
        valid_from: None,
        valid_until: None,
    };
    for (doctor, rules) in doctor_rules {
        for rule in rules.as_array().into_iter().flatten() {
            let field = |k: &str| rule[k].as_str().unwrap_or_default().to_owned();
            let form = shift(
                Role::Doctor,
                Some(*doctor),
                None,
                &field("weekday"),
                &field("start"),
                &field("end"),
            );
            shifts::create(db, &system, clinic_id, form)
                .await
                .map_err(anyhow_of)?;
        }
    }
    if let Some(desk) = desk {
        for day in ["mon", "tue", "wed", "thu", "fri"] {
            let form = shift(Role::ClinicStaff, None, Some(desk), day, "08:00", "14:00");
            shifts::create(db, &system, clinic_id, form)
                .await
                .map_err(anyhow_of)?;
        }
    }
    Ok(())
}

async fn set_password(state: &AppState, email: &str, hash: &str) -> anyhow::Result<()> {
    people::set_password(&state.db, email, hash)
        .await
        .map_err(anyhow_of)
}

fn anyhow_of(e: crate::error::Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}
