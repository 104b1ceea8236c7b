//! Issuance controls over HTTP, with the product's default policy: a reason kept with the
//! code (and required by policy), a scheduled start, two-person approval (no code anywhere
//! until a second person approves, then only in the user's mail), alerts to the user on
//! issue and on use, printable self-service sets, and relying parties that refuse codes.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::rp::*;
use common::{TestApp, assert_scim_error, audit_of, create_code, enrolled_user, outbox, user_body};
use reqwest::Method;
use serde_json::{Value, json};

/// The outbox once it holds `count` mails (alerts on use are sent after the sign-in goes
/// on), waiting at most five seconds.
async fn outbox_of(app: &TestApp, count: usize) -> Vec<String> {
    for _ in 0..50 {
        let mails = outbox(app);
        // A mail being written is not complete yet.
        if mails.len() >= count && mails.iter().all(|m| m.contains("</html>")) {
            return mails;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    outbox(app)
}

/// Every bypass code (`1234-5678-9012`) in a text.
fn codes_in(text: &str) -> Vec<String> {
    // Not part of a longer run of digits, letters and dashes: a UUID's groups are not a code.
    let mut codes: Vec<String> =
        regex::Regex::new(r"(?:^|[^0-9A-Za-z-])(\d{4}-\d{4}-\d{4})(?:[^0-9A-Za-z-]|$)")
            .unwrap()
            .captures_iter(text)
            .map(|c| c[1].to_owned())
            .collect();
    // A mail has the code in its text and its HTML part.
    codes.sort();
    codes.dedup();
    codes
}

async fn put_policy(app: &TestApp, token: &str, members: Value) {
    let (status, body, _) = app
        .scim(Method::PUT, "/BypassCodeSettings", token, Some(members))
        .await;
    assert_eq!(status, 200, "{body}");
}

fn events_named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

/// A client registered with the command line with `scope`, and its token.
async fn client_with(app: &TestApp, scope: &str) -> (String, String) {
    let (status, out, err) = app.cli(&["client", "add", "--scope", scope], None);
    assert_eq!(status, 0, "{err}");
    let client: Value = serde_json::from_str(out.trim()).unwrap();
    let id = client["client_id"].as_str().unwrap().to_owned();
    let response = app
        .token_for(&id, client["client_secret"].as_str().unwrap(), None)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    (id, body["access_token"].as_str().unwrap().to_owned())
}

async fn post_code(app: &TestApp, token: &str, user_id: &str, body: Value) -> (u16, Value) {
    let (status, body, _) = app
        .scim(
            Method::POST,
            &format!("/Users/{user_id}/bypassCodes"),
            token,
            Some(body),
        )
        .await;
    (status, body)
}

async fn approval(
    app: &TestApp,
    method: Method,
    token: &str,
    user_id: &str,
    code_id: &str,
) -> (u16, Value) {
    let (status, body, _) = app
        .scim(
            method,
            &format!("/Users/{user_id}/bypassCodes/{code_id}/approval"),
            token,
            None,
        )
        .await;
    (status, body)
}

/// Password, then a bypass code, in a new browser: the browser and the page after the code.
async fn code_step(app: &TestApp, rp: &Rp, user: &str, code: &str) -> (Browser, Page) {
    let browser = Browser::new(app);
    let (_, page) = code_sign_in(app, &browser, rp, user, code).await;
    (browser, page)
}

/// Whether a page after the bypass-code step means the code was accepted (the offer to set
/// up a new authenticator, the product's default, or the way back to the client).
fn accepted(page: &Page) -> bool {
    page.status == 303 || page.body.contains("value=\"setup\"")
}

#[tokio::test]
async fn a_reason_goes_with_the_code_everywhere_and_the_policy_can_require_one() {
    let app = TestApp::spawn_with_defaults(&[]).await;
    let admin = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &admin, "reason.user").await;
    put_policy(&app, &admin, json!({"reasonRequired": true})).await;

    let (status, body) =
        post_code(&app, &admin, &user_id, json!({"expiresIn": {"hours": 1}})).await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
    assert!(
        body["detail"].as_str().unwrap().contains("reason"),
        "{body}"
    );
    for bad in [
        json!(""),
        json!("   "),
        json!("x".repeat(501)),
        json!("two\nlines"),
        json!("tab\there"),
        json!(42),
        json!(["INC-1"]),
    ] {
        let (status, body) = post_code(
            &app,
            &admin,
            &user_id,
            json!({"expiresIn": {"hours": 1}, "reason": bad}),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("reason"),
            "{body}"
        );
    }
    // 500 characters, counted as characters, not bytes.
    let long = "é".repeat(500);
    let created = create_code(
        &app,
        &admin,
        &user_id,
        json!({"expiresIn": {"hours": 1}, "reason": long}),
    )
    .await;
    assert_eq!(created["reason"], long);

    let reason = "INC-4711: phone lost on a trip";
    let created = create_code(
        &app,
        &admin,
        &user_id,
        json!({"expiresIn": {"hours": 1}, "reason": format!("  {reason} "), "notify": ["email"]}),
    )
    .await;
    assert_eq!(created["reason"], reason, "kept trimmed");
    let code = created["code"].as_str().unwrap();
    let (_, list, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{user_id}/bypassCodes"),
            &admin,
            None,
        )
        .await;
    assert!(
        list["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["reason"] == reason && c.get("code").is_none())
    );
    let events = audit_of(&app, &admin, &user_id).await;
    assert!(
        events_named(&events, "generated")
            .iter()
            .any(|e| e["detail"].as_str().unwrap().contains(reason)),
        "{events:?}"
    );
    // The mail with the code says why; it is the user's only mail about it (the first code
    // was not emailed: its alert is the other mail).
    let mails = outbox(&app);
    assert_eq!(mails.len(), 2, "{mails:?}");
    let with_code: Vec<_> = mails.iter().filter(|m| m.contains(code)).collect();
    assert_eq!(with_code.len(), 1);
    assert!(with_code[0].contains(&format!("Reason given: {reason}")));
    app.stop().await;
}

#[tokio::test]
async fn a_scheduled_code_works_only_from_its_start_and_its_expiry_counts_from_there() {
    let app = TestApp::spawn_with_defaults(&[]).await;
    let admin = app.admin_token(None).await;
    let rp = register(&app, false, false).await;
    let (user_id, _) = enrolled_user(&app, &admin, "new.hire").await;

    let start_at = (Utc::now() + chrono::Duration::seconds(3))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let created = create_code(
        &app,
        &admin,
        &user_id,
        json!({"expiresIn": {"minutes": 10}, "startsAt": start_at}),
    )
    .await;
    assert_eq!(created["status"], "scheduled", "{created}");
    let starts = chrono::DateTime::parse_from_rfc3339(&start_at).unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(created["startsAt"].as_str().unwrap()).unwrap(),
        starts
    );
    let expires =
        chrono::DateTime::parse_from_rfc3339(created["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires - starts, chrono::Duration::minutes(10));
    let code = created["code"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap();

    // Before its start: refused with when it works, and no use counted; the right code
    // typed early is no failed guess (six tries, past the five-failure window).
    for _ in 0..6 {
        let (_, early) = code_step(&app, &rp, "new.hire", &code).await;
        assert_eq!(early.status, 200);
        assert!(early.body.contains("works from"), "{}", early.body);
    }
    let (_, read, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{user_id}/bypassCodes/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        (read["status"].as_str(), read["actualUsageCount"].as_i64()),
        (Some("scheduled"), Some(0))
    );
    let (_, scheduled, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{user_id}/bypassCodes?filter=status%20eq%20%22scheduled%22"),
            &admin,
            None,
        )
        .await;
    assert_eq!(scheduled["totalResults"], 1, "{scheduled}");
    let events = audit_of(&app, &admin, &user_id).await;
    assert!(
        events_named(&events, "failed")
            .iter()
            .any(|e| e["detail"] == "scheduled")
    );

    // Refused starts: in the past, too far ahead, not a time, without an offset.
    let far = (Utc::now() + chrono::Duration::days(31)).to_rfc3339();
    let past = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    for bad in [
        json!(past),
        json!(far),
        json!("tomorrow"),
        json!("2030-01-01T09:00:00"),
        json!(1),
    ] {
        let (status, body) = post_code(
            &app,
            &admin,
            &user_id,
            json!({"expiresIn": {"hours": 1}, "startsAt": bad}),
        )
        .await;
        assert_scim_error(status, &body, 400, Some("invalidValue"));
        assert!(
            body["detail"].as_str().unwrap().contains("startsAt"),
            "{body}"
        );
    }
    put_policy(&app, &admin, json!({"maxStartDelayDays": 0})).await;
    let soon = (Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    let (status, body) = post_code(
        &app,
        &admin,
        &user_id,
        json!({"expiresIn": {"hours": 1}, "startsAt": soon}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("maxStartDelayDays")
    );

    // From its start it signs in.
    let wait = (starts.with_timezone(&Utc) - Utc::now())
        .num_milliseconds()
        .max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait + 1_100)).await;
    let (_, page) = code_step(&app, &rp, "new.hire", &code).await;
    assert!(accepted(&page), "{}", page.body);
    app.stop().await;
}

#[tokio::test]
async fn an_unbounded_code_waits_for_a_second_person_and_only_the_user_ever_sees_it() {
    let app = TestApp::spawn_with_defaults(&[]).await;
    let admin = app.admin_token(None).await;
    let rp = register(&app, false, false).await;
    let (user_id, _) = enrolled_user(&app, &admin, "needs.approval").await;

    // The bootstrap client asks for a code that never expires: the request waits.
    let (status, pending, headers) = app
        .scim(
            Method::POST,
            &format!("/Users/{user_id}/bypassCodes"),
            &admin,
            Some(json!({"neverExpires": true, "reason": "INC-9 travelling", "notify": ["email"]})),
        )
        .await;
    assert_eq!(status, 202, "{pending}");
    assert_eq!(pending["status"], "pendingApproval");
    assert_eq!(pending["approval"], "pending");
    assert!(pending.get("code").is_none(), "{pending}");
    assert!(pending["lifetimeMinutes"].is_null());
    let id = pending["id"].as_str().unwrap().to_owned();
    assert!(headers["location"].to_str().unwrap().ends_with(&id));
    assert!(codes_in(&pending.to_string()).is_empty());
    assert!(outbox(&app).is_empty(), "nothing is mailed before approval");
    let events = audit_of(&app, &admin, &user_id).await;
    assert_eq!(events_named(&events, "approval_requested").len(), 1);
    assert!(events_named(&events, "generated").is_empty());
    assert!(codes_in(&serde_json::to_string(&events).unwrap()).is_empty());
    // A code that is not made cannot be emailed either.
    let (status, _, _) = app
        .scim(
            Method::POST,
            &format!("/Users/{user_id}/bypassCodes/{id}/notifications"),
            &admin,
            Some(json!({"code": "1234-5678-9012"})),
        )
        .await;
    assert_eq!(status, 400);

    // The bootstrap client cannot approve (no bypass_codes:approve); neither can a client
    // that has the scope approve its own request.
    let (status, body) = approval(&app, Method::POST, &admin, &user_id, &id).await;
    assert_scim_error(status, &body, 403, None);
    let (_, both) = client_with(&app, "bypass_codes:manage bypass_codes:approve").await;
    let (status, own) = post_code(
        &app,
        &both,
        &user_id,
        json!({"expiresIn": {"hours": 1}, "unlimitedUsage": true}),
    )
    .await;
    assert_eq!(status, 202, "{own}");
    let own_id = own["id"].as_str().unwrap();
    let (status, body) = approval(&app, Method::POST, &both, &user_id, own_id).await;
    assert_scim_error(status, &body, 403, None);
    assert!(
        body["detail"].as_str().unwrap().contains("two-person"),
        "{body}"
    );

    // A second person approves: the code is made and mailed to the user, not shown here.
    let (approver_id, approver) = client_with(&app, "bypass_codes:approve").await;
    let (status, approved) = approval(&app, Method::POST, &approver, &user_id, &id).await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "active");
    assert_eq!(approved["approval"], "approved");
    assert_eq!(approved["decidedBy"], format!("client:{approver_id}"));
    assert!(approved.get("code").is_none() && codes_in(&approved.to_string()).is_empty());
    assert!(approved["expiresAt"].is_null(), "never expires, as asked");
    let (status, again) = approval(&app, Method::POST, &approver, &user_id, &id).await;
    assert_scim_error(status, &again, 409, None);
    let (status, late) = approval(&app, Method::DELETE, &approver, &user_id, &id).await;
    assert_scim_error(status, &late, 409, None);

    let mails = outbox(&app);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(
        mails[0].contains("needs.approval@example.com") && mails[0].contains("INC-9 travelling")
    );
    let codes = codes_in(&mails[0]);
    assert_eq!(codes.len(), 1, "{}", mails[0]);
    let events = audit_of(&app, &admin, &user_id).await;
    let approved_events = events_named(&events, "approved");
    assert_eq!(approved_events.len(), 1);
    assert_eq!(approved_events[0]["actor"], format!("client:{approver_id}"));
    assert!(codes_in(&serde_json::to_string(&events).unwrap()).is_empty());

    // The mailed code signs the user in.
    let (_, page) = code_step(&app, &rp, "needs.approval", &codes[0]).await;
    assert!(accepted(&page), "{}", page.body);
    app.stop().await;
}

#[tokio::test]
async fn requests_are_withdrawn_rejected_lapse_and_are_approved_once() {
    let app = TestApp::spawn_with_defaults(&[]).await;
    let admin = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &admin, "asked.for").await;
    let (approver_id, approver) = client_with(&app, "bypass_codes:approve").await;
    let request = || json!({"expiresIn": {"days": 1}, "unlimitedUsage": true});
    let ask = || async {
        let (status, body) = post_code(&app, &admin, &user_id, request()).await;
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().unwrap().to_owned()
    };

    // The requester withdraws.
    let withdrawn = ask().await;
    let (status, body) = approval(&app, Method::DELETE, &admin, &user_id, &withdrawn).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["approval"].as_str()),
        (Some("revoked"), Some("withdrawn"))
    );
    let (status, _) = approval(&app, Method::POST, &approver, &user_id, &withdrawn).await;
    assert_eq!(status, 409);

    // An approver rejects.
    let rejected = ask().await;
    let (status, body) = approval(&app, Method::DELETE, &approver, &user_id, &rejected).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approval"], "rejected");
    assert_eq!(body["decidedBy"], format!("client:{approver_id}"));
    let events = audit_of(&app, &admin, &user_id).await;
    assert_eq!(events_named(&events, "withdrawn").len(), 1);
    assert_eq!(events_named(&events, "rejected").len(), 1);

    // A request not approved within 24 hours has expired.
    let lapsed = ask().await;
    {
        use entity::bypass_code;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        let past = Utc::now() - chrono::Duration::hours(25);
        bypass_code::Entity::update_many()
            .col_expr(bypass_code::Column::CreatedAt, Expr::value(past))
            .col_expr(
                bypass_code::Column::ExpiresAt,
                Expr::value(past + chrono::Duration::hours(24)),
            )
            .filter(bypass_code::Column::Id.eq(lapsed.as_str()))
            .exec(&app.store().db)
            .await
            .unwrap();
    }
    let (status, body) = approval(&app, Method::POST, &approver, &user_id, &lapsed).await;
    assert_scim_error(status, &body, 409, None);
    assert!(
        body["detail"].as_str().unwrap().contains("24 hours"),
        "{body}"
    );
    let (_, read, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{user_id}/bypassCodes/{lapsed}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(read["status"], "expired");

    // Eight approvals of one request at once: one code, one mail.
    let raced = ask().await;
    let answers = futures_util::future::join_all(
        (0..8).map(|_| approval(&app, Method::POST, &approver, &user_id, &raced)),
    )
    .await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 1, "{answers:?}");
    assert!(
        answers.iter().all(|(s, _)| *s == 200 || *s == 409),
        "{answers:?}"
    );
    assert_eq!(outbox(&app).len(), 1);

    // The user's address changed since the request: the code is not sent to the new one.
    let moved = ask().await;
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "emails", "value": [{"value": "attacker@example.net", "primary": true}]}],
    });
    let (status, body, _) = app
        .scim(
            Method::PATCH,
            &format!("/Users/{user_id}"),
            &admin,
            Some(patch),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = approval(&app, Method::POST, &approver, &user_id, &moved).await;
    assert_scim_error(status, &body, 409, None);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("email address changed"),
        "{body}"
    );
    assert_eq!(outbox(&app).len(), 1, "nothing sent to the new address");

    // The policy changed since the request: help-desk codes are switched off.
    let (status, _) = post_code(&app, &admin, &user_id, request()).await;
    assert_eq!(status, 202);
    let (_, list, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{user_id}/bypassCodes?filter=status%20eq%20%22pendingApproval%22"),
            &admin,
            None,
        )
        .await;
    let fresh = list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["sendTo"] == "attacker@example.net")
        .expect("the new request names the new address")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    put_policy(&app, &admin, json!({"helpDeskGenerationEnabled": false})).await;
    let (status, body) = approval(&app, Method::POST, &approver, &user_id, &fresh).await;
    assert_scim_error(status, &body, 409, None);
    assert!(
        body["detail"].as_str().unwrap().contains("policy changed"),
        "{body}"
    );
    put_policy(&app, &admin, json!({})).await;

    // Revoking someone else's request is rejecting it: the help desk alone may not.
    let (_, other_desk) = client_with(&app, "bypass_codes:manage").await;
    let (status, body, _) = app
        .scim(
            Method::DELETE,
            &format!("/Users/{user_id}/bypassCodes/{fresh}"),
            &other_desk,
            None,
        )
        .await;
    assert_scim_error(status, &body, 403, None);
    // Revoking a request withdraws it (its requester).
    let (status, _, _) = app
        .scim(
            Method::DELETE,
            &format!("/Users/{user_id}/bypassCodes/{fresh}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, read, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{user_id}/bypassCodes/{fresh}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        (read["status"].as_str(), read["approval"].as_str()),
        (Some("revoked"), Some("withdrawn"))
    );

    // Approving a request for an unknown user or code: 404.
    let (status, _) = approval(&app, Method::POST, &approver, &user_id, "no-such-code").await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn the_policy_says_which_codes_wait_and_whom_they_can_be_for() {
    let app = TestApp::spawn_with_defaults(&[]).await;
    let admin = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &admin, "plain.user").await;
    let (admin_user, _) = enrolled_user(&app, &admin, "security.person").await;
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Security administrators",
        "members": [{"value": admin_user}],
    });
    let (status, _, _) = app.scim(Method::POST, "/Groups", &admin, Some(group)).await;
    assert_eq!(status, 201);
    let bounded = || json!({"expiresIn": {"hours": 4}, "maxUsageCount": 2});

    // unbounded (the default): bounded codes go at once; unbounded ones and any code for an
    // administrator wait.
    assert_eq!(post_code(&app, &admin, &user_id, bounded()).await.0, 201);
    assert_eq!(post_code(&app, &admin, &admin_user, bounded()).await.0, 202);
    assert_eq!(
        post_code(
            &app,
            &admin,
            &user_id,
            json!({"expiresIn": {"hours": 4}, "unlimitedUsage": true})
        )
        .await
        .0,
        202
    );
    // always / never
    put_policy(&app, &admin, json!({"approvalRequired": "always"})).await;
    assert_eq!(post_code(&app, &admin, &user_id, bounded()).await.0, 202);
    put_policy(&app, &admin, json!({"approvalRequired": "never"})).await;
    assert_eq!(
        post_code(&app, &admin, &user_id, json!({"neverExpires": true}))
            .await
            .0,
        201
    );
    let (status, settings, _) = app
        .scim(Method::GET, "/BypassCodeSettings", &admin, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(settings["approvalRequired"], "never");
    for bad in [
        json!({"approvalRequired": "sometimes"}),
        json!({"approvalRequired": null}),
        json!({"selfServiceSetSize": 21}),
        json!({"maxStartDelayDays": 400}),
    ] {
        let (status, body, _) = app
            .scim(
                Method::PUT,
                "/BypassCodeSettings",
                &admin,
                Some(bad.clone()),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // A code that waits goes to the user by email: a user without an address cannot get one.
    put_policy(&app, &admin, json!({})).await;
    let mut body = user_body("no.mail");
    body.as_object_mut().unwrap().remove("emails");
    let no_mail = app.create_user(&admin, body).await;
    let no_mail = no_mail["id"].as_str().unwrap();
    common::enroll_totp(&app, &admin, no_mail).await;
    let (status, body) = post_code(&app, &admin, no_mail, json!({"neverExpires": true})).await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
    assert!(body["detail"].as_str().unwrap().contains("email"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn the_user_hears_of_each_code_generated_for_them_and_each_sign_in_with_one() {
    let app = TestApp::spawn_with_defaults(&[]).await;
    let admin = app.admin_token(None).await;
    let rp = register(&app, false, false).await;
    let (user_id, _) = enrolled_user(&app, &admin, "alerted").await;

    let created = create_code(
        &app,
        &admin,
        &user_id,
        json!({"expiresIn": {"hours": 2}, "maxUsageCount": 2, "reason": "INC-77"}),
    )
    .await;
    let code = created["code"].as_str().unwrap().to_owned();
    let mails = outbox(&app);
    assert_eq!(mails.len(), 1, "{mails:?}");
    let issued = &mails[0];
    assert!(
        issued.contains("A bypass code was generated for your account"),
        "{issued}"
    );
    assert!(
        issued.contains("INC-77") && issued.contains(&app.admin_id),
        "{issued}"
    );
    assert!(
        !issued.contains(&code) && codes_in(issued).is_empty(),
        "never the code"
    );

    // Each sign-in with it: an alert naming the application, with the uses left.
    let (_, page) = code_step(&app, &rp, "alerted", &code).await;
    assert!(accepted(&page), "{}", page.body);
    let mails = outbox_of(&app, 2).await;
    assert_eq!(mails.len(), 2);
    let used = mails
        .iter()
        .find(|m| m.contains("used to sign in"))
        .unwrap_or_else(|| panic!("no use alert: {mails:?}"));
    assert!(
        used.contains(&rp.client_id) && used.contains("127.0.0.1"),
        "{used}"
    );
    assert!(codes_in(used).is_empty());
    // The use alert is recorded once its mail went.
    let mut alerts = 0;
    for _ in 0..50 {
        let events = audit_of(&app, &admin, &user_id).await;
        alerts = events_named(&events, "alert_emailed").len();
        if alerts == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(alerts, 2);

    // A failed attempt sends nothing; single sign-on that reuses the session sends nothing.
    let (browser, page) = code_step(&app, &rp, "alerted", "0000-0000-0000").await;
    assert_eq!(page.status, 200);
    drop(browser);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(outbox(&app).len(), 2);

    // A code emailed to the user: that mail is the alert, no second one.
    create_code(
        &app,
        &admin,
        &user_id,
        json!({"expiresIn": {"hours": 2}, "notify": ["email"]}),
    )
    .await;
    assert_eq!(outbox(&app).len(), 3);

    // The policy turns both off.
    put_policy(
        &app,
        &admin,
        json!({"notifyUserOnIssue": false, "notifyUserOnUse": false}),
    )
    .await;
    let quiet = create_code(&app, &admin, &user_id, json!({"expiresIn": {"hours": 2}})).await;
    let (_, page) = code_step(&app, &rp, "alerted", quiet["code"].as_str().unwrap()).await;
    assert!(accepted(&page));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(outbox(&app).len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn a_printable_set_replaces_the_last_one_and_the_sign_in_counts_down() {
    let app = TestApp::spawn_with_defaults(&[]).await;
    let admin = app.admin_token(None).await;
    let rp = register(&app, false, false).await;
    let (user_id, secret) = enrolled_user(&app, &admin, "printer").await;
    let totp =
        bypass_idp::domain::totp::code_at(&secret, Utc::now().timestamp() as u64 + 30).unwrap();
    let me = self_service_token(&app, &rp, "printer", ("/oauth2/signin/totp", &totp)).await;
    let make = |body: Value| {
        let (app, me) = (&app, &me);
        async move {
            let response = app
                .http
                .post(app.url("/scim/v2/Me/bypassCodeSets"))
                .bearer_auth(me)
                .header("Content-Type", "application/scim+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let cache = response
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, response.json::<Value>().await.unwrap(), cache)
        }
    };

    let (status, first, cache) = make(json!({})).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    let first_codes: Vec<String> = first["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(first_codes.len(), 10, "the policy's selfServiceSetSize");
    let mut distinct = first_codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10);
    for resource in first["Resources"].as_array().unwrap() {
        assert_eq!(
            (
                resource["origin"].as_str(),
                resource["maxUsageCount"].as_i64()
            ),
            (Some("savedSet"), Some(1))
        );
        assert!(resource.get("code").is_none());
    }
    // They do not count toward maxActive (5): the help desk can still give five codes.
    for _ in 0..5 {
        create_code(&app, &admin, &user_id, json!({"expiresIn": {"hours": 1}})).await;
    }

    // Sizes out of bounds and stray members are refused; a client's own token has no /Me.
    for bad in [
        json!({"size": 11}),
        json!({"size": 0}),
        json!({"size": "3"}),
        json!({"count": 3}),
        json!([]),
    ] {
        let (status, body, _) = make(bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _, _) = app
        .scim(Method::POST, "/Me/bypassCodeSets", &admin, Some(json!({})))
        .await;
    assert_eq!(status, 403);

    // A sign-in with a code of the first set, kept open in its browser.
    let (browser, page) = code_step(&app, &rp, "printer", &first_codes[1]).await;
    let page = not_now(&browser, page).await;
    assert_eq!(page.status, 303, "{}", page.body);

    // A new set of three: the first set is revoked, in one step, and that sign-in ends.
    let (status, second, _) = make(json!({"size": 3})).await;
    assert_eq!(status, 201, "{second}");
    let second_codes: Vec<String> = second["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(second_codes.len(), 3);
    let (_, page) = code_step(&app, &rp, "printer", &first_codes[0]).await;
    assert!(page.body.contains("revoked"), "{}", page.body);
    let again = start(&app, &rp).await;
    let silent = browser
        .get(&format!("{}&prompt=none", again.auth_url))
        .await;
    assert!(
        silent
            .location
            .as_deref()
            .unwrap_or_default()
            .contains("error=login_required"),
        "{:?}",
        silent.location
    );

    // Using the set: the sign-in says how many are left once two or fewer remain.
    let (_, page) = code_step(&app, &rp, "printer", &second_codes[0]).await;
    // The use alert is sent while the sign-in goes on.
    let mut told = None;
    for _ in 0..50 {
        told = outbox(&app)
            .into_iter()
            .find(|m| m.contains("Saved codes left: 2"));
        if told.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let told = told.expect("a use alert with the saved codes left");
    assert!(told.contains("used to sign in"), "{told}");
    assert!(
        page.body.contains("You have 2 saved codes left"),
        "{}",
        page.body
    );
    let (_, page) = code_step(&app, &rp, "printer", &second_codes[1]).await;
    assert!(
        page.body.contains("You have 1 saved code left"),
        "{}",
        page.body
    );
    let (_, page) = code_step(&app, &rp, "printer", &second_codes[2]).await;
    assert!(
        page.body.contains("That was the last of your saved codes"),
        "{}",
        page.body
    );
    let (_, page) = code_step(&app, &rp, "printer", &second_codes[2]).await;
    assert!(page.body.contains("used up"), "{}", page.body);

    // Where the policy offers no new authenticator, the sign-in stops to say it.
    put_policy(&app, &admin, json!({"authenticatorReplacement": "off"})).await;
    let (status, third, _) = make(json!({"size": 2})).await;
    assert_eq!(status, 201, "{third}");
    let code = third["codes"][0].as_str().unwrap();
    let (browser, page) = code_step(&app, &rp, "printer", code).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("You have 1 saved code left"),
        "{}",
        page.body
    );
    let done = browser
        .post("/oauth2/signin/continue", &[("csrf", &csrf(&page))])
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location.unwrap().starts_with(&rp.redirect));
    let again = browser
        .post("/oauth2/signin/continue", &[("csrf", &csrf(&page))])
        .await;
    assert_ne!(again.status, 303, "a finished sign-in stays finished");

    // Five sets an hour: the sixth is refused before any hashing.
    for _ in 0..2 {
        assert_eq!(make(json!({"size": 1})).await.0, 201);
    }
    let (status, body, _) = make(json!({"size": 1})).await;
    assert_scim_error(status, &body, 429, None);
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_refuses_codes_neither_takes_one_nor_trusts_a_session_opened_with_one() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token(None).await;
    let rp = register(&app, false, false).await;
    let strict = register_spec(
        &app,
        bypass_idp::service::oauth::clients::ClientSpec {
            scopes: "openid profile email offline_access bypass_codes:self".into(),
            grant_types: vec!["authorization_code".into()],
            allow_self_service_codes: true,
            refuses_bypass_codes: true,
            ..Default::default()
        },
    )
    .await;
    let (user_id, secret) = enrolled_user(&app, &admin, "strict.user").await;
    // Sign-in times are whole seconds: a session opened in the second of the enrolment
    // could not tell the factor came first.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let created = create_code(
        &app,
        &admin,
        &user_id,
        json!({"expiresIn": {"hours": 1}, "maxUsageCount": 3}),
    )
    .await;
    let code = created["code"].as_str().unwrap();

    // The command line stores the flag.
    let (status, out, err) = app.cli(
        &[
            "client",
            "add",
            "--redirect-uri",
            "https://strict.example/cb",
            "--no-bypass-codes",
        ],
        None,
    );
    assert_eq!(status, 0, "{err}");
    let id = serde_json::from_str::<Value>(out.trim()).unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, list, _) = app.cli(&["client", "list"], None);
    let listed: Value = serde_json::from_str(list.trim()).unwrap();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == id.as_str())
        .unwrap();
    assert_eq!(entry["bypass_codes"], false);

    // Its sign-in offers no code and takes none: nothing is counted.
    let browser = Browser::new(&app);
    let started = start(&app, &strict).await;
    let page = password_step(&browser, &started.auth_url, "strict.user", PASSWORD).await;
    assert!(
        page.body.contains("does not accept bypass codes"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("method=bypass"));
    let form = browser.get("/oauth2/signin?method=bypass").await;
    assert!(
        !form.body.contains("/oauth2/signin/bypass"),
        "{}",
        form.body
    );
    let refused = browser
        .post(
            "/oauth2/signin/bypass",
            &[("csrf", &csrf(&page)), ("code", code)],
        )
        .await;
    assert!(
        refused.body.contains("does not accept bypass codes"),
        "{}",
        refused.body
    );
    let (_, read, _) = app
        .scim(
            Method::GET,
            &format!(
                "/Users/{user_id}/bypassCodes/{}",
                created["id"].as_str().unwrap()
            ),
            &admin,
            None,
        )
        .await;
    assert_eq!(read["actualUsageCount"], 0);
    // The authenticator works there.
    let totp =
        bypass_idp::domain::totp::code_at(&secret, Utc::now().timestamp() as u64 + 30).unwrap();
    let done = browser
        .post(
            "/oauth2/signin/totp",
            &[("csrf", &csrf(&page)), ("code", &totp)],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location.unwrap().starts_with(&strict.redirect));

    // A session opened with a code elsewhere does not satisfy it.
    let (browser, page) = code_step(&app, &rp, "strict.user", code).await;
    let page = not_now(&browser, page).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let silent = start(&app, &strict).await;
    let none = browser
        .get(&format!("{}&prompt=none", silent.auth_url))
        .await;
    assert_eq!(none.status, 303);
    let location = none.location.unwrap();
    assert!(
        location.starts_with(&strict.redirect) && location.contains("error=interaction_required"),
        "{location}"
    );
    let again = start(&app, &strict).await;
    let asked = browser.get(&again.auth_url).await;
    assert_eq!(asked.location.as_deref(), Some("/oauth2/signin"));
    let step = browser.get("/oauth2/signin").await;
    assert!(
        step.body.contains("action=\"/oauth2/signin/totp\"")
            && !step.body.contains("method=bypass"),
        "{}",
        step.body
    );
    // The ordinary client still signs in silently with that session.
    let ordinary = start(&app, &rp).await;
    let silent = browser
        .get(&format!("{}&prompt=none", ordinary.auth_url))
        .await;
    assert!(silent.location.unwrap().contains("code="));
    app.stop().await;
}

async fn group(app: &TestApp, admin: &str, name: &str, members: &[&str]) {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
        "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>(),
    });
    let (status, created, _) = app.scim(Method::POST, "/Groups", admin, Some(body)).await;
    assert_eq!(status, 201, "{created}");
}

#[tokio::test]
async fn the_console_takes_a_reason_and_a_start_and_security_administrators_approve() {
    let app = TestApp::spawn_with_defaults(&[]).await;
    let admin = app.admin_token(None).await;
    let (desk_id, desk_secret) = enrolled_user(&app, &admin, "desk.dora").await;
    let (security_id, security_secret) = enrolled_user(&app, &admin, "sec.sam").await;
    let (target, _) = enrolled_user(&app, &admin, "trip.tom").await;
    group(&app, &admin, "Help desk administrators", &[&desk_id]).await;
    group(&app, &admin, "Security administrators", &[&security_id]).await;
    // Roles count for a sign-in whose factor came before it (times are whole seconds).
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let (desk, _) = console_sign_in(&app, "desk.dora", &desk_secret, "/console").await;
    let generate = format!("/console/users/{target}/generate");
    let form = desk.get(&generate).await;
    assert_eq!(form.status, 200);
    for field in [
        "name=\"reason\"",
        "name=\"starts\"",
        "type=\"datetime-local\"",
        "name=\"notify\"",
    ] {
        assert!(form.body.contains(field), "{field}: {}", form.body);
    }
    let starts = (Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let token = csrf(&form);
    let fields = |reason: &'static str, starts: String, expiry: &'static str| {
        vec![
            ("csrf", token.clone()),
            ("expiry", expiry.to_owned()),
            ("days", "1".to_owned()),
            ("usage", "once".to_owned()),
            ("reason", reason.to_owned()),
            ("starts", starts),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let desk = &desk;
        let generate = &generate;
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            desk.post(generate, &pairs).await
        }
    };
    let window = post(fields("INC-5 console", starts.clone(), "in")).await;
    assert_eq!(window.status, 200, "{}", window.body);
    assert!(
        window.body.contains("Reason: INC-5 console"),
        "{}",
        window.body
    );
    assert!(window.body.contains("It works from"), "{}", window.body);
    assert_eq!(codes_in(&window.body).len(), 1);
    let past = post(fields("INC-5", "2001-01-01T00:00".into(), "in")).await;
    assert_eq!(past.status, 400);
    assert!(past.body.contains("Valid from"), "{}", past.body);
    let garbage = post(fields("INC-5", "next tuesday".into(), "in")).await;
    assert_eq!(garbage.status, 400);

    // A code that never expires waits: the help desk sees no code, and cannot approve.
    let waiting = post(fields("INC-6 long trip", String::new(), "never")).await;
    assert_eq!(waiting.status, 202, "{}", waiting.body);
    assert!(waiting.body.contains("Sent for approval"));
    assert!(codes_in(&waiting.body).is_empty());
    assert_eq!(desk.get("/console/approvals").await.status, 403);

    // A security administrator sees the request with where it goes, and approves it.
    let (security, page) =
        console_sign_in(&app, "sec.sam", &security_secret, "/console/approvals").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("trip.tom") && page.body.contains("INC-6 long trip"));
    assert!(
        page.body.contains("Sent to") && page.body.contains("trip.tom@example.com"),
        "{}",
        page.body
    );
    let approve = regex::Regex::new(r#"action="(/console/approvals/[^"]+/approve)""#)
        .unwrap()
        .captures(&page.body.replace("&#x2f;", "/"))
        .expect("an Approve button")[1]
        .to_owned();
    let forged = security.post(&approve, &[("csrf", "forged")]).await;
    assert_eq!(forged.status, 400);
    let done = security.post(&approve, &[("csrf", &csrf(&page))]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let after = security.get(done.location.as_deref().unwrap()).await;
    assert!(after.body.contains("Approved") && after.body.contains("No requests are waiting"));
    assert!(codes_in(&after.body).is_empty());
    let mails = outbox(&app);
    let code_mail: Vec<_> = mails
        .iter()
        .filter(|m| m.contains("trip.tom@example.com") && !codes_in(m).is_empty())
        .collect();
    assert_eq!(code_mail.len(), 1, "{mails:?}");
    let events = audit_of(&app, &admin, &target).await;
    assert_eq!(
        events_named(&events, "approved")[0]["actor"],
        format!("user:{security_id}")
    );

    // The policy page sets the controls (an unticked box is off).
    let policy_page = security.get("/console/policy").await;
    assert!(
        policy_page.body.contains("name=\"approvalRequired\""),
        "{}",
        policy_page.body
    );
    let saved = security
        .post(
            "/console/policy",
            &[
                ("csrf", &csrf(&policy_page)),
                ("shown", "helpDeskGenerationEnabled selfServiceGenerationEnabled reenrolmentRequiresCode reasonRequired notifyUserOnIssue notifyUserOnUse"),
                ("helpDeskGenerationEnabled", "true"),
                ("selfServiceGenerationEnabled", "true"),
                ("approvalRequired", "always"),
                ("reasonRequired", "true"),
                ("maxStartDelayDays", "7"),
                ("notifyUserOnUse", "true"),
                ("selfServiceSetSize", "5"),
            ],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let (_, policy, _) = app
        .scim(Method::GET, "/BypassCodeSettings", &admin, None)
        .await;
    assert_eq!(
        (
            &policy["approvalRequired"],
            &policy["reasonRequired"],
            &policy["maxStartDelayDays"],
            &policy["notifyUserOnIssue"],
            &policy["notifyUserOnUse"],
            &policy["selfServiceSetSize"],
        ),
        (
            &json!("always"),
            &json!(true),
            &json!(7),
            &json!(false),
            &json!(true),
            &json!(5)
        )
    );
    // A page from before these controls (no list of its boxes, none of their fields)
    // changes what it shows and leaves them as they are.
    let stale = security
        .post(
            "/console/policy",
            &[
                ("csrf", &csrf(&policy_page)),
                ("codeLength", "11"),
                ("helpDeskGenerationEnabled", "true"),
                ("selfServiceGenerationEnabled", "true"),
                ("reenrolmentRequiresCode", "true"),
            ],
        )
        .await;
    assert_eq!(stale.status, 200, "{}", stale.body);
    let (_, policy, _) = app
        .scim(Method::GET, "/BypassCodeSettings", &admin, None)
        .await;
    assert_eq!(policy["codeLength"], 11);
    assert_eq!(
        (
            &policy["approvalRequired"],
            &policy["reasonRequired"],
            &policy["notifyUserOnUse"]
        ),
        (&json!("always"), &json!(true), &json!(true))
    );
    app.stop().await;
}
