//! SCIM `sortBy` / `sortOrder` (RFC 7644 §3.4.2.3) over HTTP, on Users and Groups: every kind
//! of sort column, missing values, case, paging through a sorted list, a sort after a
//! filter, the SearchRequest body, and refusals.

mod common;

use common::{TestApp, USER_SCHEMA, assert_scim_error};
use reqwest::Method;
use serde_json::{Value, json};

/// (userName, familyName, displayName, title, primary email, other email)
type Person = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

const PEOPLE: [Person; 6] = [
    (
        "s-delta",
        Some("Émile"),
        Some("delta Person"),
        Some("zookeeper"),
        Some("b@x.test"),
        Some("a@x.test"),
    ),
    (
        "s-alpha",
        Some("bauer"),
        Some("Alpha person"),
        None,
        Some("d@x.test"),
        None,
    ),
    (
        "s-charlie",
        None,
        Some("charlie"),
        Some("Analyst"),
        None,
        None,
    ),
    (
        "S-Bravo",
        Some("Adams"),
        None,
        Some("bookkeeper"),
        Some("c@x.test"),
        None,
    ),
    (
        "s-echo",
        Some("bauer"),
        Some("Echo"),
        Some("analyst"),
        None,
        Some("a@x.test"),
    ),
    (
        "s-foxtrot",
        Some("Zimmer"),
        Some("foxtrot"),
        Some("Captain"),
        Some("A@x.test"),
        None,
    ),
];

fn body(person: &Person) -> Value {
    let (user_name, family, display, title, primary, other) = *person;
    let mut emails = Vec::new();
    if let Some(other) = other {
        emails.push(json!({"value": other, "type": "home"}));
    }
    if let Some(primary) = primary {
        emails.push(json!({"value": primary, "type": "work", "primary": true}));
    }
    let mut user = json!({"schemas": [USER_SCHEMA], "userName": user_name, "emails": emails});
    if let Some(family) = family {
        user["name"] = json!({"familyName": family});
    }
    if let Some(display) = display {
        user["displayName"] = json!(display);
    }
    if let Some(title) = title {
        user["title"] = json!(title);
    }
    user
}

async fn sorted(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let (status, body, _) = app
        .scim(Method::GET, &format!("/Users?{query}"), token, None)
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    names(&body)
}

