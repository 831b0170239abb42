//! Fixtures for clinics, doctors and schedules, built through the API as an operator would.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;

pub struct Clinic {
    pub id: Uuid,
    pub admin: String,
    pub root: String,
}

impl TestApp {
    /// A system admin's token (created once per app).
    pub async fn root(&self) -> String {
        if self
            .scalar_i64_str(
                "SELECT COUNT(*) FROM users WHERE email = $1",
                "root@example.org",
            )
            .await
            == 0
        {
            self.user_with("root@example.org", &[json!({"role": "system_admin"})])
                .await
                .1
        } else {
            self.access_token("root@example.org").await
        }
    }

    /// An approved clinic in `time_zone` whose admin has signed in.
    pub async fn approved_clinic(&self, name: &str, time_zone: &str) -> Clinic {
        let root = self.root().await;
        let slug: String = name
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let admin_email = format!("admin@{slug}.example.org");
        self.verified_patient(&admin_email).await;
        let request = self
            .post(
                "/api/v1/clinic-requests",
                json!({"name": name, "address": "1 Main Street", "time_zone": time_zone, "contact_name": "Admin",
                       "contact_email": admin_email, "contact_phone": "+351 210 000 000", "specialties": ["dermatology"]}),
            )
            .await;
        let request_id = request.assert_ok(201)["id"].as_str().unwrap().to_owned();
        let clinic = self
            .post_as(
                &root,
                &format!("/api/v1/admin/clinic-requests/{request_id}/approve"),
                json!({}),
            )
            .await;
        let id: Uuid = clinic.assert_ok(200)["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // The applicant already had an account: it joins when it accepts.
        let admin = self.access_token(&admin_email).await;
        assert_eq!(self.accept_invitations(&admin).await, 1);
        Clinic { id, admin, root }
    }

    /// A dermatologist at `clinic` working `rules`, in 30-minute slots.
    pub async fn doctor_with_schedule(
        &self,
        clinic: &Clinic,
        name: &str,
        rules: Value,
        min_notice: i64,
    ) -> Uuid {
        let doctor = self
            .post_as(
                &clinic.admin,
                &format!("/api/v1/clinics/{}/doctors", clinic.id),
                json!({"display_name": name, "languages": ["en", "pt"], "fee_cents": 6000, "specialties": ["dermatology"]}),
            )
            .await;
        let id: Uuid = doctor.assert_ok(201)["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let report = self
            .request(
                reqwest::Method::PUT,
                &format!("/api/v1/doctors/{id}/schedule"),
                Some(&clinic.admin),
                Some(json!({"rules": rules, "slot_minutes": 30, "min_notice_minutes": min_notice, "horizon_days": 14})),
            )
            .await;
        assert!(
            report.assert_ok(200)["created"].as_u64().unwrap() > 0,
            "{:#}",
            report.body
        );
        id
    }

    /// Every day, all day, so there are always slots soon.
    pub fn all_week() -> Value {
        json!(
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .iter()
                .map(|d| json!({"weekday": d, "start": "00:00", "end": "23:30"}))
                .collect::<Vec<_>>()
        )
    }

    pub async fn free_slots(&self, doctor: Uuid, query: &str) -> Vec<Value> {
        let r = self
            .get(&format!("/api/v1/doctors/{doctor}/slots?{query}"))
            .await;
        r.assert_ok(200).as_array().unwrap().clone()
    }
}
