//! The waitlist: patients waiting for a doctor, or for any doctor of a specialty, to free
//! a time. Offers on cancellation come with the notifications.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::{Actor, Role};
use crate::domain::audit::{self, Entry};
use crate::domain::{doctors, specialties};
use crate::error::{Code, Error, Result};
use crate::on_tx;

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
    let mut checks = crate::domain::validate::Checks::new();
    let note = checks.text("note", note, 0, 500);
    checks.finish()?;
    let doctor = match doctor_id {
        Some(id) => Some(
            doctors::get(db, id)
                .await?
                .ok_or_else(|| Error::not_found("doctor"))?,
        ),
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
    let now = Utc::now();
    let id = Uuid::now_v7();
    let mut tx = db.begin().await?;
    const SQL: &str = "INSERT INTO waitlist (id, patient_id, specialty_id, doctor_id, note, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $6)";
    on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(id)
        .bind(p.user_id)
        .bind(specialty.as_ref().map(|s| s.id))
        .bind(doctor.as_ref().map(|d| d.id))
        .bind(&note)
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