fn names(body: &Value) -> Vec<String> {
    body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn users_sort_by_every_kind_of_attribute_with_missing_values_at_the_end() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(Some("scim:users")).await;
    let mut ids = Vec::new();
    for person in &PEOPLE {
        ids.push(
            app.create_user(&token, body(person)).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let only = "filter=userName%20sw%20%22s-%22";
    // userName: case-insensitive.
    let by_name = [
        "s-alpha",
        "S-Bravo",
        "s-charlie",
        "s-delta",
        "s-echo",
        "s-foxtrot",
    ];
    assert_eq!(sorted(&app, &token, "sortBy=userName").await, by_name);
    let mut reversed = by_name.to_vec();
    reversed.reverse();
    assert_eq!(
        sorted(&app, &token, "sortBy=userName&sortOrder=descending").await,
        reversed
    );
    // The sortOrder value and the attribute name are case-insensitive too.
    assert_eq!(
        sorted(&app, &token, "sortBy=USERNAME&sortOrder=Descending").await,
        reversed
    );

    // A search column with missing values and ties: ties oldest first (newest first
    // descending), no value last ascending and first descending; code point order, so
    // "Émile" comes after "Zimmer".
    let family = [
        "S-Bravo",
        "s-alpha",
        "s-echo",
        "s-foxtrot",
        "s-delta",
        "s-charlie",
    ];
    assert_eq!(sorted(&app, &token, "sortBy=name.familyName").await, family);
    let mut family_desc = family.to_vec();
    family_desc.reverse();
    assert_eq!(
        sorted(&app, &token, "sortBy=name.familyName&sortOrder=descending").await,
        family_desc
    );
    // The same order when a filter picks the users first.
    assert_eq!(
        sorted(&app, &token, &format!("{only}&sortBy=name.familyName")).await,
        family
    );
    assert_eq!(
        sorted(
            &app,
            &token,
            &format!("{only}&sortBy=name.familyName&sortOrder=descending")
        )
        .await,
        family_desc
    );

    // displayName (case-insensitive, one missing).
    let display = [
        "s-alpha",
        "s-charlie",
        "s-delta",
        "s-echo",
        "s-foxtrot",
        "S-Bravo",
    ];
    assert_eq!(sorted(&app, &token, "sortBy=displayName").await, display);
    // title: not a search column, still case-insensitive.
    let title = [
        "s-charlie",
        "s-echo",
        "S-Bravo",
        "s-foxtrot",
        "s-delta",
        "s-alpha",
    ];
    assert_eq!(sorted(&app, &token, "sortBy=title").await, title);
    assert_eq!(
        sorted(&app, &token, &format!("{only}&sortBy=title")).await,
        title
    );
    // emails: the primary address, else the first; "A@x.test" sorts as "a@x.test" (a tie,
    // so the older user first), and s-delta's other address "a@…" does not count.
    let email = [
        "s-echo",
        "s-foxtrot",
        "s-delta",
        "S-Bravo",
        "s-alpha",
        "s-charlie",
    ];
    assert_eq!(sorted(&app, &token, "sortBy=emails").await, email);
    assert_eq!(sorted(&app, &token, "sortBy=emails.value").await, email);

    // Paging through a sorted list gives the same order, page by page, with the total.
    let mut paged = Vec::new();
    for start in [1, 3, 5] {
        let (status, page, _) = app
            .scim(
                Method::GET,
                &format!("/Users?sortBy=name.familyName&startIndex={start}&count=2"),
                &token,
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["totalResults"], 6);
        assert_eq!(page["startIndex"], start);
        paged.extend(names(&page));
    }
    assert_eq!(paged, family);

    // meta: a changed user moves to the front of lastModified descending; created keeps
    // the creation order.
    let (status, _, _) = app
        .scim(
            Method::PATCH,
            &format!("/Users/{}", ids[2]),
            &token,
            Some(json!({"schemas": [common::PATCH_SCHEMA],
                        "Operations": [{"op": "replace", "path": "title", "value": "Chief"}]})),
        )
        .await;
    assert_eq!(status, 200);
    let recent = sorted(
        &app,
        &token,
        "sortBy=meta.lastModified&sortOrder=descending",
    )
    .await;
    assert_eq!(recent[0], "s-charlie");
    let created: Vec<&str> = PEOPLE.iter().map(|p| p.0).collect();
    assert_eq!(sorted(&app, &token, "sortBy=meta.created").await, created);
    let mut newest_first = created.clone();
    newest_first.reverse();
    for query in [
        "sortBy=meta.created&sortOrder=descending".to_owned(),
        format!("{only}&sortBy=meta.created&sortOrder=descending"),
    ] {
        assert_eq!(sorted(&app, &token, &query).await, newest_first, "{query}");
    }
    // id: exact, in code point order; with and without a filter.
    let mut by_id: Vec<(&String, &str)> = ids.iter().zip(created.iter().copied()).collect();
    by_id.sort();
    let by_id: Vec<&str> = by_id.into_iter().map(|(_, name)| name).collect();
    assert_eq!(sorted(&app, &token, "sortBy=id").await, by_id);
    assert_eq!(
        sorted(&app, &token, &format!("{only}&sortBy=id")).await,
        by_id
    );
    let recent_filtered = sorted(
        &app,
        &token,
        &format!("{only}&sortBy=meta.lastModified&sortOrder=descending"),
    )
    .await;
    assert_eq!(recent_filtered[0], "s-charlie");

    // The SearchRequest body takes the same members.
    let (status, found, _) = app
        .scim(
            Method::POST,
            "/Users/.search",
            &token,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "userName sw \"s-\"",
                "sortBy": "name.familyName",
                "sortOrder": "descending",
                "count": 3
            })),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["totalResults"], 6);
    assert_eq!(names(&found), family_desc[..3]);
}

