//! `co` and `ew` on the attributes unique per user (`id`, `userName`, `externalId`,
//! `displayName`, `profileUrl`, `emails.value`), on text one user holds and text every user
//! holds: the answer is exact (case ignored but for `id` and `externalId`, text outside
//! ASCII, quotes) after every kind of write of a user (created, renamed, emails replaced,
//! deleted); and a page shows each user as reading that user alone does.

mod common;

use common::{PATCH_SCHEMA, TestApp, USER_SCHEMA};
use reqwest::Method;
use serde_json::{Value, json};

/// How many users.
const USERS: usize = 40;
const MFA_EXTENSION: &str = "urn:bypass-idp:params:scim:schemas:extension:mfa:2.0:User";

/// What the test knows of a user: the attributes the filters compare.
#[derive(Clone)]
struct Known {
    id: String,
    user_name: String,
    external_id: String,
    display_name: String,
    profile_url: String,
    emails: Vec<String>,
}

impl Known {
    /// The user's values of `attr`, and whether they compare exactly.
    fn values(&self, attr: &str) -> (Vec<&str>, bool) {
        match attr {
            "id" => (vec![&self.id], true),
            "userName" => (vec![&self.user_name], false),
            "externalId" => (vec![&self.external_id], true),
            "displayName" => (vec![&self.display_name], false),
            "profileUrl" => (vec![&self.profile_url], false),
            "emails.value" => (self.emails.iter().map(String::as_str).collect(), false),
            _ => unreachable!("{attr}"),
        }
    }

    fn matches(&self, attr: &str, op: &str, text: &str) -> bool {
        let (values, exact) = self.values(attr);
        values.iter().any(|value| {
            let (value, text) = if exact {
                (value.to_string(), text.to_owned())
            } else {
                (value.to_lowercase(), text.to_lowercase())
            };
            match op {
                "co" => value.contains(&text),
                _ => value.ends_with(&text),
            }
        })
    }
}

fn body(prefix: &str, i: usize) -> Value {
    let mut emails = vec![json!({"value": format!("W{i:03}.{prefix}@Corp.example"),
                                  "type": "work", "primary": true,
                                  "display": format!("Wörk \"{i}\" \\ 🙂")})];
    if i.is_multiple_of(3) {
        // Listed first, as the client sent it: not primary, no display.
        emails.insert(
            0,
            json!({"value": format!("h{i:03}@HOME.example"), "type": "home"}),
        );
    }
    let mut user = json!({
        "schemas": [USER_SCHEMA],
        // 'İ' lower-cases to two characters ("i̇"), 'Ä' to one.
        "userName": format!("{prefix}.İstÄr{i:03}"),
        "externalId": format!("Ext-{i:03}-{prefix}"),
        "displayName": format!("Say \"hi\" {i:03} Ünïcode"),
        "profileUrl": format!("https://Example.com/p/{prefix}/{i:03}"),
        "emails": emails,
    });
    if i.is_multiple_of(5) {
        user["schemas"] = json!([USER_SCHEMA, MFA_EXTENSION]);
        user[MFA_EXTENSION] = json!({"mfaRequired": true});
    }
    user
}

fn known(created: &Value) -> Known {
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    Known {
        id: text(&created["id"]),
        user_name: text(&created["userName"]),
        external_id: text(&created["externalId"]),
        display_name: text(&created["displayName"]),
        profile_url: text(&created["profileUrl"]),
        emails: created["emails"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| text(&e["value"]))
            .collect(),
    }
}

/// Replaces (PUT) or patches the user `id` and gives what the server answered of it.
async fn written(app: &TestApp, token: &str, method: Method, id: &str, body: Value) -> Known {
    let (status, user, _) = app
        .scim(method, &format!("/Users/{id}"), token, Some(body))
        .await;
    assert_eq!(status, 200, "{user}");
    known(&user)
}

/// A SCIM string literal of `text`.
fn literal(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Asks `attr op text` (also as the right side of an `and` and under `not`) and checks the
/// users and the total against what the test knows.
async fn check(app: &TestApp, token: &str, users: &[Known], attr: &str, op: &str, text: &str) {
    let filter = format!("{attr} {op} {}", literal(text));
    let mut expected: Vec<&str> = users
        .iter()
        .filter(|u| u.matches(attr, op, text))
        .map(|u| u.id.as_str())
        .collect();
    expected.sort();
    for (query, want) in [
        (filter.clone(), expected.clone()),
        (format!("userName pr and {filter}"), expected.clone()),
        (
            format!("not ({filter})"),
            users
                .iter()
                .map(|u| u.id.as_str())
                .filter(|id| !expected.contains(id))
                .collect(),
        ),
    ] {
        let mut want = want;
        want.sort();
        let path = format!(
            "/Users?count=1000&attributes=id&filter={}",
            url::form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
        );
        let (status, body, _) = app.scim(Method::GET, &path, token, None).await;
        assert_eq!(status, 200, "{query}: {body}");
        let mut got: Vec<&str> = body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, want, "{query}");
        assert_eq!(body["totalResults"], want.len(), "{query}");
    }
}

