//! A person's data, all of it: handed to them on request, and erased when they (or a
//! system admin) delete the account. Erasure removes or pseudonymises every copy of their
//! contact data and of what they wrote outside the clinical record, cancels their future
//! visits (the slots go back to the waitlist), stops their reminders, and leaves the
//! clinical record (notes, plans, profile, visit records, prescriptions, labs) sealed for
//! the retention period, after which a job purges it; the same job purges what doctors
//! removed from records once the retention period has passed.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{Batch, Db};
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::care::access::{self, Share};
use crate::domain::care::care_plans::{self, ActionableSteps};
use crate::domain::care::notes::{self, Note};
use crate::domain::care::reminders::{self, Reminder};
use crate::domain::clinical;
use crate::domain::clinical::labs::{self, LabOrder};
use crate::domain::clinical::profiles::{self, Profile};
use crate::domain::clinical::records::{self, Record};
use crate::domain::clinical::transcripts::{self, Transcript};
use crate::domain::identity;
use crate::domain::identity::invitations::{self, Invitation};
use crate::domain::identity::people::{self, UserView};
use crate::domain::scheduling::appointments::{self, Appointment};
use crate::error::{Code, Error, Result};
use crate::storage::FileStore;
use crate::{on_db, on_tx};

/// Everything the service keeps about the signed-in person.
#[derive(Debug, Serialize, ToSchema)]
pub struct Export {
    pub exported_at: DateTime<Utc>,
    pub account: UserView,
    pub appointments: Vec<Appointment>,
    pub notes: Vec<Note>,
    pub care: ActionableSteps,
    pub reminders: Vec<Reminder>,
    pub waitlist: Vec<WaitingFor>,
    pub record_shares: Vec<Share>,
    pub invitations: Vec<Invitation>,
    pub profile: Profile,
    /// Signed visit records.
    pub records: Vec<Record>,
    /// Lab orders, with results once reviewed.
    pub labs: Vec<LabOrder>,
    /// The latest transcript of each signed visit that has one.
    pub transcripts: Vec<Transcript>,
}

/// A waitlist entry of theirs.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct WaitingFor {
    pub id: Uuid,
    pub doctor_id: Option<Uuid>,
    pub specialty_id: Option<Uuid>,
    pub note: String,
    pub created_at: DateTime<Utc>,
}

/// The signed-in person's data, as JSON (audited).
pub async fn export(db: &Db, actor: &Actor) -> Result<Export> {
    let p = actor.principal()?;
    let user = people::find(db, p.user_id)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    let now = Utc::now();
    const WAITING: &str = "SELECT id, doctor_id, specialty_id, note, created_at FROM waitlist WHERE patient_id = $1 ORDER BY created_at";
    let waiting: Vec<WaitingFor> = on_db!(db, |pool| sqlx::query_as(WAITING)
        .bind(p.user_id)
        .fetch_all(pool)
        .await)?;
    let waitlist = waiting
        .into_iter()
        .map(|mut w| {
            w.note = db
                .policy()
                .sealer
                .open_text(&w.note, format!("waitlist:{}:note", w.id).as_bytes())
                .map_err(|e| Error::internal(format!("waitlist {}: {e}", w.id)))?;
            Ok(w)
        })
        .collect::<Result<Vec<_>>>()?;
    let records = records::list(db, actor, p.user_id).await?;
    let shown: Vec<Uuid> = records.iter().map(|r| r.id).collect();
    let export = Export {
        exported_at: now,
        account: people::view(db, &user).await?,
        appointments: appointments::mine(db, actor, true).await?,
        notes: notes::list(db, actor, p.user_id).await?,
        care: care_plans::actionable_steps(db, actor, p.user_id).await?,
        reminders: reminders::mine(
            db,
            actor,
            user.created_at - chrono::Duration::days(1),
            now + chrono::Duration::days(3660),
        )
        .await?,
        waitlist,
        record_shares: access::shares(db, actor).await?,
        invitations: invitations::mine(db, actor).await?,
        profile: profiles::mine(db, actor).await?,
        records,
        labs: labs::list(db, actor, p.user_id).await?,
        transcripts: transcripts::latest_of(db, p.user_id, &shown).await?,
    };
    let mut tx = db.begin().await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "account.exported",
            subject: format!("user:{}", p.user_id),
            clinic_id: None,
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(export)
}

/// What an erasure did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erased {
    /// Future visits cancelled (their times offered to the waitlist).
    pub cancelled_visits: usize,
    /// When the sealed clinical record will be purged.
    pub record_purged_after: DateTime<Utc>,
}