/// A filtered page is read by walking the page order when many users match and by collecting
/// the matches when few do, and a page near the end is read from the end; either way the
/// page and its total are the ones a model of the data gives. 150 users: matches at the
/// front, spread thinly, only at the end, through emails, sorted descending, by a nullable
/// attribute, and by a text attribute without a lower-cased copy.
#[tokio::test]
async fn filtered_pages_are_exact_whether_their_matches_come_early_or_late() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(Some("scim:users")).await;
    const USERS: usize = 150;
    let title = |i: usize| match i {
        140.. => "rare",
        _ if i.is_multiple_of(20) => "sparse",
        _ => "common",
    };
    for i in 0..USERS {
        let kind = if i.is_multiple_of(2) { "work" } else { "home" };
        let mut user = json!({
            "schemas": [USER_SCHEMA],
            "userName": format!("w{i:03}"),
            "title": title(i),
            "emails": [{"value": format!("w{i:03}@x.test"), "type": kind}],
        });
        // Every other user has a displayName: a nullable sort column.
        if i.is_multiple_of(2) {
            user["displayName"] = json!(format!("d{i:03}"));
        }
        app.create_user(&token, user).await;
    }
    let name = |i: usize| format!("w{i:03}");
    // The order of creation as the server keeps it: users created in the same millisecond
    // go by id. Read off the unfiltered list, which no window serves.
    let created: Vec<usize> = sorted(&app, &token, "count=200")
        .await
        .iter()
        .map(|n| n[1..].parse().unwrap())
        .collect();
    assert_eq!(created.len(), USERS);
    let in_creation = || created.iter().copied();
    // (query, the matches in page order)
    let mut cases: Vec<(&str, Vec<String>)> = vec![
        (
            "filter=title%20eq%20%22common%22",
            in_creation()
                .filter(|i| title(*i) == "common")
                .map(name)
                .collect(),
        ),
        (
            "filter=title%20eq%20%22sparse%22",
            in_creation()
                .filter(|i| title(*i) == "sparse")
                .map(name)
                .collect(),
        ),
        (
            "filter=title%20eq%20%22rare%22",
            in_creation()
                .filter(|i| title(*i) == "rare")
                .map(name)
                .collect(),
        ),
        (
            "filter=emails.type%20eq%20%22work%22&sortBy=userName&sortOrder=descending",
            (0..USERS)
                .rev()
                .filter(|i| i.is_multiple_of(2))
                .map(name)
                .collect(),
        ),
        (
            "filter=emails%5Btype%20eq%20%22home%22%20or%20value%20eq%20%22w000%40x.test%22%5D",
            in_creation()
                .filter(|i| !i.is_multiple_of(2) || *i == 0)
                .map(name)
                .collect(),
        ),
        (
            "filter=not%20(title%20eq%20%22rare%22)&sortBy=meta.created&sortOrder=descending",
            in_creation()
                .rev()
                .filter(|i| title(*i) != "rare")
                .map(name)
                .collect(),
        ),
    ];
    // Descending by displayName: those without one first (newest first), then by name.
    let without: Vec<String> = in_creation()
        .rev()
        .filter(|i| !i.is_multiple_of(2) && title(*i) == "common")
        .map(name)
        .collect();
    let with = (0..USERS)
        .rev()
        .filter(|i| i.is_multiple_of(2) && title(*i) == "common")
        .map(name);
    cases.push((
        "filter=title%20eq%20%22common%22&sortBy=displayName&sortOrder=descending",
        without.into_iter().chain(with).collect(),
    ));
    cases.push((
        "filter=not%20(emails.type%20eq%20%22work%22)",
        in_creation()
            .filter(|i| !i.is_multiple_of(2))
            .map(name)
            .collect(),
    ));
    // Ascending by displayName, unfiltered: those with one by name, then those without
    // (oldest first); read from the end, the ones without must still come last.
    cases.push((
        "sortBy=displayName",
        (0..USERS)
            .filter(|i| i.is_multiple_of(2))
            .map(name)
            .chain(in_creation().filter(|i| !i.is_multiple_of(2)).map(name))
            .collect(),
    ));
    // A range on a text attribute without a lower-cased copy, sorted by it descending.
    cases.push((
        "filter=title%20gt%20%22common%22&sortBy=title&sortOrder=descending",
        in_creation()
            .rev()
            .filter(|i| title(*i) == "sparse")
            .chain(in_creation().rev().filter(|i| title(*i) == "rare"))
            .map(name)
            .collect(),
    ));
    for (query, matches) in &cases {
        // Pages at the front, in the middle and at the end (which are read from the end).
        let last = matches.len().max(1);
        let pages = [
            (1, 1),
            (1, 5),
            (3, 5),
            (2, 40),
            (1, 100),
            (60, 10),
            (last, 1),
            (last.saturating_sub(2).max(1), 5),
            (last.saturating_sub(6).max(1), 4),
            (last / 2 + 1, 3),
        ];
        for (start, count) in pages {
            let (status, found, _) = app
                .scim(
                    Method::GET,
                    &format!("/Users?{query}&startIndex={start}&count={count}"),
                    &token,
                    None,
                )
                .await;
            assert_eq!(status, 200, "{query}: {found}");
            let want: Vec<String> = matches
                .iter()
                .skip(start - 1)
                .take(count)
                .cloned()
                .collect();
            assert_eq!(
                names(&found),
                want,
                "{query} startIndex={start} count={count}"
            );
            assert_eq!(
                found["totalResults"],
                matches.len(),
                "{query} startIndex={start} count={count}"
            );
        }
    }
}

