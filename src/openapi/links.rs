//! Links from each create to the operations its `id` feeds, and the request-body examples
//! (checked against the domain by the tests and against the live server by
//! `tests/api_document.rs`).

use serde_json::{Value, json};

use serde_json::Map;

use super::operation;
use crate::domain::scim::group::GROUP_SCHEMA;
use crate::domain::scim::search::SEARCH_REQUEST_SCHEMA;
use crate::domain::scim::{PATCH_OP_SCHEMA, USER_SCHEMA};

/// A link's target, the parameters it fills and, where it has one, the body.
struct Link {
    name: &'static str,
    operation: &'static str,
    parameters: Value,
    body: Option<Value>,
}

fn link(name: &'static str, operation: &'static str, parameters: Value) -> Link {
    Link {
        name,
        operation,
        parameters,
        body: None,
    }
}

pub(super) fn add_links(doc: &mut Value) {
    let user = || json!({"id": "$response.body#/id"});
    let group = user;
    let code = || json!({"id": "$request.path.id", "code_id": "$response.body#/id"});
    let my_code = || json!({"code_id": "$response.body#/id"});
    let table = [
        (
            "createUser",
            "201",
            vec![
                link("GetUser", "getUser", user()),
                link("ReplaceUser", "replaceUser", user()),
                link("PatchUser", "patchUser", user()),
                link("DeleteUser", "deleteUser", user()),
                link("StartTotpEnrollment", "startTotpEnrollment", user()),
                link("GetTotpState", "getTotpState", user()),
                link("ResetTotp", "resetTotp", user()),
                link("CreateBypassCode", "createBypassCode", user()),
                link("ListBypassCodes", "listBypassCodes", user()),
            ],
        ),
        (
            "createGroup",
            "201",
            vec![
                link("GetGroup", "getGroup", group()),
                link("ReplaceGroup", "replaceGroup", group()),
                link("PatchGroup", "patchGroup", group()),
                link("DeleteGroup", "deleteGroup", group()),
            ],
        ),
        (
            "createBypassCode",
            "201",
            vec![
                link("GetBypassCode", "getBypassCode", code()),
                link("RevokeBypassCode", "revokeBypassCode", code()),
                link("ListBypassCodeEvents", "listBypassCodeEvents", code()),
                Link {
                    body: Some(json!({"code": "$response.body#/code"})),
                    ..link("NotifyBypassCode", "notifyBypassCode", code())
                },
            ],
        ),
        (
            "createBypassCode",
            "202",
            vec![
                link("GetBypassCode", "getBypassCode", code()),
                link("ApproveBypassCode", "approveBypassCode", code()),
                link("RejectBypassCode", "rejectBypassCode", code()),
            ],
        ),
        (
            "createMyBypassCode",
            "201",
            vec![
                link("GetMyBypassCode", "getMyBypassCode", my_code()),
                link("RevokeMyBypassCode", "revokeMyBypassCode", my_code()),
            ],
        ),
    ];
    for (source, status, links) in table {
        let mut objects = Map::new();
        for Link {
            name,
            operation,
            parameters,
            body,
        } in links
        {
            let mut object = json!({"operationId": operation, "parameters": parameters});
            if let Some(body) = body {
                object["requestBody"] = body;
            }
            objects.insert(name.to_owned(), object);
        }
        operation(doc, source)["responses"][status]["links"] = Value::Object(objects);
    }
}

/// The request-body example of each operation that takes a body; `tests` checks that the
/// domain accepts every one.
pub fn examples() -> Vec<(&'static str, Value)> {
    let user = json!({
        "schemas": [USER_SCHEMA],
        "userName": "ada.lovelace@example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "displayName": "Ada Lovelace",
        "emails": [{"value": "ada.lovelace@example.com", "type": "work", "primary": true}],
        "active": true,
    });
    let group = json!({
        "schemas": [GROUP_SCHEMA],
        "displayName": "Field engineers",
        "members": [],
    });
    let search = |filter: &str| {
        json!({
            "schemas": [SEARCH_REQUEST_SCHEMA],
            "filter": filter,
            "startIndex": 1,
            "count": 10,
        })
    };
    vec![
        ("createUser", user.clone()),
        ("replaceUser", user),
        (
            "patchUser",
            json!({
                "schemas": [PATCH_OP_SCHEMA],
                "Operations": [{"op": "replace", "path": "name.givenName", "value": "Augusta"}],
            }),
        ),
        ("createGroup", group.clone()),
        ("replaceGroup", group),
        (
            "patchGroup",
            json!({
                "schemas": [PATCH_OP_SCHEMA],
                "Operations": [{"op": "replace", "path": "displayName", "value": "Field engineering"}],
            }),
        ),
        ("searchUsers", search("userName sw \"ada\"")),
        ("searchGroups", search("displayName eq \"Field engineers\"")),
        (
            "searchAll",
            search("meta.lastModified gt \"2026-01-01T00:00:00Z\""),
        ),
        ("confirmTotpEnrollment", json!({"code": "123456"})),
        (
            "createBypassCode",
            json!({"expiresIn": {"days": 1}, "maxUsageCount": 3, "notify": ["email"], "reason": "INC-4711: phone lost on a trip"}),
        ),
        (
            "createMyBypassCode",
            json!({"expiresIn": {"hours": 8}, "maxUsageCount": 1}),
        ),
        ("notifyBypassCode", json!({"code": "1234-5678-9012"})),
        ("createMyBypassCodeSet", json!({"size": 10})),
        (
            "replaceBypassCodeSettings",
            json!({
                "codeLength": 12,
                "maxActive": 5,
                "helpDeskGenerationEnabled": true,
                "helpDeskMaxUsageUnlimited": true,
                "helpDeskMaxExpiryMinutes": 43200,
                "selfServiceGenerationEnabled": true,
                "selfServiceMaxUsage": 1,
                "selfServiceMaxExpiryMinutes": 1440,
            }),
        ),
    ]
}

pub(super) fn add_examples(doc: &mut Value) {
    for (id, example) in examples() {
        let content = operation(doc, id)
            .pointer_mut("/requestBody/content")
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("{id} takes no body"));
        for media in content.values_mut() {
            media["example"] = example.clone();
        }
    }
}
