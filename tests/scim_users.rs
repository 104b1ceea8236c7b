//! The SCIM `/Users` API over HTTP: lifecycle, filters, paging, projection, versions, errors.

mod common;

use common::{PATCH_SCHEMA, TestApp, USER_SCHEMA, assert_scim_error, user_body};
use reqwest::Method;
use serde_json::{Value, json};

fn encode(filter: &str) -> String {
    url::form_urlencoded::byte_serialize(filter.as_bytes()).collect()
}

async fn filter_names(app: &TestApp, token: &str, filter: &str) -> Vec<String> {
    let (status, body, _) = app
        .scim(
            Method::GET,
            &format!("/Users?filter={}", encode(filter)),
            token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{filter}: {body}");
    let mut names: Vec<String> = body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        body["totalResults"].as_u64().unwrap() as usize,
        names.len(),
        "{filter}"
    );
    names.sort();
    names
}

#[tokio::test]
async fn user_lifecycle_create_find_patch_replace_delete() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(Some("scim:users")).await;
    let (status, created, headers) = app
        .scim(Method::POST, "/Users", &token, Some(user_body("bjensen")))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(headers["content-type"], "application/scim+json");
    let id = created["id"].as_str().unwrap().to_owned();
    let location = format!("{}/scim/v2/Users/{id}", app.base);
    assert_eq!(headers["location"], location.as_str());
    assert_eq!(headers["etag"], "W/\"1\"");
    assert_eq!(created["meta"]["location"], location.as_str());
    assert_eq!(created["meta"]["resourceType"], "User");
    assert_eq!(created["active"], true);
    assert!(created.get("password").is_none(), "password is write-only");

    let (status, fetched, headers) = app
        .scim(Method::GET, &format!("/Users/{id}"), &token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(fetched, created);
    assert_eq!(headers["etag"], "W/\"1\"");

    assert_eq!(
        filter_names(&app, &token, "userName eq \"BJENSEN\"").await,
        ["bjensen"]
    );

    let patch = json!({"schemas": [PATCH_SCHEMA], "Operations": [
        {"op": "replace", "path": "name.givenName", "value": "Babs"},
        {"op": "add", "path": "emails", "value": [{"value": "babs@home.example", "type": "home"}]},
        {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "barbara@work.example"}
    ]});
    let (status, patched, headers) = app
        .scim(Method::PATCH, &format!("/Users/{id}"), &token, Some(patch))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(headers["etag"], "W/\"2\"");
    assert_eq!(patched["name"]["givenName"], "Babs");
    assert_eq!(patched["name"]["familyName"], "Jensen");
    assert_eq!(patched["emails"].as_array().unwrap().len(), 2);
    assert_eq!(patched["emails"][0]["value"], "barbara@work.example");
    assert_ne!(
        patched["meta"]["lastModified"],
        created["meta"]["lastModified"]
    );
    assert_eq!(
        filter_names(
            &app,
            &token,
            "emails[type eq \"home\" and value ew \"home.example\"]"
        )
        .await,
        ["bjensen"]
    );

    let mut replacement = patched.clone();
    replacement["displayName"] = json!("Babs Jensen");
    replacement.as_object_mut().unwrap().remove("emails");
    let (status, replaced, _) = app
        .scim(
            Method::PUT,
            &format!("/Users/{id}"),
            &token,
            Some(replacement),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["displayName"], "Babs Jensen");
    assert!(
        replaced.get("emails").is_none(),
        "PUT replaces: omitted emails are gone"
    );
    assert_eq!(replaced["meta"]["version"], "W/\"3\"");
    assert_eq!(replaced["meta"]["created"], created["meta"]["created"]);

    let (status, _, _) = app
        .scim(Method::DELETE, &format!("/Users/{id}"), &token, None)
        .await;
    assert_eq!(status, 204);
    let (status, body, _) = app
        .scim(Method::GET, &format!("/Users/{id}"), &token, None)
        .await;
    assert_scim_error(status, &body, 404, None);
    let (status, body, _) = app
        .scim(Method::DELETE, &format!("/Users/{id}"), &token, None)
        .await;
    assert_scim_error(status, &body, 404, None);
    app.stop().await;
}