/// A total counted once is given again while no user has changed; every write of a user
/// (SCIM create, PATCH, DELETE, another instance on the same database, the command line)
/// changes what the next page says, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kept_totals_follow_every_write_of_a_user() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(Some("scim:users")).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let user = app
            .create_user(
                &token,
                json!({"schemas": [USER_SCHEMA], "userName": format!("t-{i}")}),
            )
            .await;
        ids.push(user["id"].as_str().unwrap().to_owned());
    }
    // A full page: its total is counted (and kept), not read off the page.
    let total = async |at: &str| {
        let http = reqwest::Client::new();
        let found: Value = http
            .get(format!(
                "{at}/scim/v2/Users?filter=userName%20sw%20%22t-%22&count=2"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(names(&found).len(), 2, "{found}");
        found["totalResults"].as_u64().unwrap()
    };
    let here = app.url("");
    assert_eq!(total(&here).await, 6);
    assert_eq!(total(&here).await, 6, "asked again");

    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "userName", "value": "renamed"}],
    });
    let (status, body, _) = app
        .scim(
            Method::PATCH,
            &format!("/Users/{}", ids[0]),
            &token,
            Some(patch),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(total(&here).await, 5, "after a PATCH");

    let (status, _, _) = app
        .scim(Method::DELETE, &format!("/Users/{}", ids[1]), &token, None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(total(&here).await, 4, "after a DELETE");

    app.create_user(
        &token,
        json!({"schemas": [USER_SCHEMA], "userName": "t-new"}),
    )
    .await;
    assert_eq!(total(&here).await, 5, "after a create");

    let sibling = app.start_sibling().await;
    let there = format!("http://{}", sibling.local_addr);
    assert_eq!(total(&there).await, 5, "the other instance");
    let (status, body, _) = app
        .scim(
            Method::PUT,
            &format!("/Users/{}", ids[2]),
            &token,
            Some(json!({"schemas": [USER_SCHEMA], "userName": "put-away"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        total(&there).await,
        4,
        "a PUT at one instance, asked at the other"
    );
    let created = reqwest::Client::new()
        .post(format!("{there}/scim/v2/Users"))
        .bearer_auth(&token)
        .json(&json!({"schemas": [USER_SCHEMA], "userName": "t-there"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(total(&here).await, 5, "a create at the other instance");

    let (code, _, err) = app.cli(&["user", "add", "--user-name", "t-cli"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(total(&here).await, 6, "a user added on the command line");
    assert_eq!(total(&there).await, 6, "and at the other instance");

    // Creates and searches at once at both instances: once the writes are done, both say
    // exactly how many there are.
    let http = reqwest::Client::new();
    let mut work = Vec::new();
    for i in 0..16 {
        let at = if i % 2 == 0 {
            here.clone()
        } else {
            there.clone()
        };
        let (http, token) = (http.clone(), token.clone());
        work.push(tokio::spawn(async move {
            let created = http
                .post(format!("{at}/scim/v2/Users"))
                .bearer_auth(&token)
                .json(&json!({"schemas": [USER_SCHEMA], "userName": format!("t-many-{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(created.status(), 201);
            http.get(format!(
                "{at}/scim/v2/Users?filter=userName%20sw%20%22t-%22&count=2"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
        }));
    }
    for done in work {
        assert_eq!(done.await.unwrap(), 200);
    }
    assert_eq!(total(&here).await, 22, "after writes at once");
    assert_eq!(
        total(&there).await,
        22,
        "after writes at once, at the other instance"
    );
    sibling.stop().await;
}

#[tokio::test]
async fn bad_sort_parameters_are_refused_with_scim_errors() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(Some("scim:users scim:groups")).await;
    for query in [
        "sortBy=emails.type",
        "sortBy=emails.primary",
        "sortBy=password",
        "sortBy=nosuch",
        "sortBy=userName,displayName",
        "sortBy=userName&sortOrder=up",
        "sortBy=userName&sortOrder=",
        "sortBy=urn:example:other:userName",
    ] {
        let (status, body, _) = app
            .scim(Method::GET, &format!("/Users?{query}"), &token, None)
            .await;
        assert_scim_error(status, &body, 400, Some("invalidValue"));
        assert!(
            body["detail"].as_str().unwrap().contains("sort"),
            "{query}: {body}"
        );
    }
    let huge = format!("sortBy={}", "a".repeat(20_000));
    let (status, _, _) = app
        .scim(Method::GET, &format!("/Users?{huge}"), &token, None)
        .await;
    assert!(status == 400 || status == 414 || status == 431, "{status}");
    let (status, body, _) = app
        .scim(Method::GET, "/Groups?sortBy=members", &token, None)
        .await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
    let (status, body, _) = app
        .scim(
            Method::POST,
            "/Users/.search",
            &token,
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                        "sortBy": ["userName"]}),
            ),
        )
        .await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
    // An empty sortBy is no sort, and sortOrder alone changes nothing.
    let (status, _, _) = app
        .scim(
            Method::GET,
            "/Users?sortBy=&sortOrder=descending",
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    // Discovery says sorting is supported.
    let (_, spc, _) = app
        .scim(Method::GET, "/ServiceProviderConfig", &token, None)
        .await;
    assert_eq!(spc["sort"]["supported"], true);
}

#[tokio::test]
async fn groups_sort_by_display_name_external_id_and_meta() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(Some("scim:groups")).await;
    // Case must not matter: byte order would put "Beta" before "alpha".
    for (name, external) in [("Beta", Some("x2")), ("alpha", None), ("gamma", Some("x1"))] {
        let mut group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                               "displayName": name});
        if let Some(external) = external {
            group["externalId"] = json!(external);
        }
        let (status, body, _) = app.scim(Method::POST, "/Groups", &token, Some(group)).await;
        assert_eq!(status, 201, "{body}");
        // meta.created is kept to the millisecond and ties go by id: one group per
        // millisecond, so that creation order is the order `meta.created` sorts by.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let list = |query: &'static str| {
        let app = &app;
        let token = &token;
        async move {
            let (status, body, _) = app
                .scim(
                    Method::GET,
                    &format!("/Groups?excludedAttributes=members&{query}"),
                    token,
                    None,
                )
                .await;
            assert_eq!(status, 200, "{query}: {body}");
            body["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["displayName"].as_str().unwrap().to_owned())
                .filter(|n| ["alpha", "Beta", "gamma"].contains(&n.as_str()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("sortBy=displayName").await, ["alpha", "Beta", "gamma"]);
    assert_eq!(
        list("sortBy=displayName&sortOrder=descending").await,
        ["gamma", "Beta", "alpha"]
    );
    assert_eq!(list("sortBy=externalId").await, ["gamma", "Beta", "alpha"]);
    assert_eq!(
        list("sortBy=externalId&sortOrder=descending").await,
        ["alpha", "Beta", "gamma"]
    );
    assert_eq!(
        list("sortBy=meta.created&sortOrder=descending").await,
        ["gamma", "alpha", "Beta"]
    );
}

/// `not` is two-valued, as SCIM's filters are: a user without the attribute does not match
/// `title eq "x"`, so it matches `not (title eq "x")`, on both kinds of text attribute (an
/// indexed `lower()` one, a lower-cased copy) and every operator, on both backends.
#[tokio::test]
async fn not_matches_users_without_the_attribute() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(Some("scim:users")).await;
    for (name, title, display) in [("n1", Some("Pilot"), Some("Pilot One")), ("n2", None, None)] {
        let mut user = json!({"schemas": [USER_SCHEMA], "userName": name});
        if let Some(title) = title {
            user["title"] = json!(title);
            user["displayName"] = json!(display);
        }
        app.create_user(&token, user).await;
    }
    for filter in [
        r#"not (title eq "pilot")"#,
        r#"not (title sw "pi")"#,
        r#"not (title gt "a")"#,
        r#"not (title co "lo")"#,
        r#"not (title ew "ot")"#,
        r#"not (displayName eq "pilot one")"#,
        r#"not (displayName sw "pilot")"#,
    ] {
        let query = format!("/Users?filter={}", urlencoding(filter));
        let (status, body, _) = app.scim(Method::GET, &query, &token, None).await;
        assert_eq!(status, 200, "{filter}: {body}");
        assert_eq!(names(&body), ["n2"], "{filter}: {body}");
        assert_eq!(body["totalResults"], 1, "{filter}");
    }
}

fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A page and its `totalResults` are of one state of the users, also while users are being
/// added: a page near the end is read from the end, so a total counted before a user was
/// added would start it one user late. One writer adds `w-00000`, `w-00001`, … (so the users
/// at any moment are a prefix of that list, and in `userName` order the user at index `i` is
/// `w-{i-1}`); readers ask for the last pages and the middle while it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_and_its_total_are_of_one_state_while_users_are_added() {
    const USERS: usize = 300;
    let app = TestApp::spawn().await;
    let token = app.admin_token(Some("scim:users")).await;
    let base = app.url("/scim/v2/Users");
    let http = reqwest::Client::new();
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (http, token, base, writing) =
            (http.clone(), token.clone(), base.clone(), writing.clone());
        tokio::spawn(async move {
            for i in 0..USERS {
                let created = http
                    .post(&base)
                    .bearer_auth(&token)
                    .json(&json!({"schemas": [USER_SCHEMA], "userName": format!("w-{i:05}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(created.status(), 201);
            }
            writing.store(false, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let mut readers = Vec::new();
    for reader in 0..4u64 {
        let (http, token, base, writing) =
            (http.clone(), token.clone(), base.clone(), writing.clone());
        readers.push(tokio::spawn(async move {
            let (mut pages, mut known) = (0u32, 0u64);
            let started = std::time::Instant::now();
            while writing.load(std::sync::atomic::Ordering::SeqCst)
                && started.elapsed() < std::time::Duration::from_secs(60)
            {
                // The last few users as last seen, or the middle.
                let start = match (reader + u64::from(pages)) % 3 {
                    0 => (known / 2).max(1),
                    _ => known.saturating_sub(3).max(1),
                };
                let page: Value = http
                    .get(format!(
                        "{base}?filter=userName%20sw%20%22w-%22&sortBy=userName&startIndex={start}&count=3"
                    ))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let total = page["totalResults"].as_u64().unwrap();
                let expected: Vec<String> = (start - 1..(start + 2).min(total))
                    .map(|i| format!("w-{i:05}"))
                    .collect();
                assert_eq!(
                    names(&page),
                    expected,
                    "startIndex={start} with totalResults={total}: {page}"
                );
                assert!(total >= known, "the total went back from {known} to {total}");
                known = total;
                pages += 1;
            }
            pages
        }));
    }
    writer.await.unwrap();
    let mut pages = 0;
    for reader in readers {
        pages += reader.await.unwrap();
    }
    assert!(
        pages > 20,
        "only {pages} pages were read while users were added"
    );
}
