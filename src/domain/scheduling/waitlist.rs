//! The waitlist: patients waiting for a doctor, or for any doctor of a specialty, to free
//! a time. When a booked time is freed, the first of them gets it on hold and an offer.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Batch, Db, Tx};
use crate::domain::actor::{Actor, Role};
use crate::domain::audit::{self, Entry};
use crate::domain::clinics::{doctors, specialties};
use crate::domain::scheduling::appointments::{self, Appointment};
use crate::error::{Code, Error, Result};
use crate::notify::messages::{self, Kind, Moment};
use crate::notify::outbox;
use crate::zone::TimeZone;
use crate::{on_db, on_tx};

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WaitlistEntry {
    pub id: Uuid,
    pub doctor_id: Option<Uuid>,
    pub specialty: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Puts the signed-in patient on the waitlist for a doctor or a specialty (by slug).
pub async fn join(
    db: &Db,
    actor: &Actor,
    doctor_id: Option<Uuid>,
    specialty: Option<&str>,
    note: &str,
) -> Result<WaitlistEntry> {
    let p = actor
        .principal()
        .map_err(|_| Error::new(Code::Unauthenticated, "Sign in to join a waitlist."))?;
    if !p.has_role(Role::Patient) {
        return Err(Error::new(
            Code::Forbidden,
            "Only patient accounts join waitlists.",
        ));
    }
    let doctor = match doctor_id {
        Some(id) => Some(doctors::find(db, id).await?),
        None => None,
    };
    let specialty = match (specialty, &doctor) {
        (Some(slug), None) => Some(
            specialties::by_slug(db, slug.trim())
                .await?
                .ok_or_else(|| Error::not_found("specialty"))?,
        ),
        (None, None) => {
            return Err(Error::new(
                Code::InvalidBody,
                "Name a doctor or a specialty to wait for.",
            ));
        }
        _ => None,
    };
    insert(db, actor, p.user_id, doctor, specialty, note).await
}

/// Puts a patient the clinic knows on the waitlist for one of its doctors (its staff, at
/// the desk or on the phone).
pub async fn join_for(
    db: &Db,
    actor: &Actor,
    patient_id: Uuid,
    doctor_id: Uuid,
    note: &str,
) -> Result<WaitlistEntry> {
    let doctor = doctors::find(db, doctor_id).await?;
    crate::domain::clinics::require_staff_of(actor, doctor.clinic_id)?;
    if !crate::domain::clinics::patients::knows_now(db, doctor.clinic_id, patient_id).await? {
        return Err(Error::not_found("patient"));
    }
    insert(db, actor, patient_id, Some(doctor), None, note).await
}

async fn insert(
    db: &Db,
    actor: &Actor,
    patient_id: Uuid,
    doctor: Option<doctors::Doctor>,
    specialty: Option<specialties::Specialty>,
    note: &str,
) -> Result<WaitlistEntry> {
    let mut checks = crate::domain::validate::Checks::new();
    let note = checks.text("note", note, 0, 500);
    checks.finish()?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO waitlist (id, patient_id, specialty_id, doctor_id, note, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $6)";
    on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(id)
        .bind(patient_id)
        .bind(specialty.as_ref().map(|s| s.id))
        .bind(doctor.as_ref().map(|d| d.id))
        // What the patient wrote, sealed like a visit's reason (read by no one yet).
        .bind(
            db.policy()
                .sealer
                .seal_text(&note, format!("waitlist:{id}:note").as_bytes())
        )
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))
    .map_err(|e| {
        let e = Error::from(e);
        let e = e.on_unique(
            "waitlist_patient_doctor_key",
            Code::Conflict,
            "You are already waiting for this doctor.",
        );
        e.on_unique(
            "waitlist_patient_specialty_key",
            Code::Conflict,
            "You are already waiting for this specialty.",
        )
    })?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "waitlist.joined",
            subject: format!("waitlist:{id}"),
            clinic_id: doctor.as_ref().map(|d| d.clinic_id),
            details: json!({"doctor": doctor.as_ref().map(|d| d.id), "specialty": specialty.as_ref().map(|s| &s.slug)}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(WaitlistEntry {
        id,
        doctor_id: doctor.map(|d| d.id),
        specialty: specialty.map(|s| s.slug),
        created_at: now,
    })
}

// ---- Offers ---------------------------------------------------------------------------

crate::text_enum! {
    /// A waitlist offer: made, taken, lapsed or turned down.
    pub enum OfferStatus {
        Offered = "offered",
        Accepted = "accepted",
        Expired = "expired",
        Declined = "declined",
    }
}