#[tokio::test]
async fn user_name_is_unique_case_insensitively() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    app.create_user(&token, user_body("alice")).await;
    let other = app.create_user(&token, user_body("bob")).await;
    let (status, body, _) = app
        .scim(Method::POST, "/Users", &token, Some(user_body("ALICE")))
        .await;
    assert_scim_error(status, &body, 409, Some("uniqueness"));
    let mut rename = user_body("Alice");
    rename["id"] = other["id"].clone();
    let (status, body, _) = app
        .scim(
            Method::PUT,
            &format!("/Users/{}", other["id"].as_str().unwrap()),
            &token,
            Some(rename),
        )
        .await;
    assert_scim_error(status, &body, 409, Some("uniqueness"));
    app.stop().await;
}

#[tokio::test]
async fn filters_cover_operators_attributes_and_logic() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let mut ids = Vec::new();
    for (name, given, family, active, external, email_type) in [
        ("ann.lee", "Ann", "Lee", true, "ext-1", "work"),
        ("bob.stone", "Bob", "Stone", false, "EXT-2", "home"),
        ("cara_lee", "Cara", "Lee-Smith", true, "ext-3", "work"),
    ] {
        let mut body = user_body(name);
        body["name"] = json!({"givenName": given, "familyName": family});
        body["active"] = json!(active);
        body["externalId"] = json!(external);
        body["emails"][0]["type"] = json!(email_type);
        ids.push(
            app.create_user(&token, body).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let cases: &[(&str, &[&str])] = &[
        ("userName eq \"ANN.LEE\"", &["ann.lee"]),
        ("userName ne \"ann.lee\"", &["bob.stone", "cara_lee"]),
        ("userName co \"_\"", &["cara_lee"]),
        ("userName co \"%\"", &[]),
        ("userName sw \"b\"", &["bob.stone"]),
        ("userName ew \"LEE\"", &["ann.lee", "cara_lee"]),
        ("name.familyName sw \"lee\"", &["ann.lee", "cara_lee"]),
        (
            "name.givenName eq \"bob\" or name.givenName eq \"cara\"",
            &["bob.stone", "cara_lee"],
        ),
        ("active eq true", &["ann.lee", "cara_lee"]),
        ("active eq false", &["bob.stone"]),
        ("not (active eq true)", &["bob.stone"]),
        ("externalId eq \"ext-2\"", &[]),
        ("externalId eq \"EXT-2\"", &["bob.stone"]),
        ("externalId sw \"ext\"", &["ann.lee", "cara_lee"]),
        ("emails.type eq \"home\"", &["bob.stone"]),
        (
            "emails.value co \"@EXAMPLE.com\" and name.familyName eq \"lee\"",
            &["ann.lee"],
        ),
        (
            "emails[type eq \"work\" and value sw \"cara\"]",
            &["cara_lee"],
        ),
        ("title pr", &[]),
        (
            "name.givenName pr and (userName sw \"a\" or userName sw \"c\")",
            &["ann.lee", "cara_lee"],
        ),
        (
            "meta.created gt \"2000-01-01T00:00:00Z\"",
            &["ann.lee", "bob.stone", "cara_lee"],
        ),
        ("meta.lastModified lt \"2000-01-01T00:00:00Z\"", &[]),
        (&format!("id eq \"{}\"", ids[1]), &["bob.stone"]),
        (&format!("id co \"{}\"", &ids[2][9..23]), &["cara_lee"]),
        (&format!("id ew \"{}\"", &ids[0][24..]), &["ann.lee"]),
        // An `or` of a user's attribute and their emails, each side found by its own index.
        (
            "userName sw \"bob\" or emails.type eq \"work\"",
            &["ann.lee", "bob.stone", "cara_lee"],
        ),
        (
            "not (userName eq \"ann.lee\" or emails.type eq \"home\")",
            &["cara_lee"],
        ),
        // `not` of `ne` is `eq` (a missing value is `ne` anything).
        ("not (userName ne \"BOB.stone\")", &["bob.stone"]),
        ("not (title ne \"x\")", &[]),
        (
            "not (emails.type ne \"home\") and userName pr",
            &["bob.stone"],
        ),
        // Nobody has a nickName: the comparison is false, not unknown.
        (
            "not (nickName eq \"x\" or emails.type eq \"home\")",
            &["ann.lee", "cara_lee"],
        ),
        (
            "emails.value co \"ann\" or emails.value co \"cara\"",
            &["ann.lee", "cara_lee"],
        ),
        (
            "(userName eq \"bob.stone\" or emails[type eq \"work\" and value sw \"cara\"]) \
             and active eq false",
            &["bob.stone"],
        ),
        (
            "emails.type eq \"work\" or emails.type eq \"work\"",
            &["ann.lee", "cara_lee"],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            filter_names(&app, &token, filter).await,
            *expected,
            "{filter}"
        );
    }
    for bad in [
        "userName eq",
        "shoeSize eq \"9\"",
        "active eq \"yes\"",
        "meta.created gt \"last week\"",
        "userName eq \"x\" and",
        "name[givenName eq \"x\"]",
    ] {
        let (status, body, _) = app
            .scim(
                Method::GET,
                &format!("/Users?filter={}", encode(bad)),
                &token,
                None,
            )
            .await;
        assert_scim_error(status, &body, 400, Some("invalidFilter"));
    }
    app.stop().await;
}

#[tokio::test]
async fn paging_and_attribute_projection() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    for i in 0..5 {
        app.create_user(&token, user_body(&format!("page{i}")))
            .await;
    }
    let (_, page, _) = app
        .scim(Method::GET, "/Users?startIndex=2&count=2", &token, None)
        .await;
    assert_eq!(page["totalResults"], 5);
    assert_eq!(page["startIndex"], 2);
    assert_eq!(page["itemsPerPage"], 2);
    assert_eq!(page["Resources"][0]["userName"], "page1");
    assert_eq!(page["Resources"][1]["userName"], "page2");
    let (_, empty, _) = app.scim(Method::GET, "/Users?count=0", &token, None).await;
    assert_eq!(empty["totalResults"], 5);
    assert_eq!(empty["Resources"].as_array().unwrap().len(), 0);
    let (_, past, _) = app
        .scim(Method::GET, "/Users?startIndex=99", &token, None)
        .await;
    assert_eq!(past["Resources"].as_array().unwrap().len(), 0);

    let (_, projected, _) = app
        .scim(
            Method::GET,
            "/Users?count=1&attributes=userName,name.familyName",
            &token,
            None,
        )
        .await;
    let user = &projected["Resources"][0];
    let mut keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["id", "name", "schemas", "userName"]);
    assert_eq!(user["name"], json!({"familyName": "Jensen"}));
    let id = user["id"].as_str().unwrap();
    let (_, excluded, _) = app
        .scim(
            Method::GET,
            &format!("/Users/{id}?excludedAttributes=emails,meta"),
            &token,
            None,
        )
        .await;
    assert!(excluded.get("emails").is_none() && excluded.get("meta").is_none());
    assert_eq!(excluded["userName"], "page0");

    let search = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "userName sw \"page\"",
        "attributes": ["userName"],
        "startIndex": 4,
        "count": 10
    });
    let (status, found, _) = app
        .scim(Method::POST, "/Users/.search", &token, Some(search))
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["totalResults"], 5);
    assert_eq!(found["Resources"].as_array().unwrap().len(), 2);
    assert!(found["Resources"][0].get("emails").is_none());
    app.stop().await;
}

