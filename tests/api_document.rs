//! The OpenAPI document tells the truth about the server: it is the committed file, 405s
//! name what is allowed, `If-Match` takes what the document says, and the request-body
//! examples work against the live server.

mod common;

use common::{PATCH_SCHEMA, TestApp, assert_scim_error, enrolled_user, user_body};
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};

#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let app = TestApp::spawn().await;
    let served = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(served.status(), 200);
    let served: Value = served.json().await.unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        served == committed,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
    // The Swagger UI shows the same document (its links, its request schemas).
    let docs = app
        .http
        .get(app.url("/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(docs.contains("UserRequest") && docs.contains("GetUser"));
    app.stop().await;
}

#[tokio::test]
async fn a_405_names_the_allowed_methods() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    for (method, path, allowed) in [
        (
            "TRACE",
            "/scim/v2/Users/some-id",
            "DELETE, GET, HEAD, PATCH, PUT",
        ),
        ("DELETE", "/scim/v2/Users", "GET, HEAD, POST"),
        ("GET", "/scim/v2/Users/.search", "POST"),
        ("PUT", "/scim/v2/ServiceProviderConfig", "GET, HEAD"),
        (
            "PATCH",
            "/scim/v2/Users/u/bypassCodes/c/notifications",
            "POST",
        ),
    ] {
        let response = app
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(path),
            )
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(
            response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok()),
            Some(allowed),
            "{method} {path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "405");
    }
    app.stop().await;
}

/// `If-Match` is an entity tag or `*`; anything else, empty included, is refused before the handler,
/// including what poem would otherwise pass on as no header at all.
#[tokio::test]
async fn if_match_is_what_the_document_says() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let user = app.create_user(&token, user_body("etag.user")).await;
    let user_path = format!("/Users/{}", user["id"].as_str().unwrap());
    let path = format!("/scim/v2{user_path}");
    let rename = json!({
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Renamed"}],
    });
    let send = |if_match: Vec<HeaderValue>, body: Value| {
        let mut request = app
            .http
            .patch(app.url(&path))
            .bearer_auth(&token)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string());
        for value in if_match {
            request = request.header("If-Match", value);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    for malformed in [
        vec![HeaderValue::from_static("")],
        vec![HeaderValue::from_static("  ")],
        vec![HeaderValue::from_static("3")],
        vec![HeaderValue::from_static("W/3")],
        vec![HeaderValue::from_bytes(b"W/\"\xc2\x84\"").unwrap()],
        vec![HeaderValue::from_bytes(b"\xc2\x84").unwrap()],
        vec![
            HeaderValue::from_static("W/\"1\""),
            HeaderValue::from_static("W/\"2\""),
        ],
    ] {
        let (status, body) = send(malformed.clone(), rename.clone()).await;
        assert_scim_error(status, &body, 400, Some("invalidValue"));
        assert!(
            body["detail"].as_str().unwrap().contains("If-Match"),
            "{malformed:?}"
        );
    }
    // Without credentials, 401 comes first, whatever the condition says.
    let anonymous = app
        .http
        .delete(app.url(&path))
        .header("If-Match", "")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // A stale tag is 412, but a malformed body is refused first, as PUT does.
    let stale = || vec![HeaderValue::from_static("W/\"999\"")];
    let (status, body) = send(stale(), rename.clone()).await;
    assert_scim_error(status, &body, 412, None);
    let (status, body) = send(
        stale(),
        json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "nope"}]}),
    )
    .await;
    assert_scim_error(status, &body, 400, None);
    // `*` is unconditional; the current tag matches.
    for unconditional in ["*"] {
        let (status, body) = send(
            vec![HeaderValue::from_static(unconditional)],
            rename.clone(),
        )
        .await;
        assert_eq!(status, 200, "{unconditional:?}: {body}");
    }
    let (_, current, _) = app.scim(Method::GET, &user_path, &token, None).await;
    let tag = HeaderValue::from_str(current["meta"]["version"].as_str().unwrap()).unwrap();
    let (status, body) = send(vec![tag], rename).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

/// Every request-body example in the document, sent as it is, is accepted (the TOTP and
/// bypass codes, which are only right once, are sent with live values).
#[tokio::test]
async fn the_request_examples_work() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let document: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let example = |id: &str| -> Value {
        let operation = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .find(|op| op["operationId"] == id)
            .unwrap_or_else(|| panic!("no operation {id}"));
        operation["requestBody"]["content"]["application/scim+json"]["example"].clone()
    };
    let expect = |what: &str, status: u16, wanted: u16, body: &Value| {
        assert_eq!(status, wanted, "{what}: {body}");
    };

    let (status, user, _) = app
        .scim(Method::POST, "/Users", &token, Some(example("createUser")))
        .await;
    expect("createUser", status, 201, &user);
    let user_path = format!("/Users/{}", user["id"].as_str().unwrap());
    let (status, body, _) = app
        .scim(
            Method::PUT,
            &user_path,
            &token,
            Some(example("replaceUser")),
        )
        .await;
    expect("replaceUser", status, 200, &body);
    let (status, body, _) = app
        .scim(
            Method::PATCH,
            &user_path,
            &token,
            Some(example("patchUser")),
        )
        .await;
    expect("patchUser", status, 200, &body);
    assert_eq!(body["name"]["givenName"], "Augusta");

    let (status, group, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &token,
            Some(example("createGroup")),
        )
        .await;
    expect("createGroup", status, 201, &group);
    let group_path = format!("/Groups/{}", group["id"].as_str().unwrap());
    let (status, body, _) = app
        .scim(
            Method::PUT,
            &group_path,
            &token,
            Some(example("replaceGroup")),
        )
        .await;
    expect("replaceGroup", status, 200, &body);
    let (status, body, _) = app
        .scim(
            Method::PATCH,
            &group_path,
            &token,
            Some(example("patchGroup")),
        )
        .await;
    assert!(
        status == 204 || status == 200,
        "patchGroup: {status} {body}"
    );

    for (id, path) in [
        ("searchUsers", "/Users/.search"),
        ("searchGroups", "/Groups/.search"),
        ("searchAll", "/.search"),
    ] {
        let (status, body, _) = app
            .scim(Method::POST, path, &token, Some(example(id)))
            .await;
        expect(id, status, 200, &body);
    }
    let (status, body, _) = app
        .scim(
            Method::PUT,
            "/BypassCodeSettings",
            &token,
            Some(example("replaceBypassCodeSettings")),
        )
        .await;
    expect("replaceBypassCodeSettings", status, 200, &body);

    // The examples' shapes, with the one value that must be live.
    assert_eq!(
        example("confirmTotpEnrollment").as_object().unwrap().len(),
        1
    );
    let (enrolled, _) = enrolled_user(&app, &token, "examples.enrolled").await;
    let codes = format!("/Users/{enrolled}/bypassCodes");
    let (status, code, _) = app
        .scim(
            Method::POST,
            &codes,
            &token,
            Some(example("createBypassCode")),
        )
        .await;
    expect("createBypassCode", status, 201, &code);
    assert_eq!(code["maxUsageCount"], 3);
    let mut notify = example("notifyBypassCode");
    notify["code"] = code["code"].clone();
    let (status, body, _) = app
        .scim(
            Method::POST,
            &format!("{codes}/{}/notifications", code["id"].as_str().unwrap()),
            &token,
            Some(notify),
        )
        .await;
    expect("notifyBypassCode", status, 200, &body);
    app.stop().await;
}
