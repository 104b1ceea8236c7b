//! The SCIM `/Groups` API over HTTP: lifecycle, membership shown on users, the PATCH shapes
//! Entra ID and Okta send, filters, versions, and the limits under parallel requests.

mod common;

use common::{PATCH_SCHEMA, TestApp, assert_scim_error, user_body};
use reqwest::Method;
use serde_json::{Value, json};

const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn group_body(name: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": members})
}

fn patch(operations: Value) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": operations})
}

/// The member ids of a group, sorted.
async fn members(app: &TestApp, token: &str, id: &str) -> Vec<String> {
    let (status, group, _) = app
        .scim(Method::GET, &format!("/Groups/{id}"), token, None)
        .await;
    assert_eq!(status, 200, "{group}");
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| m["value"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

async fn user_id(app: &TestApp, token: &str, name: &str) -> String {
    app.create_user(token, user_body(name)).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn filter_ids(app: &TestApp, token: &str, filter: &str) -> Vec<String> {
    let (status, body, _) = app
        .scim(
            Method::GET,
            &format!(
                "/Groups?filter={}&excludedAttributes=members",
                encode(filter)
            ),
            token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{filter}: {body}");
    assert!(
        body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g.get("members").is_none())
    );
    body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn group_lifecycle_membership_on_users_filters_and_versions() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (ann, bob, cy) = (
        user_id(&app, &token, "ann").await,
        user_id(&app, &token, "bob").await,
        user_id(&app, &token, "cy").await,
    );

    let (status, created, headers) = app
        .scim(
            Method::POST,
            "/Groups",
            &token,
            Some(json!({
                "schemas": [GROUP_SCHEMA], "displayName": "Tour Guides", "externalId": "ext-1",
                "members": [{"value": ann, "display": "ignored"}]
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        headers["location"],
        app.url(&format!("/scim/v2/Groups/{id}")).as_str()
    );
    assert_eq!(headers["etag"], "W/\"1\"");
    assert_eq!(created["members"][0]["value"], ann.as_str());
    assert_eq!(created["members"][0]["type"], "User");
    assert_eq!(
        created["members"][0]["$ref"],
        app.url(&format!("/scim/v2/Users/{ann}")).as_str()
    );
    assert_eq!(created["meta"]["resourceType"], "Group");

    // The user shows the group, read-only.
    let (_, user, _) = app
        .scim(Method::GET, &format!("/Users/{ann}"), &token, None)
        .await;
    assert_eq!(user["groups"][0]["value"], id.as_str());
    assert_eq!(user["groups"][0]["display"], "Tour Guides");
    let (_, listed, _) = app
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22ann%22",
            &token,
            None,
        )
        .await;
    assert_eq!(listed["Resources"][0]["groups"][0]["value"], id.as_str());
    let (_, bob_user, _) = app
        .scim(Method::GET, &format!("/Users/{bob}"), &token, None)
        .await;
    assert!(
        bob_user.get("groups").is_none(),
        "no groups, no attribute: {bob_user}"
    );

    // Names are unique ignoring case; members must be users.
    let (status, body, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &token,
            Some(group_body("tour GUIDES", &[])),
        )
        .await;
    assert_scim_error(status, &body, 409, Some("uniqueness"));
    let (status, body, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &token,
            Some(group_body("Ghosts", &["no-such-user"])),
        )
        .await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
    let other = app
        .scim(
            Method::POST,
            "/Groups",
            &token,
            Some(group_body("Other", &[&bob])),
        )
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Filters.
    assert_eq!(
        filter_ids(&app, &token, "displayName eq \"tour guides\"").await,
        vec![id.clone()]
    );
    assert_eq!(
        filter_ids(&app, &token, "externalId eq \"ext-1\"").await,
        vec![id.clone()]
    );
    assert_eq!(
        filter_ids(&app, &token, &format!("members[value eq \"{bob}\"]")).await,
        vec![other.clone()]
    );
    assert_eq!(
        filter_ids(&app, &token, &format!("members.value eq \"{ann}\"")).await,
        vec![id.clone()]
    );
    assert_eq!(
        sorted(
            filter_ids(
                &app,
                &token,
                "displayName sw \"t\" or displayName eq \"Other\""
            )
            .await
        ),
        sorted(vec![id.clone(), other.clone()])
    );
    let (status, body, _) = app
        .scim(
            Method::GET,
            &format!("/Groups?filter={}", encode("owner eq \"x\"")),
            &token,
            None,
        )
        .await;
    assert_scim_error(status, &body, 400, Some("invalidFilter"));
    let (_, projected, _) = app
        .scim(
            Method::GET,
            &format!("/Groups/{id}?attributes=displayName"),
            &token,
            None,
        )
        .await;
    assert!(
        projected.get("members").is_none() && projected["displayName"] == "Tour Guides",
        "{projected}"
    );
    let (status, searched, _) = app
        .scim(
            Method::POST,
            "/Groups/.search",
            &token,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "displayName eq \"Other\"", "startIndex": 1, "count": 5
            })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(searched["totalResults"], 1);

    // PUT replaces the members; a stale If-Match changes nothing.
    let mut put = group_body("Tour Guides", &[&bob, &cy]);
    put["id"] = json!(id);
    let (status, body, _) = app
        .scim(
            Method::PUT,
            &format!("/Groups/{id}"),
            &token,
            Some(put.clone()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        members(&app, &token, &id).await,
        sorted(vec![bob.clone(), cy.clone()])
    );
    let request = app
        .http
        .put(app.url(&format!("/scim/v2/Groups/{id}")))
        .bearer_auth(&token)
        .header("Content-Type", "application/scim+json")
        .header("If-Match", "W/\"1\"")
        .body(group_body("Tour Guides", &[]).to_string());
    assert_eq!(request.send().await.unwrap().status(), 412);
    assert_eq!(members(&app, &token, &id).await.len(), 2);

    // Deleting a user removes it from its groups; deleting a group removes no user.
    let (status, _, _) = app
        .scim(Method::DELETE, &format!("/Users/{bob}"), &token, None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(members(&app, &token, &id).await, vec![cy.clone()]);
    let (status, _, _) = app
        .scim(Method::DELETE, &format!("/Groups/{id}"), &token, None)
        .await;
    assert_eq!(status, 204);
    let (status, body, _) = app
        .scim(Method::GET, &format!("/Groups/{id}"), &token, None)
        .await;
    assert_scim_error(status, &body, 404, None);
    let (status, user, _) = app
        .scim(Method::GET, &format!("/Users/{cy}"), &token, None)
        .await;
    assert_eq!(status, 200);
    assert!(user.get("groups").is_none(), "{user}");
    let (status, _, _) = app
        .scim(Method::DELETE, &format!("/Groups/{id}"), &token, None)
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn entra_and_okta_patch_shapes() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (u1, u2, u3) = (
        user_id(&app, &token, "p1").await,
        user_id(&app, &token, "p2").await,
        user_id(&app, &token, "p3").await,
    );
    let (_, group, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &token,
            Some(group_body("Patched", &[])),
        )
        .await;
    let id = group["id"].as_str().unwrap().to_owned();
    let path = format!("/Groups/{id}");
    let send = |ops: Value| {
        let (app, token, path) = (&app, &token, &path);
        async move { app.scim(Method::PATCH, path, token, Some(patch(ops))).await }
    };

    // Entra: add with a value array (twice: not an error), capitalised ops.
    for _ in 0..2 {
        let (status, body, headers) = send(
            json!([{"op": "Add", "path": "members", "value": [{"value": u1}, {"value": u2}]}]),
        )
        .await;
        assert_eq!(status, 204, "{body}");
        assert!(headers.contains_key("etag"));
    }
    assert_eq!(
        members(&app, &token, &id).await,
        sorted(vec![u1.clone(), u2.clone()])
    );
    // Entra: remove with a value array, and with a filter path; absent members are not errors.
    let (status, _, _) =
        send(json!([{"op": "Remove", "path": "members", "value": [{"value": u1}]}])).await;
    assert_eq!(status, 204);
    let (status, _, _) =
        send(json!([{"op": "remove", "path": format!("members[value eq \"{u2}\"]")}])).await;
    assert_eq!(status, 204);
    let (status, _, _) =
        send(json!([{"op": "remove", "path": format!("members[value eq \"{u3}\"]")}])).await;
    assert_eq!(status, 204, "removing an absent member is not an error");
    assert!(members(&app, &token, &id).await.is_empty());
    // Entra: replace displayName by path.
    let (status, _, _) =
        send(json!([{"op": "Replace", "path": "displayName", "value": "Entra name"}])).await;
    assert_eq!(status, 204);
    // Okta: replace the whole member list, and the name without a path (with the id echoed).
    let (status, _, _) = send(json!([{"op": "replace", "path": "members", "value": [{"value": u2, "display": "p2"}, {"value": u3}]}])).await;
    assert_eq!(status, 204);
    assert_eq!(
        members(&app, &token, &id).await,
        sorted(vec![u2.clone(), u3.clone()])
    );
    let (status, _, headers) =
        send(json!([{"op": "replace", "value": {"id": id, "displayName": "Okta name"}}])).await;
    assert_eq!(status, 204);
    let (_, now, get_headers) = app.scim(Method::GET, &path, &token, None).await;
    assert_eq!(now["displayName"], "Okta name");
    assert_eq!(
        headers["etag"], get_headers["etag"],
        "the PATCH answer names the version it made"
    );
    // Remove every member.
    let (status, _, _) = send(json!([{"op": "remove", "path": "members"}])).await;
    assert_eq!(status, 204);
    assert!(members(&app, &token, &id).await.is_empty());

    // Malformed: each refused with its SCIM type, nothing changed.
    for (ops, kind) in [
        (
            json!([{"op": "remove", "path": "displayName"}]),
            "mutability",
        ),
        (
            json!([{"op": "add", "path": "owners", "value": "x"}]),
            "invalidPath",
        ),
        (json!([{"op": "remove"}]), "noTarget"),
        (
            json!([{"op": "add", "path": "members", "value": [{"value": "no-such-user"}]}]),
            "invalidValue",
        ),
        (
            json!([{"op": "add", "path": "members", "value": [{"display": "no id"}]}]),
            "invalidValue",
        ),
        (json!([]), "invalidValue"),
        (
            json!([{"op": "add", "path": "members", "value": (0..=10_000).map(|i| json!({"value": format!("u{i}")})).collect::<Vec<_>>()}]),
            "tooMany",
        ),
    ] {
        let (status, body, _) = send(ops.clone()).await;
        assert_scim_error(status, &body, 400, Some(kind));
    }
    let (_, after, _) = app.scim(Method::GET, &path, &token, None).await;
    assert_eq!(after["displayName"], "Okta name");
    let (status, body, _) = app
        .scim(
            Method::PATCH,
            "/Groups/nope",
            &token,
            Some(patch(
                json!([{"op": "add", "path": "members", "value": [{"value": u1}]}]),
            )),
        )
        .await;
    assert_scim_error(status, &body, 404, None);
    app.stop().await;
}

#[tokio::test]
async fn parallel_writes_keep_one_membership_and_one_name() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let member = user_id(&app, &token, "racer").await;
    let (_, group, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &token,
            Some(group_body("Race", &[])),
        )
        .await;
    let id = group["id"].as_str().unwrap().to_owned();
    let path = format!("/Groups/{id}");
    let adds = (0..20).map(|_| {
        app.scim(
            Method::PATCH,
            &path,
            &token,
            Some(patch(
                json!([{"op": "add", "path": "members", "value": [{"value": member}]}]),
            )),
        )
    });
    let statuses: Vec<u16> = futures_util::future::join_all(adds)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");
    assert_eq!(members(&app, &token, &id).await, vec![member.clone()]);
    let creates = (0..20).map(|i| {
        app.scim(
            Method::POST,
            "/Groups",
            &token,
            Some(group_body(if i % 2 == 0 { "Same" } else { "SAME" }, &[])),
        )
    });
    let statuses: Vec<u16> = futures_util::future::join_all(creates)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn group_scopes_and_the_cli() {
    let app = TestApp::spawn().await;
    let users_only = app.admin_token(Some("scim:users")).await;
    let (status, body, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &users_only,
            Some(group_body("X", &[])),
        )
        .await;
    assert_scim_error(status, &body, 403, None);
    let (status, body, _) = app.scim(Method::GET, "/Groups", &users_only, None).await;
    assert_scim_error(status, &body, 403, None);

    let token = app.admin_token(None).await;
    user_id(&app, &token, "cli.user").await;
    let (code, out, err) = app.cli(&["group", "add", "Help desk administrators"], None);
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(created["displayName"], "Help desk administrators");
    let (code, _, err) = app.cli(
        &[
            "group",
            "add-member",
            "help desk administrators",
            "cli.user",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = app.cli(
        &[
            "group",
            "add-member",
            "help desk administrators",
            "cli.user",
        ],
        None,
    );
    assert_eq!(code, 0, "adding twice is not an error");
    let (code, _, err) = app.cli(&["group", "add-member", "No such group", "cli.user"], None);
    assert_ne!(code, 0);
    assert!(err.contains("no group named"), "{err}");
    let (code, _, err) = app.cli(&["group", "add", "help desk ADMINISTRATORS"], None);
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
    let id = created["id"].as_str().unwrap();
    let (_, group, _) = app
        .scim(Method::GET, &format!("/Groups/{id}"), &token, None)
        .await;
    assert_eq!(group["members"].as_array().unwrap().len(), 1);
    assert_eq!(group["members"][0]["type"], "User");
    app.stop().await;
}