/// The signed-in person erases their own account (the caller re-authenticated first).
pub async fn erase_own(db: &Db, actor: &Actor) -> Result<Erased> {
    let p = actor.principal()?;
    if p.is_system_admin() {
        // The service must keep someone who can run it.
        const OTHERS: &str = "SELECT COUNT(*) FROM user_roles r JOIN users u ON u.id = r.user_id \
            WHERE r.role = 'system_admin' AND r.user_id <> $1 AND u.deactivated_at IS NULL";
        let others: i64 = on_db!(db, |pool| sqlx::query_scalar(OTHERS)
            .bind(p.user_id)
            .fetch_one(pool)
            .await)?;
        if others == 0 {
            return Err(Error::new(
                Code::Conflict,
                "You are the last system admin: make someone else one before deleting your account.",
            ));
        }
    }
    erase(db, actor, p.user_id).await
}

/// A system admin erases someone else's account.
pub async fn erase_by_admin(db: &Db, actor: &Actor, user_id: Uuid) -> Result<Erased> {
    actor.require_system_admin()?;
    if actor.user_id() == Some(user_id) {
        return Err(Error::new(
            Code::Conflict,
            "You cannot delete your own account here.",
        ));
    }
    erase(db, actor, user_id).await
}

async fn erase(db: &Db, actor: &Actor, user_id: Uuid) -> Result<Erased> {
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let user = people::find_in(&mut tx, user_id)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    let cancelled_visits = appointments::cancel_for_erasure(&mut tx, db, user_id, now).await?;
    let placeholder = format!("deleted-{user_id}@invalid");
    const PHONE: &str = "SELECT COALESCE(phone, '') FROM users WHERE id = $1";
    let phone: String = on_tx!(&mut tx, |conn| sqlx::query_scalar(PHONE)
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await)?;
    // Each copy of their contact data and of what they wrote outside the clinical record.
    const BY_USER: [&str; 12] = [
        "DELETE FROM clinic_patients WHERE patient_id = $1",
        "UPDATE patient_profiles SET national_id = NULL, insurance_id = NULL, emergency_contacts = '[]' WHERE patient_id = $1",
        "DELETE FROM waitlist_offers WHERE patient_id = $1",
        "DELETE FROM waitlist WHERE patient_id = $1",
        "DELETE FROM idempotency_keys WHERE user_id = $1",
        "DELETE FROM record_shares WHERE patient_id = $1",
        "DELETE FROM patient_doctors WHERE patient_id = $1",
        "DELETE FROM clinic_invitations WHERE user_id = $1",
        "DELETE FROM user_roles WHERE user_id = $1",
        "DELETE FROM one_time_codes WHERE user_id = $1",
        "DELETE FROM mfa_challenges WHERE user_id = $1",
        "UPDATE reminders SET status = 'cancelled' WHERE patient_id = $1 AND status = 'scheduled'",
    ];
    for sql in BY_USER {
        crate::exec_tx!(&mut tx, sql, user_id)?;
    }
    const BY_ADDRESS: [&str; 3] = [
        "DELETE FROM mail_outbox WHERE recipient = $2",
        "DELETE FROM outbox WHERE user_id = $1 OR recipient = $2 OR (recipient = $3 AND $3 <> '')",
        "DELETE FROM clinic_invitations WHERE email = $2",
    ];
    for sql in BY_ADDRESS {
        crate::exec_tx!(&mut tx, sql, user_id, &user.email, &phone)?;
    }
    const USER: &str = "UPDATE users SET email = $3, display_name = 'Deleted user', password_hash = NULL, phone = NULL, \
        time_zone = NULL, language = 'en', totp_secret = NULL, totp_pending_secret = NULL, mfa_method = 'none', \
        deactivated_at = COALESCE(deactivated_at, $2), erased_at = $2, updated_at = $2 WHERE id = $1";
    identity::revoke_all_sessions(&mut tx, user_id, now, "deleted").await?;
    crate::exec_tx!(&mut tx, USER, user_id, now, &placeholder)?;
    let record_purged_after = now + db.policy().record_retention;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "user.deleted",
            subject: format!("user:{user_id}"),
            clinic_id: None,
            details: json!({"cancelled_visits": cancelled_visits, "by_self": actor.user_id() == Some(user_id)}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Erased {
        cancelled_visits,
        record_purged_after,
    })
}