/// A freed time held for a waitlisted patient until `expires_at`.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Offer {
    pub id: Uuid,
    pub waitlist_id: Uuid,
    pub slot_id: Uuid,
    pub doctor_id: Uuid,
    pub doctor_name: String,
    pub starts_at: DateTime<Utc>,
    pub status: OfferStatus,
    pub expires_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Candidate {
    id: Uuid,
    patient_id: Uuid,
    doctor_name: String,
    clinic_name: String,
    time_zone: TimeZone,
    starts_at: DateTime<Utc>,
}

/// In the transaction that freed `slot_id`: holds it for the first patient waiting for
/// its doctor (or one of the doctor's specialties), highest priority first, then who
/// joined first, who has not had this slot offered before; and tells them.
pub(crate) async fn offer_freed_slot(
    tx: &mut Tx,
    db: &Db,
    slot_id: Uuid,
    not_for: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>> {
    const PICK: &str = "SELECT w.id, w.patient_id, d.display_name AS doctor_name, c.name AS clinic_name, c.time_zone, s.starts_at \
        FROM slots s JOIN doctors d ON d.id = s.doctor_id JOIN clinics c ON c.id = s.clinic_id CROSS JOIN waitlist w \
        WHERE s.id = $1 AND s.status = 'open' AND s.starts_at > $3 AND w.status = 'waiting' AND w.patient_id <> $2 \
        AND (w.doctor_id = s.doctor_id OR (w.doctor_id IS NULL AND w.specialty_id IN \
            (SELECT ds.specialty_id FROM doctor_specialties ds WHERE ds.doctor_id = s.doctor_id))) \
        AND NOT EXISTS (SELECT 1 FROM waitlist_offers o WHERE o.waitlist_id = w.id AND o.slot_id = s.id) \
        ORDER BY w.priority DESC, w.created_at, w.id LIMIT 1";
    let Some(c) = on_tx!(tx, |conn| sqlx::query_as::<_, Candidate>(PICK)
        .bind(slot_id)
        .bind(not_for)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await)?
    else {
        return Ok(None);
    };
    let expires_at = now + db.policy().waitlist_offer;
    const HOLD: &str = "UPDATE slots SET status = 'held', held_by = $2, hold_expires_at = $3, updated_at = $4 \
        WHERE id = $1 AND status = 'open'";
    let held = crate::exec_tx!(tx, HOLD, slot_id, c.patient_id, expires_at, now)?;
    if held == 0 {
        return Ok(None);
    }
    let id = Uuid::now_v7();
    const OFFER: &str = "INSERT INTO waitlist_offers (id, waitlist_id, patient_id, slot_id, status, expires_at, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, 'offered', $5, $6, $6)";
    crate::exec_tx!(tx, OFFER, id, c.id, c.patient_id, slot_id, expires_at, now)?;
    const MARK: &str = "UPDATE waitlist SET status = 'offered', updated_at = $2 WHERE id = $1";
    crate::exec_tx!(tx, MARK, c.id, now)?;
    let to = outbox::contact(tx, c.patient_id).await?;
    let tz = c.time_zone.tz();
    let offer = messages::Offer {
        patient: &to.display_name,
        doctor: &c.doctor_name,
        clinic: &c.clinic_name,
        starts_at: Moment::new(c.starts_at, tz),
        held_until: Moment::new(expires_at, tz),
    };
    let message: outbox::Message = Kind::WaitlistOffer(&offer).render(to.language)?.into();
    outbox::enqueue(
        tx,
        db.policy(),
        "waitlist_offer",
        &format!("offer:{id}"),
        &to,
        &message,
        now,
    )
    .await?;
    audit::record(
        tx,
        &Actor::System,
        Entry {
            action: "waitlist.offered",
            subject: format!("waitlist_offer:{id}"),
            clinic_id: None,
            details: json!({"slot": slot_id, "patient": c.patient_id, "waitlist": c.id}),
        },
    )
    .await?;
    Ok(Some(id))
}

#[derive(sqlx::FromRow)]
struct Lapsed {
    id: Uuid,
    waitlist_id: Uuid,
    patient_id: Uuid,
    slot_id: Uuid,
}

/// Offers not taken in time lapse; the slot passes to the next waiting patient. Each
/// offer in its own transaction, by conditional updates (safe on several replicas).
pub async fn expire_offers(db: &Db, now: DateTime<Utc>) -> Result<Batch> {
    const DUE: &str = "SELECT id, waitlist_id, patient_id, slot_id FROM waitlist_offers \
        WHERE status = 'offered' AND expires_at <= $1 ORDER BY expires_at LIMIT 100";
    let due = on_db!(db, |pool| sqlx::query_as::<_, Lapsed>(DUE)
        .bind(now)
        .fetch_all(pool)
        .await)?;
    let mut batch = Batch::default();
    for o in due {
        let row = o.id;
        let one = async {
            let mut tx = db.begin().await?;
            const EXPIRE: &str = "UPDATE waitlist_offers SET status = 'expired', updated_at = $2 WHERE id = $1 AND status = 'offered'";
            let done = crate::exec_tx!(&mut tx, EXPIRE, o.id, now)?;
            if done == 0 {
                return Ok(false);
            }
            // Back in the queue, unless they joined it again meanwhile.
            const REQUEUE: &str = "UPDATE waitlist SET status = 'waiting', updated_at = $2 WHERE id = $1 AND status = 'offered' \
                AND NOT EXISTS (SELECT 1 FROM waitlist w2 WHERE w2.patient_id = waitlist.patient_id AND w2.status = 'waiting' \
                AND w2.id <> waitlist.id AND (w2.doctor_id = waitlist.doctor_id \
                OR (w2.doctor_id IS NULL AND waitlist.doctor_id IS NULL AND w2.specialty_id = waitlist.specialty_id)))";
            const RELEASE: &str = "UPDATE slots SET status = 'open', held_by = NULL, hold_expires_at = NULL, updated_at = $3 \
                WHERE id = $1 AND status = 'held' AND held_by = $2";
            crate::exec_tx!(&mut tx, REQUEUE, o.waitlist_id, now)?;
            crate::exec_tx!(&mut tx, RELEASE, o.slot_id, o.patient_id, now)?;
            outbox::cancel_about(&mut tx, &format!("offer:{}", o.id), &["waitlist_offer"]).await?;
            audit::record(
                &mut tx,
                &Actor::System,
                Entry {
                    action: "waitlist.offer_expired",
                    subject: format!("waitlist_offer:{}", o.id),
                    clinic_id: None,
                    details: json!({"slot": o.slot_id}),
                },
            )
            .await?;
            offer_freed_slot(&mut tx, db, o.slot_id, o.patient_id, now).await?;
            tx.commit().await?;
            Ok::<bool, Error>(true)
        };
        if batch.count("passing on a lapsed waitlist offer", row, one.await) == Some(true) {
            batch.done += 1;
        }
    }
    Ok(batch)
}

macro_rules! select_offers {
    ($tail:literal) => {
        concat!("SELECT o.id, o.waitlist_id, o.slot_id, s.doctor_id, d.display_name AS doctor_name, s.starts_at, \
    o.status, o.expires_at FROM waitlist_offers o JOIN slots s ON s.id = o.slot_id JOIN doctors d ON d.id = s.doctor_id ", $tail)
    };
}

/// The signed-in patient's offers, newest first.
pub async fn my_offers(db: &Db, actor: &Actor) -> Result<Vec<Offer>> {
    let p = actor.principal()?;
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Offer>(
        select_offers!("WHERE o.patient_id = $1 ORDER BY o.created_at DESC LIMIT 50")
    )
    .bind(p.user_id)
    .fetch_all(pool)
    .await)?)
}

