//! Daylight-saving days over the API: a 09:00 rule stays 09:00 local on the days clocks
//! change, in two zones, and the instants move by the hour the zone moved.

use chrono::{DateTime, Days, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::json;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(nine_oclock_slots_stay_nine_oclock_local_on_both_dst_days_in_two_zones);

/// The next two local dates (after the first few days) on which `tz` changes its offset.
fn next_changes(tz: Tz) -> Vec<NaiveDate> {
    let offset = |d: NaiveDate| {
        tz.from_utc_datetime(&d.and_hms_opt(12, 0, 0).unwrap())
            .offset()
            .fix()
            .local_minus_utc()
    };
    let start = Utc::now().date_naive() + Days::new(3);
    start
        .iter_days()
        .take(360)
        .filter(|d| offset(*d) != offset(d.pred_opt().unwrap()))
        .take(2)
        .collect()
}

async fn nine_oclock_slots_stay_nine_oclock_local_on_both_dst_days_in_two_zones(app: TestApp) {
    for zone in ["America/New_York", "Europe/Lisbon"] {
        let tz: Tz = zone.parse().unwrap();
        let clinic = app.approved_clinic(&format!("DST {zone}"), zone).await;
        let rules = json!(
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .map(|d| json!({"weekday": d, "start": "09:00", "end": "10:00"}))
        );
        let doctor = app
            .doctor_with_schedule(&clinic, "Dr. Early", rules.clone(), 0)
            .await;
        // The fixture books two weeks ahead; reach a year so both changes are covered.
        app.request(
            reqwest::Method::PUT,
            &format!("/api/v1/doctors/{doctor}/schedule"),
            Some(&clinic.admin),
            Some(json!({"rules": rules, "slot_minutes": 30, "min_notice_minutes": 0, "horizon_days": 366})),
        )
        .await
        .assert_ok(200);
        let changes = next_changes(tz);
        assert_eq!(changes.len(), 2, "{zone} changes twice a year");
        for day in changes {
            let from = day - Days::new(1);
            let to = day + Days::new(2);
            let slots = app
                .free_slots(doctor, &format!("from={from}&to={to}&limit=200"))
                .await;
            assert_eq!(slots.len(), 6, "{zone} {day}: two slots a day");
            for s in &slots {
                let starts: DateTime<Utc> = s["starts_at"].as_str().unwrap().parse().unwrap();
                let local = starts.with_timezone(&tz);
                assert_eq!(
                    s["local_minute"].as_i64().unwrap(),
                    i64::from(local.format("%H").to_string().parse::<i32>().unwrap()) * 60
                        + i64::from(local.format("%M").to_string().parse::<i32>().unwrap()),
                );
                assert!(
                    ["09:00", "09:30"].contains(&local.format("%H:%M").to_string().as_str()),
                    "{zone} {day}: {local}"
                );
                assert_eq!(s["local_date"], local.date_naive().to_string());
            }
            let utc_hour = |i: usize| {
                let t: DateTime<Utc> = slots[i]["starts_at"].as_str().unwrap().parse().unwrap();
                t.format("%H").to_string().parse::<i32>().unwrap()
            };
            // The day before and the day of the change are an hour apart in UTC.
            assert_eq!(
                (utc_hour(0) - utc_hour(2)).abs(),
                1,
                "{zone} {day}: {slots:#?}"
            );
            assert_eq!(utc_hour(2), utc_hour(4), "{zone} {day}");
        }
    }
}
