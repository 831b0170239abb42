//! A clinic's logo: checked by its bytes (PNG, JPEG or WebP, at most 512 KiB), kept in
//! the file store, and served back with the type it was checked as.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::db::Db;
use crate::domain::actor::Actor;
use crate::domain::audit::{self, Entry};
use crate::domain::clinics::{self, Clinic};
use crate::error::{Code, Error, Result};
use crate::storage::FileStore;

pub const MAX_LOGO_BYTES: usize = 512 * 1024;

/// The image types a logo may be, as (MIME type, file extension).
const ALLOWED: &[(&str, &str)] = &[
    ("image/png", "png"),
    ("image/jpeg", "jpg"),
    ("image/webp", "webp"),
];

/// The logo's type, from its bytes; `declared` (the request's Content-Type) must agree.
fn image_type(
    bytes: &[u8],
    declared: Option<&str>,
) -> Result<&'static (&'static str, &'static str)> {
    if bytes.is_empty() {
        return Err(Error::new(Code::InvalidBody, "The logo is empty."));
    }
    if bytes.len() > MAX_LOGO_BYTES {
        return Err(Error::new(
            Code::PayloadTooLarge,
            format!("A logo may be at most {} KiB.", MAX_LOGO_BYTES / 1024),
        ));
    }
    let unsupported = || {
        Error::new(
            Code::UnsupportedMediaType,
            "A logo must be a PNG, JPEG or WebP image.",
        )
    };
    let detected = infer::get(bytes)
        .map(|t| t.mime_type())
        .ok_or_else(unsupported)?;
    let allowed = ALLOWED
        .iter()
        .find(|(mime, _)| *mime == detected)
        .ok_or_else(unsupported)?;
    let declared = declared.map(|d| {
        d.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    match declared.as_deref() {
        None | Some("application/octet-stream") => Ok(allowed),
        Some(d) if d == detected => Ok(allowed),
        Some(d) => Err(Error::new(
            Code::UnsupportedMediaType,
            format!("The file says it is {d} but its content is {detected}."),
        )),
    }
}

/// The MIME type of a stored logo key.
pub fn mime_of(key: &str) -> &'static str {
    ALLOWED
        .iter()
        .find(|(_, ext)| key.ends_with(&format!(".{ext}")))
        .map(|(mime, _)| *mime)
        .unwrap_or("application/octet-stream")
}

/// Stores a new logo for the clinic (its admins) and forgets the old one.
pub async fn set_logo(
    db: &Db,
    files: &dyn FileStore,
    actor: &Actor,
    clinic_id: Uuid,
    declared: Option<&str>,
    bytes: &[u8],
) -> Result<Clinic> {
    clinics::require_admin_of(actor, clinic_id)?;
    let (_, ext) = image_type(bytes, declared)?;
    let current = clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let key = format!("logos/{clinic_id}-{}.{ext}", Uuid::now_v7());
    files
        .put(&key, bytes)
        .await
        .map_err(|e| Error::internal(format!("storing a logo: {e}")))?;
    let mut tx = db.begin().await?;
    const SQL: &str = "UPDATE clinics SET logo_path = $2, updated_at = $3 WHERE id = $1";
    let stored = crate::exec_tx!(&mut tx, SQL, clinic_id, &key, Utc::now());
    let recorded = match stored {
        Ok(_) => {
            audit::record(
                &mut tx,
                actor,
                Entry {
                    action: "clinic.logo_set",
                    subject: format!("clinic:{clinic_id}"),
                    clinic_id: Some(clinic_id),
                    details: json!({"bytes": bytes.len(), "type": ext}),
                },
            )
            .await
        }
        Err(e) => Err(e.into()),
    };
    if let Err(e) = recorded {
        // Nothing points at the new file: take it away again.
        let _ = files.delete(&key).await;
        return Err(e);
    }
    tx.commit().await?;
    if let Some(old) = current.logo_path
        && let Err(e) = files.delete(&old).await
    {
        tracing::warn!(key = %old, error = %e, "removing a replaced logo failed");
    }
    clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))
}

/// The clinic's logo bytes and type, if it has one.
pub async fn logo(
    db: &Db,
    files: &dyn FileStore,
    clinic_id: Uuid,
) -> Result<(Vec<u8>, &'static str)> {
    let clinic = clinics::get(db, clinic_id)
        .await?
        .ok_or_else(|| Error::not_found("clinic"))?;
    let key = clinic.logo_path.ok_or_else(|| Error::not_found("logo"))?;
    let bytes = files
        .get(&key)
        .await
        .map_err(|e| Error::internal(format!("reading a logo: {e}")))?
        .ok_or_else(|| Error::not_found("logo"))?;
    Ok((bytes, mime_of(&key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

    #[test]
    fn logos_are_recognised_by_content_not_by_label() {
        assert_eq!(image_type(PNG, Some("image/png")).unwrap().1, "png");
        assert_eq!(image_type(PNG, None).unwrap().1, "png");
        let lying = image_type(PNG, Some("image/jpeg")).unwrap_err();
        assert_eq!(lying.code(), Code::UnsupportedMediaType);
        let svg = image_type(
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            Some("image/svg+xml"),
        )
        .unwrap_err();
        assert_eq!(svg.code(), Code::UnsupportedMediaType);
        let big = vec![0u8; MAX_LOGO_BYTES + 1];
        assert_eq!(
            image_type(&big, None).unwrap_err().code(),
            Code::PayloadTooLarge
        );
        assert_eq!(image_type(b"", None).unwrap_err().code(), Code::InvalidBody);
    }
}
