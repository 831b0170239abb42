//! Files on visit records and lab orders: PDF reports, JPEG and PNG scans. A file is what
//! its bytes say it is (a declared type that disagrees is refused), no larger than the
//! configured limit, sealed before it reaches the file store (a local folder or an S3
//! bucket), and served only as a download (`Content-Disposition: attachment`, `nosniff`).
//! Who reads it is the record's rule (a patient: once the record is signed and, for a lab
//! file, once the results are reviewed); every read is audited. Users never delete a file:
//! removing one hides it, and the retention job purges it, bytes included.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::care::access;
use crate::domain::clinical::{audit_read, require_clinic_doctor};
use crate::domain::validate::Checks;
use crate::error::{Code, Error, Result};
use crate::on_db;
use crate::storage::FileStore;

/// What may be kept, by the type its bytes show, and the extension it is stored with.
const ALLOWED: [(&str, &str); 3] = [
    ("application/pdf", "pdf"),
    ("image/jpeg", "jpg"),
    ("image/png", "png"),
];

/// A file's description (its bytes come from `GET /files/{id}`).
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct FileMeta {
    pub id: Uuid,
    pub record_id: Uuid,
    pub lab_order_id: Option<Uuid>,
    pub name: String,
    /// `application/pdf`, `image/jpeg` or `image/png`, read from the content.
    pub media_type: String,
    pub size: i64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

/// What a file is attached to.
#[derive(Clone, Copy, Debug)]
pub enum Attach {
    Record(Uuid),
    LabOrder(Uuid),
}

/// The record, patient and clinic a file goes with.
#[derive(sqlx::FromRow)]
struct Owner {
    record_id: Uuid,
    patient_id: Uuid,
    clinic_id: Uuid,
}

async fn owner(db: &Db, to: Attach) -> Result<Owner> {
    let found = match to {
        Attach::Record(id) => {
            const SQL: &str = "SELECT id AS record_id, patient_id, clinic_id \
                FROM visit_records WHERE id = $1 AND deleted_at IS NULL";
            on_db!(db, |pool| sqlx::query_as::<_, Owner>(SQL)
                .bind(id)
                .fetch_optional(pool)
                .await)?
        }
        Attach::LabOrder(id) => {
            const SQL: &str = "SELECT o.record_id, o.patient_id, o.clinic_id \
                FROM lab_orders o JOIN visit_records r ON r.id = o.record_id \
                WHERE o.id = $1 AND o.deleted_at IS NULL AND r.deleted_at IS NULL";
            on_db!(db, |pool| sqlx::query_as::<_, Owner>(SQL)
                .bind(id)
                .fetch_optional(pool)
                .await)?
        }
    };
    found.ok_or_else(|| {
        Error::not_found(match to {
            Attach::Record(_) => "record",
            Attach::LabOrder(_) => "lab order",
        })
    })
}

/// The type a file's bytes show, when it is one that may be kept.
fn recognise(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    let found = infer::get(bytes)?.mime_type();
    ALLOWED.iter().copied().find(|(mime, _)| *mime == found)
}

fn unsupported(detail: String) -> Error {
    Error::new(Code::UnsupportedMediaType, detail)
}

/// A doctor treating the patient at the record's clinic attaches a file (audited).
#[allow(clippy::too_many_arguments)]
pub async fn upload(
    db: &Db,
    files: &dyn FileStore,
    actor: &Actor,
    to: Attach,
    name: &str,
    declared: Option<&str>,
    bytes: &[u8],
    max_bytes: usize,
) -> Result<FileMeta> {
    let owner = owner(db, to).await?;
    require_clinic_doctor(db, actor, owner.patient_id, owner.clinic_id, "file.upload").await?;
    let p = actor.principal()?;
    if bytes.len() > max_bytes {
        return Err(too_large(max_bytes));
    }
    let mut checks = Checks::new();
    // A name as the uploader's computer gave it; folders are not part of it.
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let name = checks.line("name", base, 1, 200);
    if bytes.is_empty() {
        checks.fail("file", "is empty");
    }
    checks.finish()?;
    let (media_type, ext) = recognise(bytes).ok_or_else(|| {
        unsupported("A clinical file must be a PDF, JPEG or PNG (read from its content).".into())
    })?;
    let declared = declared
        .and_then(|d| d.split(';').next())
        .map(|d| d.trim().to_ascii_lowercase());
    if let Some(d) = declared.as_deref()
        && d != media_type
        && d != "application/octet-stream"
        && !(d == "image/jpg" && media_type == "image/jpeg")
    {
        return Err(unsupported(format!(
            "The file was sent as {d} but its content is {media_type}."
        )));
    }
    let id = Uuid::now_v7();
    let key = format!("clinical/{}/{id}.{ext}", owner.patient_id);
    let sha256 = hex(&Sha256::digest(bytes));
    let sealed = db.policy().sealer.seal(bytes, &context(id));
    files
        .put(&key, &sealed)
        .await
        .map_err(|e| Error::internal(format!("storing {key}: {e}")))?;
    let lab_order_id = match to {
        Attach::LabOrder(order) => Some(order),
        Attach::Record(_) => None,
    };
    let now = Utc::now();
    let stored = async {
        let mut tx = db.begin().await?;
        const SQL: &str = "INSERT INTO clinical_files (id, record_id, lab_order_id, patient_id, clinic_id, name, media_type, size, \
            sha256, storage_key, uploaded_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
        crate::exec_tx!(
            &mut tx,
            SQL,
            id,
            owner.record_id,
            lab_order_id,
            owner.patient_id,
            owner.clinic_id,
            name.as_str(),
            media_type,
            bytes.len() as i64,
            sha256.as_str(),
            key.as_str(),
            p.user_id,
            now
        )?;
        audit::record(
            &mut tx,
            actor,
            Entry {
                action: "file.uploaded",
                subject: format!("file:{id}"),
                clinic_id: Some(owner.clinic_id),
                details: json!({"patient": owner.patient_id, "record": owner.record_id, "bytes": bytes.len()}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok::<(), Error>(())
    };
    if let Err(e) = stored.await {
        // Nothing refers to the bytes: take them away again.
        let _ = files.delete(&key).await;
        return Err(e);
    }
    Ok(FileMeta {
        id,
        record_id: owner.record_id,
        lab_order_id,
        name,
        media_type: media_type.to_owned(),
        size: bytes.len() as i64,
        sha256,
        created_at: now,
    })
}

pub fn too_large(max_bytes: usize) -> Error {
    Error::new(
        Code::PayloadTooLarge,
        format!(
            "A clinical file may be at most {} MiB.",
            max_bytes / (1024 * 1024)
        ),
    )
}

fn context(id: Uuid) -> Vec<u8> {
    format!("file:{id}").into_bytes()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(sqlx::FromRow)]
struct FileRow {
    #[sqlx(flatten)]
    meta: FileMeta,
    patient_id: Uuid,
    clinic_id: Uuid,
    storage_key: String,
    released: bool,
}

/// A file and its bytes, for whoever may read its record (a patient: once released).
pub async fn download(
    db: &Db,
    files: &dyn FileStore,
    actor: &Actor,
    id: Uuid,
) -> Result<(FileMeta, Vec<u8>)> {
    let p = actor.principal()?;
    const SQL: &str = "SELECT f.id, f.record_id, f.lab_order_id, f.name, f.media_type, f.size, f.sha256, f.created_at, \
        f.patient_id, f.clinic_id, f.storage_key, \
        (r.status = 'signed' AND (o.id IS NULL OR o.status = 'reviewed')) AS released \
        FROM clinical_files f JOIN visit_records r ON r.id = f.record_id LEFT JOIN lab_orders o ON o.id = f.lab_order_id \
        WHERE f.id = $1 AND f.deleted_at IS NULL AND r.deleted_at IS NULL AND o.deleted_at IS NULL";
    let row = on_db!(db, |pool| sqlx::query_as::<_, FileRow>(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?
    .ok_or_else(|| Error::not_found("file"))?;
    access::require_read(db, actor, row.patient_id, row.clinic_id, "file.read").await?;
    if row.patient_id == p.user_id && !row.released {
        return Err(Error::not_found("file"));
    }
    let sealed = files
        .get(&row.storage_key)
        .await
        .map_err(|e| Error::internal(format!("reading {}: {e}", row.storage_key)))?
        .ok_or_else(|| Error::internal(format!("{} is missing from the store", row.storage_key)))?;
    let bytes = db
        .policy()
        .sealer
        .open(&sealed, &context(id))
        .map_err(|e| Error::internal(format!("file {id}: {e}")))?;
    audit_read(db, actor, "file.read", row.patient_id, json!({"file": id})).await?;
    Ok((row.meta, bytes))
}

/// A patient's live files (the caller checked access and hangs them on what it shows).
pub(crate) async fn of_patient(db: &Db, patient_id: Uuid) -> Result<Vec<FileMeta>> {
    const SQL: &str = "SELECT id, record_id, lab_order_id, name, media_type, size, sha256, created_at \
        FROM clinical_files WHERE patient_id = $1 AND deleted_at IS NULL ORDER BY created_at, id";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, FileMeta>(SQL)
        .bind(patient_id)
        .fetch_all(pool)
        .await)?)
}

/// A doctor treating the patient at the file's clinic removes it (kept for audit, purged
/// by the retention job).
pub async fn remove(db: &Db, actor: &Actor, id: Uuid, reason: &str) -> Result<()> {
    #[derive(sqlx::FromRow)]
    struct Row {
        patient_id: Uuid,
        clinic_id: Uuid,
    }
    const SQL: &str =
        "SELECT patient_id, clinic_id FROM clinical_files WHERE id = $1 AND deleted_at IS NULL";
    let row = on_db!(db, |pool| sqlx::query_as::<_, Row>(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?
    .ok_or_else(|| Error::not_found("file"))?;
    require_clinic_doctor(db, actor, row.patient_id, row.clinic_id, "file.remove").await?;
    let p = actor.principal()?;
    let mut checks = Checks::new();
    let reason = checks.text("reason", reason, 3, 1000);
    checks.finish()?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    const HIDE: &str = "UPDATE clinical_files SET deleted_at = $2, deleted_by = $3, deleted_reason = $4 \
        WHERE id = $1 AND deleted_at IS NULL";
    crate::exec_tx!(&mut tx, HIDE, id, now, p.user_id, reason.as_str())?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "file.removed",
            subject: format!("file:{id}"),
            clinic_id: Some(row.clinic_id),
            details: json!({"patient": row.patient_id}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The stored bytes of files about to be purged: those removed before `before` (or whose
/// record or order was), or all of `patient`'s when given.
pub(crate) async fn purge_bytes(
    db: &Db,
    files: &dyn FileStore,
    before: DateTime<Utc>,
    patient: Option<Uuid>,
) -> Result<()> {
    const REMOVED: &str = "SELECT f.storage_key FROM clinical_files f JOIN visit_records r ON r.id = f.record_id \
        LEFT JOIN lab_orders o ON o.id = f.lab_order_id \
        WHERE f.deleted_at < $1 OR r.deleted_at < $1 OR o.deleted_at < $1";
    const OF_PATIENT: &str = "SELECT storage_key FROM clinical_files WHERE patient_id = $1";
    let keys: Vec<String> = match patient {
        None => on_db!(db, |pool| sqlx::query_scalar(REMOVED)
            .bind(before)
            .fetch_all(pool)
            .await)?,
        Some(id) => on_db!(db, |pool| sqlx::query_scalar(OF_PATIENT)
            .bind(id)
            .fetch_all(pool)
            .await)?,
    };
    for key in keys {
        files
            .delete(&key)
            .await
            .map_err(|e| Error::internal(format!("purging {key}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_what_its_bytes_say() {
        assert_eq!(
            recognise(b"%PDF-1.7\n1 0 obj").map(|t| t.0),
            Some("application/pdf")
        );
        assert_eq!(
            recognise(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").map(|t| t.0),
            Some("image/png")
        );
        assert_eq!(
            recognise(b"\xFF\xD8\xFF\xE0\0\x10JFIF").map(|t| t.1),
            Some("jpg")
        );
        assert_eq!(recognise(b"<html><script>alert(1)</script>"), None);
        assert_eq!(recognise(b"MZ\x90\0\x03\0\0\0"), None);
        assert_eq!(recognise(b""), None);
    }
}