#[tokio::test]
async fn if_match_guards_writes() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let created = app.create_user(&token, user_body("versioned")).await;
    let path = format!("/scim/v2/Users/{}", created["id"].as_str().unwrap());
    let patch = json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "title", "value": "CTO"}]});
    let send = |method: Method, etag: &'static str, body: Option<Value>| {
        let mut request = app
            .http
            .request(method, app.url(&path))
            .bearer_auth(&token)
            .header("If-Match", etag);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/scim+json")
                .body(body.to_string());
        }
        request.send()
    };
    let response = send(Method::PATCH, "W/\"7\"", Some(patch.clone()))
        .await
        .unwrap();
    assert_eq!(response.status(), 412);
    let response = send(Method::PATCH, "W/\"1\"", Some(patch.clone()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "W/\"2\"");
    let response = send(Method::PUT, "W/\"1\"", Some(user_body("versioned")))
        .await
        .unwrap();
    assert_eq!(response.status(), 412, "a stale PUT must not overwrite");
    let response = send(Method::DELETE, "W/\"1\"", None).await.unwrap();
    assert_eq!(response.status(), 412);
    let response = send(Method::DELETE, "W/\"2\"", None).await.unwrap();
    assert_eq!(response.status(), 204);
    app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_scim_errors_never_500() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let raw = |method: Method, path: &str, content_type: &str, body: String| {
        app.http
            .request(method, app.url(&format!("/scim/v2{path}")))
            .bearer_auth(&token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let check = |response: reqwest::Response, status: u16, scim_type: Option<&'static str>| async move {
        assert_eq!(response.headers()["content-type"], "application/scim+json");
        let code = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_scim_error(code, &body, status, scim_type);
        body
    };
    check(
        raw(
            Method::POST,
            "/Users",
            "application/scim+json",
            "{\"userName\":".into(),
        )
        .await
        .unwrap(),
        400,
        Some("invalidSyntax"),
    )
    .await;
    check(
        raw(Method::POST, "/Users", "text/plain", "hello".into())
            .await
            .unwrap(),
        415,
        None,
    )
    .await;
    let big = json!({"schemas": [USER_SCHEMA], "userName": "x".repeat(2 * 1024 * 1024)});
    check(
        raw(Method::POST, "/Users", "application/json", big.to_string())
            .await
            .unwrap(),
        413,
        None,
    )
    .await;

    let bodies: Vec<(Value, &str)> = vec![
        (json!({"userName": "noschemas"}), "invalidValue"),
        (
            json!({"schemas": ["urn:example:custom"], "userName": "x"}),
            "invalidValue",
        ),
        (json!({"schemas": [USER_SCHEMA]}), "invalidValue"),
        (
            json!({"schemas": [USER_SCHEMA], "userName": ["array"]}),
            "invalidSyntax",
        ),
        (
            json!({"schemas": [USER_SCHEMA], "userName": "x", "active": "maybe"}),
            "invalidSyntax",
        ),
        (
            json!({"schemas": [USER_SCHEMA], "userName": "x".repeat(300)}),
            "invalidValue",
        ),
        (
            json!({"schemas": [USER_SCHEMA], "userName": "nul\u{0}byte"}),
            "invalidValue",
        ),
        (
            json!({"schemas": [USER_SCHEMA], "userName": "x", "favouriteColour": "blue"}),
            "invalidValue",
        ),
        (
            json!({"schemas": [USER_SCHEMA], "userName": "x", "emails": {"value": "a@b"}}),
            "invalidSyntax",
        ),
        (
            json!({"schemas": [USER_SCHEMA], "userName": "x", "password": "short"}),
            "invalidValue",
        ),
    ];
    for (body, scim_type) in bodies {
        let (status, error, _) = app
            .scim(Method::POST, "/Users", &token, Some(body.clone()))
            .await;
        assert_scim_error(status, &error, 400, Some(scim_type));
    }
    // application/json is accepted as well as application/scim+json.
    let response = raw(
        Method::POST,
        "/Users",
        "application/json",
        user_body("plainjson").to_string(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let patches = [
        (
            json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "remove"}]}),
            "noTarget",
        ),
        (
            json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "jump", "path": "title"}]}),
            "invalidValue",
        ),
        (
            json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "emails[type eq", "value": 1}]}),
            "invalidPath",
        ),
        (
            json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "emails[type eq \"fax\"].value", "value": "x"}]}),
            "noTarget",
        ),
        (
            json!({"Operations": [{"op": "replace", "path": "title", "value": "x"}]}),
            "invalidValue",
        ),
    ];
    for (body, scim_type) in patches {
        let (status, error, _) = app
            .scim(Method::PATCH, &format!("/Users/{id}"), &token, Some(body))
            .await;
        assert_scim_error(status, &error, 400, Some(scim_type));
    }
    let (status, error, _) = app
        .scim(Method::GET, "/Users?startIndex=abc", &token, None)
        .await;
    assert_scim_error(status, &error, 400, None);
    let (status, error, _) = app
        .scim(Method::GET, "/Users?attributes=na%20me", &token, None)
        .await;
    assert_scim_error(status, &error, 400, None);
    let (status, error, _) = app.scim(Method::GET, "/Nothing", &token, None).await;
    assert_scim_error(status, &error, 404, None);
    let (status, error, _) = app.scim(Method::DELETE, "/Users", &token, None).await;
    assert_scim_error(status, &error, 405, None);
    app.stop().await;
}