/// The patterns asked of every user: rare ones (one user holds them) and common ones (every
/// user), in each case and quoting the attribute allows.
fn patterns(prefix: &str, users: &[Known]) -> Vec<(&'static str, &'static str, String)> {
    let seventh = &users[7];
    let mut asked = vec![
        ("userName", "co", "İSTÄR007".to_owned()),
        ("userName", "co", "i̇stär".to_owned()),
        ("userName", "ew", "TÄR007".to_owned()),
        ("userName", "ew", "007".to_owned()),
        ("userName", "co", "stär00".to_owned()),
        ("userName", "co", "zzz".to_owned()),
        ("externalId", "co", "Ext-007".to_owned()),
        ("externalId", "co", "ext-007".to_owned()),
        ("externalId", "ew", prefix[prefix.len() - 6..].to_owned()),
        ("displayName", "co", "\"HI\" 007".to_owned()),
        ("displayName", "co", "\"hi\"".to_owned()),
        ("displayName", "ew", "007 ÜNÏCODE".to_owned()),
        ("displayName", "co", "ünï".to_owned()),
        ("profileUrl", "co", format!("/{prefix}/007").to_uppercase()),
        ("profileUrl", "ew", "p/".to_owned()),
        ("profileUrl", "co", "example.com/p".to_owned()),
        ("emails.value", "co", "w007.".to_owned()),
        ("emails.value", "co", "H009@home".to_owned()),
        ("emails.value", "ew", "@home.EXAMPLE".to_owned()),
        ("emails.value", "co", "corp.example".to_owned()),
        ("emails.value", "ew", "h009@home.example".to_owned()),
        // Across two emails of one user: nobody has it.
        ("emails.value", "co", "example h009".to_owned()),
        ("id", "co", seventh.id[9..23].to_owned()),
        ("id", "co", seventh.id[9..23].to_uppercase()),
        ("id", "ew", seventh.id[30..].to_owned()),
        ("id", "co", "-".to_owned()),
    ];
    asked.retain(|(_, _, text)| !text.is_empty());
    asked
}

#[tokio::test]
async fn substring_filters_are_exact_on_rare_and_common_text_through_every_write() {
    let app = TestApp::spawn().await;
    let token = app.admin_token(Some("scim:users")).await;
    let prefix = common::unique("sub");
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(known(&app.create_user(&token, body(&prefix, i)).await));
    }
    for (attr, op, text) in patterns(&prefix, &users) {
        check(&app, &token, &users, attr, op, &text).await;
    }

    // Renamed, with its emails replaced: found by the new text only.
    let seventh = users[7].id.clone();
    let mut renamed = body(&prefix, 7);
    renamed["userName"] = json!(format!("{prefix}.renamed-Ωmega"));
    renamed["displayName"] = json!("Someone Else");
    renamed["externalId"] = json!("Moved-777");
    renamed["profileUrl"] = json!("https://example.org/moved");
    renamed["emails"] = json!([{"value": "fresh.ΩMEGA@new.example", "type": "work"}]);
    users[7] = written(&app, &token, Method::PUT, &seventh, renamed).await;
    // Changed in part: one more email for user 8, a new displayName for user 10.
    let eighth = users[8].id.clone();
    let patch = json!({"schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "add", "path": "emails",
                        "value": [{"value": "added.ΘETA@extra.example", "type": "other"}]}]});
    users[8] = written(&app, &token, Method::PATCH, &eighth, patch).await;
    let tenth = users[10].id.clone();
    let patch = json!({"schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Tenth Réplaced"}]});
    users[10] = written(&app, &token, Method::PATCH, &tenth, patch).await;
    // Deleted: user 9 (who had a home address).
    let ninth = users[9].id.clone();
    let (status, _, _) = app
        .scim(Method::DELETE, &format!("/Users/{ninth}"), &token, None)
        .await;
    assert_eq!(status, 204);
    users.remove(9);

    let mut after = patterns(&prefix, &users);
    after.extend([
        ("userName", "co", "RENAMED-ω".to_owned()),
        ("userName", "ew", "ΩMEGA".to_owned()),
        ("displayName", "co", "else".to_owned()),
        ("displayName", "co", "RÉPLACED".to_owned()),
        ("externalId", "co", "ved-77".to_owned()),
        ("profileUrl", "co", "EXAMPLE.ORG/mov".to_owned()),
        ("emails.value", "co", "h.ωmega@".to_owned()),
        ("emails.value", "co", "ΘETA@extra".to_owned()),
        ("emails.value", "ew", "008.".to_owned()),
    ]);
    for (attr, op, text) in after {
        check(&app, &token, &users, attr, op, &text).await;
    }

    // A page shows each user as reading that user alone does: the emails in the client's
    // order, with their type, primary flag and display; the groups; the MFA extension.
    let groups_token = app.admin_token(Some("scim:groups")).await;
    let members: Vec<Value> = users
        .iter()
        .step_by(4)
        .map(|u| json!({"value": u.id}))
        .collect();
    let (status, group, _) = app
        .scim(
            Method::POST,
            "/Groups",
            &groups_token,
            Some(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                        "displayName": format!("{prefix} \"readers\" 📚"), "members": members}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let filter = format!("userName sw \"{prefix}\"");
    let path = format!(
        "/Users?count=1000&filter={}",
        url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
    );
    let (status, page, _) = app.scim(Method::GET, &path, &token, None).await;
    assert_eq!(status, 200, "{page}");
    let listed = page["Resources"].as_array().unwrap();
    assert_eq!(listed.len(), users.len());
    for user in listed {
        let id = user["id"].as_str().unwrap();
        let (status, alone, _) = app
            .scim(Method::GET, &format!("/Users/{id}"), &token, None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(user, &alone, "{id}");
        assert!(user["emails"].as_array().is_some_and(|e| !e.is_empty()));
    }
    let with = |key: &str| listed.iter().filter(|u| u.get(key).is_some()).count();
    assert_eq!(with("groups"), USERS.div_ceil(4));
    assert_eq!(with(MFA_EXTENSION), USERS.div_ceil(5));
    app.stop().await;
}
