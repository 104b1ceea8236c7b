//! TOTP enrolment and bypass codes through the HTTP API, with a client-credentials token.

mod common;

use bypass_idp::domain::repo::{AuditRepo, BypassCodeRepo};
use common::{TestApp, assert_scim_error, create_code, enroll_totp, enrolled_user, user_body};
use reqwest::Method;
use serde_json::json;

const MFA_EXT: &str = "urn:bypass-idp:params:scim:schemas:extension:mfa:2.0:User";

fn is_grouped_code(code: &str, digits: usize) -> bool {
    let plain: String = code.chars().filter(|c| *c != '-').collect();
    plain.len() == digits
        && plain.bytes().all(|b| b.is_ascii_digit())
        && code.split('-').all(|g| g.len() <= 4)
}

fn outbox_messages(app: &TestApp) -> Vec<String> {
    let dir = app.data_dir.path().join("outbox");
    let mut messages: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    messages.sort();
    messages
}

#[tokio::test]
async fn help_desk_enrolls_generates_lists_emails_and_revokes() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &token, "lost.phone").await;
    let (_, user, _) = app
        .scim(Method::GET, &format!("/Users/{user_id}"), &token, None)
        .await;
    assert_eq!(user[MFA_EXT]["totpStatus"], "enrolled");
    assert!(
        user["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(MFA_EXT))
    );
    // A list shows each user's state as the user's own resource does (none: no totpStatus).
    let pending = app.create_user(&token, user_body("lost.pending")).await;
    let pending_id = pending["id"].as_str().unwrap();
    let (status, started, _) = app
        .scim(
            Method::POST,
            &format!("/Users/{pending_id}/totp"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 201, "{started}");
    app.create_user(&token, user_body("lost.none")).await;
    let (status, list, _) = app
        .scim(
            Method::GET,
            "/Users?filter=userName%20sw%20%22lost.%22&sortBy=userName",
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let states: Vec<(&str, &str)> = list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let status = u[MFA_EXT]["totpStatus"].as_str().unwrap_or("absent");
            (u["userName"].as_str().unwrap(), status)
        })
        .collect();
    assert_eq!(
        states,
        [
            ("lost.none", "absent"),
            ("lost.pending", "pending"),
            ("lost.phone", "enrolled")
        ]
    );

    let once = create_code(
        &app,
        &token,
        &user_id,
        json!({"expiresIn": {"days": 1, "hours": 2, "minutes": 3}}),
    )
    .await;
    assert!(
        is_grouped_code(once["code"].as_str().unwrap(), 12),
        "{once}"
    );
    assert_eq!(once["status"], "active");
    assert_eq!(once["maxUsageCount"], 1);
    assert_eq!(once["remainingUsageCount"], 1);
    assert_eq!(once["actualUsageCount"], 0);
    assert_eq!(once["origin"], "helpDesk");
    assert_eq!(once["createdBy"], format!("client:{}", app.admin_id));
    let expires =
        chrono::DateTime::parse_from_rfc3339(once["expiresAt"].as_str().unwrap()).unwrap();
    let expected = chrono::Utc::now() + chrono::Duration::minutes(24 * 60 + 123);
    assert!(
        (expires.timestamp() - expected.timestamp()).abs() < 60,
        "{expires}"
    );

    let three = create_code(
        &app,
        &token,
        &user_id,
        json!({"neverExpires": true, "maxUsageCount": 3}),
    )
    .await;
    assert!(three["expiresAt"].is_null());
    assert_eq!(three["maxUsageCount"], 3);
    let unlimited = create_code(
        &app,
        &token,
        &user_id,
        json!({"expiresIn": {"minutes": 30}, "unlimitedUsage": true, "notify": ["email"]}),
    )
    .await;
    assert!(unlimited["maxUsageCount"].is_null() && unlimited["remainingUsageCount"].is_null());
    assert_eq!(
        unlimited["notifications"][0]["status"], "sent",
        "{unlimited}"
    );

    // The file outbox holds the message, with the code and its expiry, in both parts.
    let messages = outbox_messages(&app);
    assert_eq!(messages.len(), 1);
    let text = common::decode_mail(&messages[0]);
    assert!(text.contains(unlimited["code"].as_str().unwrap()), "{text}");
    assert!(text.contains("lost.phone@example.com"));
    assert!(text.contains("any number of times") && text.contains("expires on"));
    assert!(messages[0].contains("text/plain") && messages[0].contains("text/html"));

    // Listing and reading never show a plaintext code.
    let (status, list, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{user_id}/bypassCodes"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["totalResults"], 3);
    let listing = list.to_string();
    for created in [&once, &three, &unlimited] {
        let digits: String = created["code"]
            .as_str()
            .unwrap()
            .chars()
            .filter(|c| c.is_ascii_digit())
            .collect();
        assert!(!listing.contains(&digits) && !listing.contains(created["code"].as_str().unwrap()));
    }
    assert!(
        list["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("code").is_none())
    );
    let code_path = format!(
        "/Users/{user_id}/bypassCodes/{}",
        three["id"].as_str().unwrap()
    );
    let (status, fetched, _) = app.scim(Method::GET, &code_path, &token, None).await;
    assert_eq!(status, 200);
    assert!(fetched.get("code").is_none());
    assert_eq!(
        fetched["meta"]["location"],
        format!("{}/scim/v2{code_path}", app.base)
    );

    // Emailing again needs the code itself; a wrong one is refused.
    let notify = format!("{code_path}/notifications");
    let (status, body, _) = app
        .scim(
            Method::POST,
            &notify,
            &token,
            Some(json!({"code": "0000-0000-0000"})),
        )
        .await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
    let spaced = three["code"].as_str().unwrap().replace('-', " ");
    let (status, sent, _) = app
        .scim(Method::POST, &notify, &token, Some(json!({"code": spaced})))
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["notifications"][0]["status"], "sent");
    assert!(sent.get("code").is_none());
    assert_eq!(outbox_messages(&app).len(), 2);

    let (status, _, _) = app.scim(Method::DELETE, &code_path, &token, None).await;
    assert_eq!(status, 204);
    let (_, revoked, _) = app.scim(Method::GET, &code_path, &token, None).await;
    assert_eq!(revoked["status"], "revoked");
    assert!(revoked["revokedAt"].is_string());
    let (status, _, _) = app.scim(Method::DELETE, &code_path, &token, None).await;
    assert_eq!(status, 204, "revoking twice is not an error");
    let (status, body, _) = app
        .scim(
            Method::POST,
            &notify,
            &token,
            Some(json!({"code": three["code"]})),
        )
        .await;
    assert_scim_error(status, &body, 400, None);

    let (_, active, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{user_id}/bypassCodes?filter=status%20eq%20%22active%22"),
            &token,
            None,
        )
        .await;
    assert_eq!(active["totalResults"], 2);
    let (_, gone, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{user_id}/bypassCodes?filter=status%20eq%20%22revoked%22"),
            &token,
            None,
        )
        .await;
    assert_eq!(gone["Resources"][0]["id"], three["id"]);
    let (status, body, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{user_id}/bypassCodes?filter=origin%20eq%20%22x%22"),
            &token,
            None,
        )
        .await;
    assert_scim_error(status, &body, 400, Some("invalidFilter"));

    let (status, events, _) = app
        .scim(
            Method::GET,
            &format!("{code_path}/auditEvents"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = events["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    // The wrong code sent to be emailed is on the trail: a guess is never silent.
    assert_eq!(names, ["generated", "email_refused", "emailed", "revoked"]);
    let generated = &events["Resources"][0];
    assert_eq!(generated["actor"], format!("client:{}", app.admin_id));
    assert_eq!(generated["clientId"], app.admin_id.as_str());
    assert_eq!(generated["ip"], "127.0.0.1");
    assert!(
        !events.to_string().contains(&spaced.replace(' ', "")),
        "no code in the audit trail"
    );
    app.stop().await;
}

#[tokio::test]
async fn generation_is_refused_with_clear_errors() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let no_token_scope = app.admin_token(Some("scim:users")).await;
    let request = json!({"expiresIn": {"hours": 1}});

    let (status, body, _) = app
        .scim(
            Method::POST,
            "/Users/nobody/bypassCodes",
            &token,
            Some(request.clone()),
        )
        .await;
    assert_scim_error(status, &body, 404, None);

    let plain = app.create_user(&token, user_body("not.enrolled")).await;
    let plain_id = plain["id"].as_str().unwrap();
    let (status, body, _) = app
        .scim(
            Method::POST,
            &format!("/Users/{plain_id}/bypassCodes"),
            &token,
            Some(request.clone()),
        )
        .await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
    assert!(
        body["detail"].as_str().unwrap().contains("not enrolled"),
        "{body}"
    );
    // A started but unconfirmed enrolment is not enough either.
    let (status, _, _) = app
        .scim(
            Method::POST,
            &format!("/Users/{plain_id}/totp"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 201);
    let (status, body, _) = app
        .scim(
            Method::POST,
            &format!("/Users/{plain_id}/bypassCodes"),
            &token,
            Some(request.clone()),
        )
        .await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));

    let (user_id, _) = enrolled_user(&app, &token, "enrolled").await;
    let codes = format!("/Users/{user_id}/bypassCodes");
    let (status, body, _) = app
        .scim(Method::POST, &codes, &no_token_scope, Some(request.clone()))
        .await;
    assert_scim_error(status, &body, 403, None);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("bypass_codes:manage")
    );

    for (bad, field) in [
        (json!({}), "expiresIn"),
        (
            json!({"expiresIn": {"days": 1}, "neverExpires": true}),
            "neverExpires",
        ),
        (
            json!({"neverExpires": true, "maxUsageCount": 0}),
            "maxUsageCount",
        ),
        (
            json!({"neverExpires": true, "maxUsageCount": 5, "unlimitedUsage": true}),
            "unlimitedUsage",
        ),
        (json!({"expiresIn": {"minutes": -5}}), "expiresIn.minutes"),
        (
            json!({"neverExpires": true, "notify": ["pigeon"]}),
            "notify",
        ),
    ] {
        let (status, body, _) = app
            .scim(Method::POST, &codes, &token, Some(bad.clone()))
            .await;
        assert_scim_error(status, &body, 400, Some("invalidValue"));
        assert!(
            body["detail"].as_str().unwrap().contains(field),
            "{bad}: {body}"
        );
    }

    // Policy limits, and the policy resource itself.
    let settings = json!({"codeLength": 16, "maxActive": 2, "helpDeskMaxUsage": 3, "helpDeskMaxExpiryMinutes": 120});
    let (status, saved, _) = app
        .scim(Method::PUT, "/BypassCodeSettings", &token, Some(settings))
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["helpDeskMaxUsage"], 3);
    assert_eq!(
        saved["selfServiceMaxUsage"], 1,
        "absent fields keep their defaults"
    );
    let (_, read, _) = app
        .scim(Method::GET, "/BypassCodeSettings", &token, None)
        .await;
    assert_eq!(read["codeLength"], 16);
    for (bad, field) in [
        (json!({"expiresIn": {"hours": 3}}), "120"),
        (json!({"neverExpires": true}), "120"),
        (json!({"expiresIn": {"hours": 1}, "maxUsageCount": 4}), "3"),
        (
            json!({"expiresIn": {"hours": 1}, "unlimitedUsage": true}),
            "3",
        ),
    ] {
        let (status, body, _) = app
            .scim(Method::POST, &codes, &token, Some(bad.clone()))
            .await;
        assert_scim_error(status, &body, 400, Some("invalidValue"));
        assert!(
            body["detail"].as_str().unwrap().contains(field),
            "{bad}: {body}"
        );
    }
    let first = create_code(
        &app,
        &token,
        &user_id,
        json!({"expiresIn": {"hours": 2}, "maxUsageCount": 3}),
    )
    .await;
    assert!(is_grouped_code(first["code"].as_str().unwrap(), 16));
    create_code(&app, &token, &user_id, request.clone()).await;
    let (status, body, _) = app
        .scim(Method::POST, &codes, &token, Some(request.clone()))
        .await;
    assert_scim_error(status, &body, 409, None);
    assert!(
        body["detail"].as_str().unwrap().contains("maxActive"),
        "{body}"
    );
    app.scim(
        Method::DELETE,
        &format!("{codes}/{}", first["id"].as_str().unwrap()),
        &token,
        None,
    )
    .await;
    create_code(&app, &token, &user_id, request.clone()).await;

    for bad in [
        json!({"codeLength": 4}),
        json!({"maxActive": 0}),
        json!({"helpDeskMaxUsage": "many"}),
        // An SDK sending unset members as null must not lift a limit by accident.
        json!({"helpDeskMaxUsage": null}),
        json!({"helpDeskMaxUsage": 3, "helpDeskMaxUsageUnlimited": true}),
    ] {
        let (status, body, _) = app
            .scim(Method::PUT, "/BypassCodeSettings", &token, Some(bad))
            .await;
        assert_scim_error(status, &body, 400, Some("invalidValue"));
    }
    let (status, _, _) = app
        .scim(
            Method::PUT,
            "/BypassCodeSettings",
            &token,
            Some(json!({"helpDeskGenerationEnabled": false})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body, _) = app
        .scim(Method::POST, &codes, &token, Some(request.clone()))
        .await;
    assert_scim_error(status, &body, 403, None);
    assert!(body["detail"].as_str().unwrap().contains("disabled"));

    // An inactive user gets no code.
    app.scim(Method::PUT, "/BypassCodeSettings", &token, Some(json!({})))
        .await;
    let patch = json!({"schemas": [common::PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let (status, _, _) = app
        .scim(
            Method::PATCH,
            &format!("/Users/{user_id}"),
            &token,
            Some(patch),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body, _) = app.scim(Method::POST, &codes, &token, Some(request)).await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
    assert!(body["detail"].as_str().unwrap().contains("inactive"));
    app.stop().await;
}

#[tokio::test]
async fn totp_enrolment_confirm_and_reset() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let user = app.create_user(&token, user_body("totp.user")).await;
    let id = user["id"].as_str().unwrap();
    let (status, body, _) = app
        .scim(Method::POST, "/Users/missing/totp", &token, None)
        .await;
    assert_scim_error(status, &body, 404, None);
    let (_, state, _) = app
        .scim(Method::GET, &format!("/Users/{id}/totp"), &token, None)
        .await;
    assert_eq!(state["status"], "none");

    let (status, _, _) = app
        .scim(Method::POST, &format!("/Users/{id}/totp"), &token, None)
        .await;
    assert_eq!(status, 201);
    let (_, state, _) = app
        .scim(Method::GET, &format!("/Users/{id}/totp"), &token, None)
        .await;
    assert_eq!(state["status"], "pending");
    assert!(state.get("secret").is_none());
    let (status, body, _) = app
        .scim(
            Method::POST,
            &format!("/Users/{id}/totp/confirmation"),
            &token,
            Some(json!({"code": "000000"})),
        )
        .await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));

    let secret = enroll_totp(&app, &token, id).await;
    let (status, body, _) = app
        .scim(Method::POST, &format!("/Users/{id}/totp"), &token, None)
        .await;
    assert_scim_error(status, &body, 409, None);
    let (status, body, _) = app
        .scim(
            Method::POST,
            &format!("/Users/{id}/totp/confirmation"),
            &token,
            Some(json!({"code": "123456"})),
        )
        .await;
    assert_scim_error(status, &body, 409, None);

    let code = create_code(&app, &token, id, json!({"neverExpires": true})).await;
    let (status, body, _) = app
        .scim(
            Method::DELETE,
            &format!("/Users/{id}/totp"),
            &token,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, state, _) = app
        .scim(Method::GET, &format!("/Users/{id}/totp"), &token, None)
        .await;
    assert_eq!(state["status"], "none");
    let (_, revoked, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{id}/bypassCodes/{}", code["id"].as_str().unwrap()),
            &token,
            None,
        )
        .await;
    assert_eq!(revoked["status"], "revoked", "reset revokes the codes");
    // The old secret is gone: a new enrolment gets a new one.
    assert_ne!(enroll_totp(&app, &token, id).await, secret);

    let scim_only = app.admin_token(Some("scim:users")).await;
    let (status, body, _) = app
        .scim(Method::POST, &format!("/Users/{id}/totp"), &scim_only, None)
        .await;
    assert_scim_error(status, &body, 403, None);
    assert!(body["detail"].as_str().unwrap().contains("mfa:manage"));
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_user_revokes_and_keeps_their_codes() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &token, "leaver").await;
    let code = create_code(&app, &token, &user_id, json!({"neverExpires": true})).await;
    let (status, _, _) = app
        .scim(Method::DELETE, &format!("/Users/{user_id}"), &token, None)
        .await;
    assert_eq!(status, 204);
    let row = app
        .store()
        .find_code(
            &bypass_idp::domain::ids::UserId::new(&user_id),
            code["id"].as_str().unwrap(),
        )
        .await
        .unwrap()
        .expect("kept for audit");
    assert!(row.revoked_at.is_some());
    let events = app.store().code_events(&row.id).await.unwrap();
    assert_eq!(events.last().unwrap().event.as_str(), "revoked");
    assert_eq!(
        events.last().unwrap().detail.as_deref(),
        Some("user deleted")
    );
    app.stop().await;
}
