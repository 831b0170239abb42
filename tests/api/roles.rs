//! Who may do what: the permission matrix of the account and role endpoints.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    the_role_matrix_holds_for_every_caller,
    a_clinic_admin_manages_only_their_own_clinic,
    deactivation_ends_the_users_logins,
);

struct Cast {
    clinic_a: Uuid,
    clinic_b: Uuid,
    target: Uuid,
    tokens: Vec<(&'static str, Option<String>)>,
}

async fn cast(app: &TestApp) -> Cast {
    let clinic_a = app.clinic("Clinic A").await;
    let clinic_b = app.clinic("Clinic B").await;
    let a = clinic_a.to_string();
    let b = clinic_b.to_string();
    let (_, patient) = app.user_with("patient@example.org", &[]).await;
    let (_, doctor) = app
        .user_with(
            "doctor@example.org",
            &[json!({"role": "doctor", "clinic_id": a})],
        )
        .await;
    let (_, staff) = app
        .user_with(
            "staff@example.org",
            &[json!({"role": "clinic_staff", "clinic_id": a})],
        )
        .await;
    let (_, admin_a) = app
        .user_with(
            "admin-a@example.org",
            &[json!({"role": "clinic_admin", "clinic_id": a})],
        )
        .await;
    let (_, admin_b) = app
        .user_with(
            "admin-b@example.org",
            &[json!({"role": "clinic_admin", "clinic_id": b})],
        )
        .await;
    let (_, pharmacist) = app
        .user_with("pharma@example.org", &[json!({"role": "pharmacist"})])
        .await;
    let (_, sysadmin) = app
        .user_with("root@example.org", &[json!({"role": "system_admin"})])
        .await;
    // The person whose roles are changed: a receptionist of clinic A.
    let (target, _) = app
        .user_with(
            "target@example.org",
            &[json!({"role": "clinic_staff", "clinic_id": a})],
        )
        .await;
    Cast {
        clinic_a,
        clinic_b,
        target,
        tokens: vec![
            ("anonymous", None),
            ("patient", Some(patient)),
            ("doctor", Some(doctor)),
            ("clinic_staff", Some(staff)),
            ("clinic_admin_a", Some(admin_a)),
            ("clinic_admin_b", Some(admin_b)),
            ("pharmacist", Some(pharmacist)),
            ("system_admin", Some(sysadmin)),
        ],
    }
}

async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> u16 {
    app.request(method, path, token, body).await.status.as_u16()
}

async fn the_role_matrix_holds_for_every_caller(app: TestApp) {
    let cast = cast(&app).await;
    let users = "/api/v1/admin/users";
    let grant_path = format!("/api/v1/admin/users/{}/roles", cast.target);
    let doctor_in_a = json!({"role": "doctor", "clinic_id": cast.clinic_a});
    let revoke_path = format!(
        "/api/v1/admin/users/{}/roles/doctor?clinic_id={}",
        cast.target, cast.clinic_a
    );
    let make_admin = json!({"role": "system_admin"});

    //                     caller            me   list  grant revoke sysadmin
    let expected: &[(&str, [u16; 5])] = &[
        ("anonymous", [401, 401, 401, 401, 401]),
        ("patient", [200, 403, 403, 403, 403]),
        ("doctor", [200, 403, 403, 403, 403]),
        ("clinic_staff", [200, 403, 403, 403, 403]),
        ("clinic_admin_a", [200, 200, 200, 200, 403]),
        ("clinic_admin_b", [200, 200, 403, 403, 403]),
        ("pharmacist", [200, 403, 403, 403, 403]),
        ("system_admin", [200, 200, 200, 200, 200]),
    ];
    for (who, want) in expected {
        let token = cast
            .tokens
            .iter()
            .find(|(n, _)| n == who)
            .and_then(|(_, t)| t.as_deref());
        let got = [
            call(&app, token, Method::GET, "/api/v1/me", None).await,
            call(&app, token, Method::GET, users, None).await,
            call(
                &app,
                token,
                Method::POST,
                &grant_path,
                Some(doctor_in_a.clone()),
            )
            .await,
            call(&app, token, Method::DELETE, &revoke_path, None).await,
            call(
                &app,
                token,
                Method::POST,
                &grant_path,
                Some(make_admin.clone()),
            )
            .await,
        ];
        assert_eq!(
            &got, want,
            "{who}: me, list users, grant doctor, revoke doctor, grant system_admin"
        );
        // Leave the target as it was for the next caller.
        app.execute("DELETE FROM user_roles WHERE role IN ('doctor', 'system_admin') AND user_id NOT IN (SELECT id FROM users WHERE email = 'root@example.org' OR email = 'doctor@example.org')").await;
    }
}

async fn a_clinic_admin_manages_only_their_own_clinic(app: TestApp) {
    let cast = cast(&app).await;
    let admin_a = cast
        .tokens
        .iter()
        .find(|(n, _)| *n == "clinic_admin_a")
        .and_then(|(_, t)| t.clone())
        .unwrap();
    let grant_path = format!("/api/v1/admin/users/{}/roles", cast.target);

    // Their clinic's people only.
    let listed = app.get_as(&admin_a, "/api/v1/admin/users").await;
    let emails: Vec<&str> = listed
        .assert_ok(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert!(
        emails.contains(&"doctor@example.org") && emails.contains(&"target@example.org"),
        "{emails:?}"
    );
    assert!(
        !emails.contains(&"admin-b@example.org") && !emails.contains(&"patient@example.org"),
        "{emails:?}"
    );

    app.post_as(
        &admin_a,
        &grant_path,
        json!({"role": "doctor", "clinic_id": cast.clinic_b}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post_as(
        &admin_a,
        &grant_path,
        json!({"role": "clinic_admin", "clinic_id": cast.clinic_a}),
    )
    .await
    .assert_problem(403, "forbidden");
    let granted = app
        .post_as(
            &admin_a,
            &grant_path,
            json!({"role": "doctor", "clinic_id": cast.clinic_a}),
        )
        .await;
    assert!(
        granted.assert_ok(200)["roles"]
            .as_array()
            .unwrap()
            .contains(&json!({"role": "doctor", "clinic_id": cast.clinic_a}))
    );
    app.post_as(
        &admin_a,
        &grant_path,
        json!({"role": "doctor", "clinic_id": cast.clinic_a}),
    )
    .await
    .assert_problem(409, "role_already_granted");
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM audit WHERE action = $1",
            "role.granted"
        )
        .await,
        1,
        "the role change is in the audit log"
    );
    app.post_as(&admin_a, &grant_path, json!({"role": "doctor"}))
        .await
        .assert_problem(422, "validation_failed");
    app.post_as(
        &admin_a,
        &grant_path,
        json!({"role": "surgeon", "clinic_id": cast.clinic_a}),
    )
    .await
    .assert_problem(422, "invalid_body");
    let nobody = format!("/api/v1/admin/users/{}/roles", Uuid::now_v7());
    app.post_as(
        &admin_a,
        &nobody,
        json!({"role": "doctor", "clinic_id": cast.clinic_a}),
    )
    .await
    .assert_problem(404, "not_found");
    app.request(
        Method::POST,
        &format!("/api/v1/admin/users/{}/deactivate", cast.target),
        Some(&admin_a),
        None,
    )
    .await
    .assert_problem(403, "forbidden");
}

async fn deactivation_ends_the_users_logins(app: TestApp) {
    let (_, root) = app
        .user_with("root@example.org", &[json!({"role": "system_admin"})])
        .await;
    let (victim, token) = app.user_with("leaver@example.org", &[]).await;
    let r = app
        .request(
            Method::POST,
            &format!("/api/v1/admin/users/{victim}/deactivate"),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(r.assert_ok(200)["active"], false);
    app.get_as(&token, "/api/v1/me")
        .await
        .assert_problem(401, "invalid_token");
    app.post(
        "/api/v1/auth/login",
        json!({"email": "leaver@example.org", "password": crate::helpers::PASSWORD}),
    )
    .await
    .assert_problem(403, "account_deactivated");
    let me = app.get_as(&root, "/api/v1/me").await;
    let my_id = me.str("id");
    app.request(
        Method::POST,
        &format!("/api/v1/admin/users/{my_id}/deactivate"),
        Some(&root),
        None,
    )
    .await
    .assert_problem(409, "conflict");
}