/// Purges the sealed clinical record of accounts erased longer ago than the retention
/// period: their reminders, plans and notes. Returns how many accounts were purged.
pub async fn purge_expired_records(
    db: &Db,
    files: &dyn FileStore,
    now: DateTime<Utc>,
) -> Result<Batch> {
    let before = now - db.policy().record_retention;
    const DUE: &str = "SELECT id FROM users WHERE erased_at IS NOT NULL AND erased_at < $1 \
        AND (EXISTS (SELECT 1 FROM notes n WHERE n.patient_id = users.id) \
        OR EXISTS (SELECT 1 FROM visit_records r WHERE r.patient_id = users.id) \
        OR EXISTS (SELECT 1 FROM patient_profiles p WHERE p.patient_id = users.id)) LIMIT 100";
    let due: Vec<Uuid> = on_db!(db, |pool| sqlx::query_scalar(DUE)
        .bind(before)
        .fetch_all(pool)
        .await)?;
    let mut batch = Batch::default();
    const PURGE: [&str; 14] = [
        "DELETE FROM transcripts WHERE patient_id = $1",
        "DELETE FROM clinical_files WHERE patient_id = $1",
        "DELETE FROM lab_results WHERE patient_id = $1",
        "DELETE FROM lab_orders WHERE patient_id = $1",
        "DELETE FROM prescriptions WHERE patient_id = $1",
        "DELETE FROM record_addenda WHERE record_id IN (SELECT id FROM visit_records WHERE patient_id = $1)",
        "DELETE FROM visit_records WHERE patient_id = $1",
        "DELETE FROM patient_profiles WHERE patient_id = $1",
        "DELETE FROM reminders WHERE patient_id = $1",
        "DELETE FROM checklist_items WHERE plan_id IN (SELECT id FROM care_plans WHERE patient_id = $1)",
        "DELETE FROM plan_items WHERE plan_id IN (SELECT id FROM care_plans WHERE patient_id = $1)",
        "DELETE FROM care_plans WHERE patient_id = $1",
        "DELETE FROM notes WHERE patient_id = $1",
        "UPDATE outbox SET status = 'cancelled' WHERE user_id = $1 AND status = 'pending'",
    ];
    for user_id in &due {
        let row = *user_id;
        let one = async {
            clinical::files::purge_bytes(db, files, before, Some(row)).await?;
            let mut tx = db.begin().await?;
            for sql in PURGE {
                crate::exec_tx!(&mut tx, sql, user_id)?;
            }
            audit::record_as(
                &mut tx,
                None,
                Entry {
                    action: "record.purged",
                    subject: format!("user:{user_id}"),
                    clinic_id: None,
                    details: json!({}),
                },
            )
            .await?;
            tx.commit().await?;
            Ok::<bool, Error>(true)
        };
        if batch.count("purging an erased account's records", row, one.await) == Some(true) {
            batch.done += 1;
        }
    }
    batch.done += purge_removed(db, files, before).await?;
    Ok(batch)
}

/// Purges what users removed from clinical records (records with their prescriptions,
/// addenda, lab orders and results; single orders and values) longer ago than the
/// retention period. Returns how many records and orders went.
async fn purge_removed(db: &Db, files: &dyn FileStore, before: DateTime<Utc>) -> Result<u64> {
    clinical::files::purge_bytes(db, files, before, None).await?;
    const PURGE: [&str; 7] = [
        "DELETE FROM transcripts WHERE deleted_at < $1 OR record_id IN (SELECT id FROM visit_records WHERE deleted_at < $1)",
        "DELETE FROM clinical_files WHERE deleted_at < $1 \
         OR record_id IN (SELECT id FROM visit_records WHERE deleted_at < $1) \
         OR lab_order_id IN (SELECT id FROM lab_orders WHERE deleted_at < $1)",
        "DELETE FROM lab_results WHERE deleted_at < $1 OR order_id IN (SELECT o.id FROM lab_orders o \
         LEFT JOIN visit_records r ON r.id = o.record_id WHERE o.deleted_at < $1 OR r.deleted_at < $1)",
        "DELETE FROM prescriptions WHERE deleted_at < $1 OR record_id IN (SELECT id FROM visit_records WHERE deleted_at < $1)",
        "DELETE FROM record_addenda WHERE record_id IN (SELECT id FROM visit_records WHERE deleted_at < $1)",
        "DELETE FROM lab_orders WHERE deleted_at < $1 OR record_id IN (SELECT id FROM visit_records WHERE deleted_at < $1)",
        "DELETE FROM visit_records WHERE deleted_at < $1",
    ];
    let mut tx = db.begin().await?;
    let mut purged = 0;
    for (i, sql) in PURGE.into_iter().enumerate() {
        let n = crate::exec_tx!(&mut tx, sql, before)?;
        // Counted: the orders and the records.
        if i >= 5 {
            purged += n;
        }
    }
    tx.commit().await?;
    Ok(purged)
}
