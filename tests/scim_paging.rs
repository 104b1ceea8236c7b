//! Paging through users: a page after one already read is read on from where that page
//! stood in the order (a kept position) instead of skipping every match before it. Every
//! page must be the one the whole list gives, in every order (ascending and descending, a
//! key users may lack, a text key without a lower-cased copy, a unique key, no sort), with
//! and without a filter, with users tied on their creation time, and after every kind of
//! write between two pages; and the pages must really be read on (the
//! `scim_user_pages_total` series says how each was read). One test, so that the series
//! counts only its own pages.

mod common;

use common::{PATCH_SCHEMA, TestApp, USER_SCHEMA};
use reqwest::Method;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

const USERS: usize = 80;
const TITLES: [Option<&str>; 4] = [Some("Nurse"), Some("analyst"), Some("Pilot"), None];

fn user(i: usize) -> Value {
    let mut user = json!({
        "schemas": [USER_SCHEMA],
        "userName": format!("p{:03}", (i * 37) % 101),
        "active": !i.is_multiple_of(5),
        "emails": [{"value": format!("m{:03}@x.test", (i * 53) % 97), "type": "work", "primary": true}],
    });
    if let Some(title) = TITLES[i % TITLES.len()] {
        user["title"] = json!(title);
    }
    if !i.is_multiple_of(3) {
        user["displayName"] = json!(format!("D{}", i % 7));
    }
    if i % 4 != 1 {
        let family = ["Ng", "okafor", "Silva", "ng", "Berg"][i % 5];
        user["name"] = json!({ "familyName": family });
    }
    user
}

fn names(body: &Value) -> Vec<String> {
    body["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no Resources: {body}"))
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_owned())
        .collect()
}

async fn get(app: &TestApp, token: &str, query: &str) -> Value {
    let (status, body, _) = app
        .scim(Method::GET, &format!("/Users?{query}"), token, None)
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// How many pages were read on from a kept position, so far.
async fn read_on(app: &TestApp) -> f64 {
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .filter(|l| l.starts_with("scim_user_pages_total{") && l.contains("read=\"kept_position\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Pages `query` through with `count` from the first page on, checking each page and total
/// against the whole list read in one page; returns how many pages were read.
async fn page_through(app: &TestApp, token: &str, query: &str, count: usize) -> usize {
    let whole = get(app, token, &format!("{query}&count=1000")).await;
    let all = names(&whole);
    let mut start = 1;
    let mut pages = 0;
    while start <= all.len() {
        let page = get(
            app,
            token,
            &format!("{query}&startIndex={start}&count={count}"),
        )
        .await;
        let want: Vec<String> = all.iter().skip(start - 1).take(count).cloned().collect();
        assert_eq!(
            names(&page),
            want,
            "{query} startIndex={start} count={count}"
        );
        assert_eq!(
            page["totalResults"], whole["totalResults"],
            "{query} startIndex={start}"
        );
        start += count;
        pages += 1;
    }
    pages
}

const QUERIES: [&str; 13] = [
    "sortBy=title",
    "sortBy=title&sortOrder=descending",
    "filter=active%20eq%20true&sortBy=title",
    "filter=active%20eq%20true&sortBy=displayName&sortOrder=descending",
    "filter=not%20(title%20eq%20%22nurse%22)&sortBy=emails",
    "sortBy=userName&sortOrder=descending",
    "filter=active%20eq%20false",
    "sortBy=meta.lastModified&sortOrder=descending",
    "sortBy=meta.created",
    "sortBy=id&sortOrder=descending",
    "sortBy=name.familyName",
    "sortBy=displayName",
    "",
];

#[tokio::test]
async fn pages_read_on_from_kept_positions_are_the_pages_of_the_whole_list() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(Some("scim:users")).await;
    let mut ids = Vec::new();
    for i in 0..USERS {
        ids.push(
            app.create_user(&token, user(i)).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // A third of the users created in one instant (a bulk load): ties on the creation time
    // go by id, which the positions must honour.
    let db = &app.store().db;
    let tied: Vec<String> = ids.iter().step_by(3).map(|id| format!("'{id}'")).collect();
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        format!(
            "UPDATE users SET created_at = (SELECT min(created_at) FROM users) WHERE id IN ({})",
            tied.join(", ")
        ),
    ))
    .await
    .unwrap();
    let (mut all_pages, mut all_read_on) = (0, 0.0);
    for query in QUERIES {
        let before = read_on(&app).await;
        let mut pages = page_through(&app, &token, query, 7).await;
        // The same pages again, and with other sizes (from positions other pages kept).
        pages += page_through(&app, &token, query, 7).await;
        pages += page_through(&app, &token, query, 5).await;
        pages += page_through(&app, &token, query, 11).await;
        let read_on = read_on(&app).await - before;
        // Every order reads on (pages near the end are read from the end, and pages among
        // users without a title or displayName, last ascending and first descending, the
        // usual way).
        assert!(read_on >= 1.0, "{query}: {pages} pages, none read on");
        all_pages += pages;
        all_read_on += read_on;
    }
    assert!(
        all_read_on >= (all_pages / 3) as f64,
        "{all_pages} pages, {all_read_on} read on from a kept position"
    );
    writes_between_two_pages(&app, &token, &ids).await;
}

/// Between two pages a user is created that sorts before the next page, one is deleted, one
/// is moved in the order (PATCH), one is replaced (PUT): the next page is the one the whole
/// list gives now, never one read on from a position that no longer holds.
async fn writes_between_two_pages(app: &TestApp, token: &str, ids: &[String]) {
    let query = "filter=active%20eq%20true&sortBy=title";
    let patch_title = |title: &'static str| {
        json!({"schemas": [PATCH_SCHEMA],
               "Operations": [{"op": "replace", "path": "title", "value": title}]})
    };
    let mut fresh = USERS;
    for step in 0..4 {
        // Two pages in the middle, the second read on from the first.
        let start = 15 + step * 7;
        let first = get(app, token, &format!("{query}&startIndex={start}&count=7")).await;
        assert_eq!(names(&first).len(), 7);
        match step {
            0 => {
                // Sorts first ("Analyst"), before every page.
                let mut new = user(fresh);
                new["title"] = json!("Analyst");
                new["active"] = json!(true);
                new["userName"] = json!("new-first");
                app.create_user(token, new).await;
                fresh += 1;
            }
            1 => {
                let (status, _, _) = app
                    .scim(Method::DELETE, &format!("/Users/{}", ids[1]), token, None)
                    .await;
                assert_eq!(status, 204);
            }
            2 => {
                let (status, body, _) = app
                    .scim(
                        Method::PATCH,
                        &format!("/Users/{}", ids[2]),
                        token,
                        Some(patch_title("aaa")),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
            }
            _ => {
                let mut replaced = user(3);
                replaced["title"] = json!("Aardvark");
                let (status, body, _) = app
                    .scim(
                        Method::PUT,
                        &format!("/Users/{}", ids[3]),
                        token,
                        Some(replaced),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        }
        let next = start + 7;
        let page = get(app, token, &format!("{query}&startIndex={next}&count=7")).await;
        let whole = get(app, token, &format!("{query}&count=1000")).await;
        let want: Vec<String> = names(&whole).into_iter().skip(next - 1).take(7).collect();
        assert_eq!(names(&page), want, "after write {step}");
        assert_eq!(
            page["totalResults"], whole["totalResults"],
            "after write {step}"
        );
        // And the page itself again, read on from where it stands now.
        let again = get(app, token, &format!("{query}&startIndex={next}&count=7")).await;
        assert_eq!(names(&again), want, "again after write {step}");
    }
}