/// Books the offered time for the patient it was offered to, while the offer stands.
pub async fn accept(db: &Db, actor: &Actor, offer_id: Uuid) -> Result<Appointment> {
    let p = actor.principal()?;
    let offer = on_db!(db, |pool| sqlx::query_as::<_, Offer>(select_offers!(
        "WHERE o.id = $1 AND o.patient_id = $2"
    ))
    .bind(offer_id)
    .bind(p.user_id)
    .fetch_optional(pool)
    .await)?
    .ok_or_else(|| Error::not_found("offer"))?;
    if offer.status != OfferStatus::Offered || offer.expires_at <= Utc::now() {
        return Err(Error::new(
            Code::HoldExpired,
            "This offer has lapsed; the time may have gone to someone else.",
        ));
    }
    let appointment =
        appointments::confirm(db, actor, offer.slot_id, "Offered from the waitlist").await?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const ACCEPT: &str =
        "UPDATE waitlist_offers SET status = 'accepted', updated_at = $2 WHERE id = $1";
    const BOOKED: &str = "UPDATE waitlist SET status = 'booked', updated_at = $2 WHERE id = $1";
    for (sql, id) in [(ACCEPT, offer.id), (BOOKED, offer.waitlist_id)] {
        crate::exec_tx!(&mut tx, sql, id, now)?;
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "waitlist.offer_accepted",
            subject: format!("waitlist_offer:{}", offer.id),
            clinic_id: Some(appointment.clinic_id),
            details: json!({"appointment": appointment.id}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(appointment)
}