#[tokio::test]
async fn discovery_documents_advertise_what_is_supported() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    let (status, spc, _) = app
        .scim(Method::GET, "/ServiceProviderConfig", &token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], false);
    assert_eq!(spc["sort"]["supported"], true);
    assert_eq!(spc["etag"]["supported"], true);
    assert_eq!(spc["filter"]["maxResults"], 200);
    let (_, types, _) = app.scim(Method::GET, "/ResourceTypes", &token, None).await;
    assert_eq!(types["Resources"][0]["endpoint"], "/Users");
    assert_eq!(types["Resources"][1]["endpoint"], "/Groups");
    assert_eq!(types["totalResults"], 2);
    let (_, schemas, _) = app.scim(Method::GET, "/Schemas", &token, None).await;
    let ids: Vec<&str> = schemas["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            USER_SCHEMA,
            "urn:ietf:params:scim:schemas:core:2.0:Group",
            "urn:bypass-idp:params:scim:schemas:extension:mfa:2.0:User"
        ]
    );
    assert_eq!(schemas["totalResults"], 3);
    let attributes = schemas["Resources"][0]["attributes"].as_array().unwrap();
    let password = attributes.iter().find(|a| a["name"] == "password").unwrap();
    assert_eq!(password["mutability"], "writeOnly");
    assert_eq!(password["returned"], "never");
    let (status, schema, _) = app
        .scim(
            Method::GET,
            &format!("/Schemas/{USER_SCHEMA}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(schema["id"], USER_SCHEMA);
    let (status, body, _) = app
        .scim(Method::GET, "/Schemas/urn:nope", &token, None)
        .await;
    assert_scim_error(status, &body, 404, None);
    app.stop().await;
}

/// The indexed search columns: case-insensitive beyond ASCII (SQLite's lower() is not),
/// prefixes as index ranges that still honour LIKE's special characters, and pages of a
/// filtered result in creation order with the right totals, short page or not.
#[tokio::test]
async fn indexed_filters_fold_unicode_case_and_page_in_order() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(None).await;
    for (i, (family, display)) in [
        ("MÜLLER", "Ärger 50%_off"),
        ("Müller", "ärger 50%"),
        ("müller", "ÄRGER 50x_off"),
        ("Muller", "Arger"),
    ]
    .iter()
    .enumerate()
    {
        let mut body = user_body(&format!("u{i}"));
        body["name"]["familyName"] = json!(family);
        body["displayName"] = json!(display);
        app.create_user(&token, body).await;
    }
    assert_eq!(
        filter_names(&app, &token, "name.familyName eq \"müller\"").await,
        ["u0", "u1", "u2"]
    );
    assert_eq!(
        filter_names(&app, &token, "displayName sw \"ärger 50%\"").await,
        ["u0", "u1"]
    );
    assert_eq!(
        filter_names(&app, &token, "displayName sw \"ärger 50%_\"").await,
        ["u0"]
    );
    assert_eq!(
        filter_names(&app, &token, "displayName co \"_OFF\"").await,
        ["u0", "u2"]
    );
    assert_eq!(
        filter_names(&app, &token, "name.familyName ew \"LLER\"").await,
        ["u0", "u1", "u2", "u3"]
    );
    let mut seen = Vec::new();
    for start in 1..=3 {
        let filter = encode("name.familyName eq \"MÜLLER\"");
        let (status, page, _) = app
            .scim(
                Method::GET,
                &format!("/Users?filter={filter}&startIndex={start}&count=1"),
                &token,
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["totalResults"], 3, "{page}");
        seen.push(
            page["Resources"][0]["userName"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(seen, ["u0", "u1", "u2"]);
    let filter = encode("name.familyName sw \"m\"");
    let (_, page, _) = app
        .scim(
            Method::GET,
            &format!("/Users?filter={filter}&startIndex=3&count=5"),
            &token,
            None,
        )
        .await;
    assert_eq!(page["totalResults"], 4, "{page}");
    assert_eq!(page["Resources"][0]["userName"], "u2");
    assert_eq!(page["Resources"][1]["userName"], "u3");
    app.stop().await;
}
