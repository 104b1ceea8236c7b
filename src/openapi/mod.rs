//! The OpenAPI document of the SCIM API, as served at `/openapi.json` and printed by
//! `bypass-idp openapi`. poem-openapi derives its skeleton from the handlers and
//! [`scim::models`](crate::scim::models); this module adds what the derive cannot say:
//! - the limits, copied from the domain constants that enforce them (one source for both);
//! - request schemas (`UserRequest`, `GroupRequest`) apart from the response schemas, whose
//!   only required members are `schemas` and `id`, as projection leaves them;
//! - per operation, the error statuses it can answer, not every status of [`ScimError`];
//! - links from each create to the operations its `id` feeds, and request-body examples.
//!
//! It also answers which methods a path allows, for the `Allow` header of a 405.
//!
//! [`ScimError`]: crate::scim::error::ScimError

mod allow;
mod links;

pub use allow::allow_on_405;
pub use links::examples;
use links::{add_examples, add_links};

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use crate::domain::bypass::{
    EXPIRES_IN_PARTS, MAX_ACTIVE_LIMIT, MAX_CODE_LENGTH, MAX_EXPIRY_MINUTES, MAX_USAGE_LIMIT,
    MIN_CODE_LENGTH, Purpose,
};
use crate::domain::scim::filter::MAX_FILTER_LEN;
use crate::domain::scim::group::{
    GROUP_SCHEMA, MAX_DISPLAY_NAME_CHARS, MAX_EXTERNAL_ID_CHARS, MAX_MEMBER_VALUE_CHARS,
    MAX_MEMBERS_PER_REQUEST,
};
use crate::domain::scim::schema::{AttrDef, AttrType, USER_ATTRIBUTES};
use crate::domain::scim::search::SEARCH_REQUEST_SCHEMA;
use crate::domain::scim::user::{
    ATTRIBUTE_LIST_PATTERN, ATTRIBUTE_PATTERN, MAX_EMAILS, MIN_PASSWORD_CHARS,
};
use crate::domain::scim::{
    MAX_PATCH_OPERATIONS, MFA_EXTENSION_SCHEMA, PATCH_OP_SCHEMA, USER_SCHEMA,
};
use crate::scim::IF_MATCH_PATTERN;
use crate::service::users::MAX_PAGE_SIZE;

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(build);
    &DOCUMENT
}

/// The document as JSON text, built once.
pub fn text() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        serde_json::to_string_pretty(document()).expect("a JSON value serialises")
    });
    &TEXT
}

fn build() -> Value {
    let derived = crate::scim::openapi_service().spec();
    let mut doc: Value = serde_json::from_str(&derived).expect("poem-openapi writes JSON");
    declare_limits(&mut doc);
    split_request_schema(&mut doc, "User", "UserRequest", &["schemas", "userName"]);
    split_request_schema(
        &mut doc,
        "Group",
        "GroupRequest",
        &["schemas", "displayName"],
    );
    declare_request_schemas(&mut doc);
    loosen_projected_schemas(&mut doc);
    for schema in [
        "UserRequest",
        "UserName",
        "UserEmail",
        "GroupRequest",
        "SearchRequest",
        "BypassCodeRequest",
        "ExpiresIn",
    ] {
        null_means_absent(&mut doc, schema);
    }
    tailor_responses(&mut doc);
    // BypassCodeSettings is the exception: a `null` there would lift a limit by accident.
    add_links(&mut doc);
    add_examples(&mut doc);
    doc
}

/// The members of one component schema's `properties`.
fn properties<'a>(doc: &'a mut Value, schema: &str) -> &'a mut Map<String, Value> {
    doc.pointer_mut(&format!("/components/schemas/{schema}/properties"))
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("the document has no schema {schema}"))
}

/// Adds JSON Schema keywords to one property of a component schema.
fn constrain(doc: &mut Value, schema: &str, property: &str, keywords: Value) {
    let target = properties(doc, schema)
        .get_mut(property)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("schema {schema} has no property {property}"));
    merge(target, keywords);
}

fn merge(target: &mut Map<String, Value>, keywords: Value) {
    let Value::Object(keywords) = keywords else {
        panic!("keywords are an object");
    };
    target.extend(keywords);
}

/// Every operation: its path, method and object.
fn operations(doc: &mut Value) -> impl Iterator<Item = (&String, &String, &mut Value)> {
    doc["paths"]
        .as_object_mut()
        .expect("the document has paths")
        .iter_mut()
        .flat_map(|(path, item)| {
            item.as_object_mut()
                .expect("a path item is an object")
                .iter_mut()
                .map(move |(method, op)| (path, method, op))
        })
}

fn operation<'a>(doc: &'a mut Value, id: &str) -> &'a mut Value {
    operations(doc)
        .find(|(_, _, op)| op["operationId"] == id)
        .map(|(_, _, op)| op)
        .unwrap_or_else(|| panic!("the document has no operation {id}"))
}

/// String attributes of the User schema: their longest length, from the schema the domain
/// validates against.
fn user_strings(doc: &mut Value, schema: &str, defs: &[AttrDef]) {
    for def in defs {
        match def.ty {
            AttrType::String | AttrType::Reference => {
                let mut keywords = json!({"maxLength": def.max_len});
                if def.name == "password" {
                    keywords["minLength"] = json!(MIN_PASSWORD_CHARS);
                }
                constrain(doc, schema, def.name, keywords);
            }
            AttrType::Complex if def.name == "name" => {
                user_strings(doc, "UserName", def.sub_attributes);
            }
            AttrType::Complex if def.name == "emails" => {
                constrain(doc, schema, "emails", json!({"maxItems": MAX_EMAILS}));
                user_strings(doc, "UserEmail", def.sub_attributes);
            }
            _ => {}
        }
    }
}

fn declare_limits(doc: &mut Value) {
    user_strings(doc, "User", USER_ATTRIBUTES);
    // externalId is common to all resources (RFC 7643 §3.1), not in the User schema.
    constrain(
        doc,
        "User",
        "externalId",
        json!({"maxLength": MAX_EXTERNAL_ID_CHARS}),
    );
    constrain(
        doc,
        "Group",
        "displayName",
        json!({"maxLength": MAX_DISPLAY_NAME_CHARS}),
    );
    constrain(
        doc,
        "Group",
        "externalId",
        json!({"maxLength": MAX_EXTERNAL_ID_CHARS}),
    );
    constrain(
        doc,
        "Group",
        "members",
        json!({"maxItems": MAX_MEMBERS_PER_REQUEST}),
    );
    constrain(
        doc,
        "GroupMember",
        "value",
        json!({"minLength": 1, "maxLength": MAX_MEMBER_VALUE_CHARS}),
    );
    constrain(
        doc,
        "PatchRequest",
        "Operations",
        json!({"minItems": 1, "maxItems": MAX_PATCH_OPERATIONS}),
    );
    constrain(
        doc,
        "SearchRequest",
        "filter",
        json!({"maxLength": MAX_FILTER_LEN}),
    );
    for list in ["attributes", "excludedAttributes"] {
        constrain(
            doc,
            "SearchRequest",
            list,
            json!({"items": {"type": "string", "pattern": ATTRIBUTE_PATTERN}}),
        );
    }
    constrain(
        doc,
        "SearchRequest",
        "count",
        json!({"description": format!("Results per page; at most {MAX_PAGE_SIZE} are returned, negative means 0.")}),
    );

    let codes = json!({"minimum": MIN_CODE_LENGTH, "maximum": MAX_CODE_LENGTH});
    constrain(doc, "BypassCodeSettings", "codeLength", codes);
    constrain(
        doc,
        "BypassCodeSettings",
        "maxActive",
        json!({"minimum": 1, "maximum": MAX_ACTIVE_LIMIT}),
    );
    constrain(
        doc,
        "BypassCodeSettings",
        "bypassSessionMaxMinutes",
        json!({"minimum": 0, "maximum": crate::domain::bypass::policy::MAX_BYPASS_SESSION_MINUTES}),
    );
    constrain(
        doc,
        "BypassCodeSettings",
        "authenticatorReplacement",
        json!({"enum": crate::domain::enrolment::Replacement::ALL.map(|r| r.as_str())}),
    );
    constrain(
        doc,
        "BypassCodeSettings",
        "approvalRequired",
        json!({"enum": crate::domain::bypass::ApprovalRequired::ALL.map(|a| a.as_str())}),
    );
    constrain(
        doc,
        "BypassCodeSettings",
        "maxStartDelayDays",
        json!({"minimum": 0, "maximum": crate::domain::bypass::policy::MAX_START_DELAY_DAYS}),
    );
    let set_size = json!({"minimum": 1, "maximum": crate::domain::bypass::policy::MAX_SET_SIZE});
    constrain(
        doc,
        "BypassCodeSettings",
        "selfServiceSetSize",
        set_size.clone(),
    );
    constrain(doc, "BypassCodeSetRequest", "size", set_size);
    constrain(
        doc,
        "BypassCodeRequest",
        "reason",
        json!({
            "minLength": 1,
            "maxLength": crate::domain::bypass::request::MAX_REASON_CHARS,
            "pattern": r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$",
        }),
    );
    constrain(
        doc,
        "BypassCodeRequest",
        "startsAt",
        json!({"format": "date-time"}),
    );
    constrain(
        doc,
        "BypassCode",
        "status",
        json!({"enum": crate::domain::bypass::CodeStatus::ALL.map(|s| s.as_str())}),
    );
    let purposes = [Purpose::SignIn, Purpose::Enrolment].map(Purpose::as_str);
    constrain(
        doc,
        "BypassCodeRequest",
        "purpose",
        json!({"enum": purposes}),
    );
    constrain(doc, "BypassCode", "purpose", json!({"enum": purposes}));
    for origin in ["helpDesk", "selfService"] {
        constrain(
            doc,
            "BypassCodeSettings",
            &format!("{origin}MaxUsage"),
            json!({"minimum": 1, "maximum": MAX_USAGE_LIMIT}),
        );
        constrain(
            doc,
            "BypassCodeSettings",
            &format!("{origin}MaxExpiryMinutes"),
            json!({"minimum": 1, "maximum": MAX_EXPIRY_MINUTES}),
        );
    }
    constrain(
        doc,
        "BypassCodeRequest",
        "maxUsageCount",
        json!({"minimum": 1, "maximum": MAX_USAGE_LIMIT}),
    );
    constrain(
        doc,
        "BypassCodeRequest",
        "notify",
        json!({"items": {"type": "string", "enum": ["email"]}}),
    );
    for (part, _, largest) in EXPIRES_IN_PARTS {
        constrain(
            doc,
            "ExpiresIn",
            part,
            json!({"minimum": 0, "maximum": largest}),
        );
    }
    // The create body refuses members it does not know (`CREATE_MEMBERS`).
    for schema in ["BypassCodeRequest", "ExpiresIn"] {
        doc["components"]["schemas"][schema]["additionalProperties"] = json!(false);
    }

    for (_, _, op) in operations(doc) {
        let Some(parameters) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for parameter in parameters {
            if parameter["name"] == "If-Match" {
                parameter["description"] = json!(
                    "The resource's ETag (`W/\"3\"`) makes the change conditional: 412 if the \
                     resource changed since. `*` or no header: unconditional; an empty value is refused (400)."
                );
            }
            let keywords = match parameter["name"].as_str() {
                Some("filter") => json!({"maxLength": MAX_FILTER_LEN}),
                Some("attributes" | "excludedAttributes") => {
                    json!({"pattern": ATTRIBUTE_LIST_PATTERN})
                }
                Some("If-Match") => json!({"pattern": IF_MATCH_PATTERN}),
                _ => continue,
            };
            let schema = parameter["schema"]
                .as_object_mut()
                .expect("a parameter has a schema");
            merge(schema, keywords);
        }
    }
}

/// The `schemas` member a request must carry: the one URN its endpoint takes.
fn declare_request_schemas(doc: &mut Value) {
    // A User may name the MFA extension it carries (GET returns it, so a round trip does).
    for (schema, urns) in [
        ("UserRequest", &[USER_SCHEMA, MFA_EXTENSION_SCHEMA][..]),
        ("GroupRequest", &[GROUP_SCHEMA]),
        ("PatchRequest", &[PATCH_OP_SCHEMA]),
        ("SearchRequest", &[SEARCH_REQUEST_SCHEMA]),
    ] {
        constrain(
            doc,
            schema,
            "schemas",
            json!({"minItems": 1, "items": {"type": "string", "enum": urns}}),
        );
    }
}

/// Projection (`attributes`, `excludedAttributes`) may return one sub-attribute of a complex
/// attribute without the others, so the schemas responses use require none of them (requests
/// get copies that keep their `required`); and a group read back may hold more members than
/// one request may send, so `Group.members` has no `maxItems`.
fn loosen_projected_schemas(doc: &mut Value) {
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("the document has component schemas");
    for (shared, copy, request, attribute) in [
        ("UserEmail", "UserEmailRequest", "UserRequest", "emails"),
        (
            "GroupMember",
            "GroupMemberRequest",
            "GroupRequest",
            "members",
        ),
    ] {
        let mut request_item = schemas[shared].clone();
        request_item["title"] = json!(copy);
        schemas.insert(copy.to_owned(), request_item);
        schemas[request]["properties"][attribute]["items"] =
            json!({"$ref": format!("#/components/schemas/{copy}")});
    }
    for name in ["UserEmail", "GroupMember", "UserGroup", "Meta"] {
        if let Some(object) = schemas[name].as_object_mut() {
            object.remove("required");
        }
    }
    if let Some(members) = schemas["Group"]["properties"]["members"].as_object_mut() {
        members.remove("maxItems");
    }
}

/// In a request, `null` is the same as leaving a member out (RFC 7644 §3.5.1: unassigned):
/// every optional member of `schema` is nullable.
fn null_means_absent(doc: &mut Value, schema: &str) {
    let object = &mut doc["components"]["schemas"][schema];
    let required: Vec<Value> = object["required"].as_array().cloned().unwrap_or_default();
    let properties = object["properties"]
        .as_object_mut()
        .unwrap_or_else(|| panic!("schema {schema} has properties"));
    for (name, property) in properties.iter_mut() {
        if required.contains(&json!(name)) {
            continue;
        }
        // OpenAPI 3.0 ignores siblings of $ref: wrap it.
        if let Some(reference) = property.get("$ref").cloned() {
            *property = json!({"allOf": [{"$ref": reference}]});
        }
        property["nullable"] = json!(true);
    }
}

/// Copies response schema `name` to `request` without its read-only members, makes
/// `required` the members a request must carry, drops write-only members from the response
/// schema, and points request bodies at the copy.
fn split_request_schema(doc: &mut Value, name: &str, request: &str, required: &[&str]) {
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("the document has component schemas");
    let response = schemas.get_mut(name).expect("the schema exists");
    let mut copy = response.clone();
    let props = copy["properties"].as_object_mut().expect("properties");
    props.retain(|_, p| p["readOnly"] != json!(true));
    copy["required"] = json!(required);
    copy["title"] = json!(request);
    copy["description"] = json!(format!(
        "The body that creates or replaces a {name}: the {name} schema without its read-only \
         attributes. Attribute names are matched case-insensitively."
    ));
    response["properties"]
        .as_object_mut()
        .expect("properties")
        .retain(|_, p| p["writeOnly"] != json!(true));
    response["required"] = json!(["schemas", "id"]);
    schemas.insert(request.to_owned(), copy);

    let from = json!(format!("#/components/schemas/{name}"));
    let to = json!(format!("#/components/schemas/{request}"));
    for (_, _, op) in operations(doc) {
        let Some(content) = op
            .pointer_mut("/requestBody/content")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for media in content.values_mut() {
            if media["schema"]["$ref"] == from {
                media["schema"]["$ref"] = to.clone();
            }
        }
    }
}

/// Operations that answer 409: a taken unique name, an enrolment that exists, too many
/// active codes.
const CONFLICTS: &[&str] = &[
    "createUser",
    "replaceUser",
    "patchUser",
    "createGroup",
    "replaceGroup",
    "patchGroup",
    "startTotpEnrollment",
    "confirmTotpEnrollment",
    "createBypassCode",
    "createMyBypassCode",
    "approveBypassCode",
    "rejectBypassCode",
];

/// Operations that count attempts of a typed secret and answer 429 past the limit.
const THROTTLED: &[&str] = &["notifyBypassCode"];

/// Keeps, of the error statuses poem-openapi lists on every operation, those the operation
/// can answer: 400 only with a body, a query or `If-Match` to refuse, or a path id the store
/// may refuse (a NUL character); 404 only with a resource in the path (or the signed-in user
/// behind `/Me`); 409 only for [`CONFLICTS`]; 412 only with `If-Match`; 413 and 415 only
/// with a body; 429 only for [`THROTTLED`]; 403 wherever a scope is required, which is everywhere but the discovery
/// documents. 401, 500 and 503 stay everywhere: every operation checks a token, and may fail.
fn tailor_responses(doc: &mut Value) {
    for (path, method, op) in operations(doc) {
        let params: Vec<(String, String)> = op["parameters"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|p| {
                        (
                            p["in"].as_str().unwrap_or_default().to_owned(),
                            p["name"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let has = |place: &str| params.iter().any(|(p, _)| p == place);
        let body = op.get("requestBody").is_some();
        let if_match = params.iter().any(|(_, n)| n == "If-Match");
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        // The discovery documents are read from memory by any valid token.
        let discovery = op["tags"] == json!(["Discovery"]) && method == "get";
        let me = path.contains("/Me/");
        op["responses"]
            .as_object_mut()
            .expect("an operation has responses")
            .retain(|status, _| match status.as_str() {
                "400" => body || has("query") || if_match || (has("path") && !discovery),
                "403" => !discovery,
                "404" => has("path") || me,
                "409" => CONFLICTS.contains(&id.as_str()),
                "412" => if_match,
                "413" | "415" => body,
                "429" => THROTTLED.contains(&id.as_str()),
                _ => true,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::allow::allowed;
    use chrono::Utc;

    use super::*;
    use crate::domain::bypass::{Origin, Policy, parse_create};
    use crate::domain::scim::group::{parse_group, parse_patch};
    use crate::domain::scim::search::SearchParams;
    use crate::domain::scim::user::fixtures::stored;
    use crate::domain::scim::user::{apply_patch, parse_user};

    #[test]
    fn the_domain_accepts_every_example() {
        let user = stored(parse_user(&examples()[0].1).unwrap());
        for (id, example) in examples() {
            let accepted = match id {
                "createUser" | "replaceUser" => parse_user(&example).map(drop),
                "patchUser" => apply_patch(&user, &example).map(drop),
                "createGroup" | "replaceGroup" => parse_group(&example).map(drop),
                "patchGroup" => parse_patch(&example).map(drop),
                "searchUsers" | "searchGroups" | "searchAll" => {
                    SearchParams::from_body(&example).map(drop)
                }
                "createBypassCode" => {
                    parse_create(&example, &Policy::default(), Origin::HelpDesk, Utc::now())
                        .map(drop)
                }
                "createMyBypassCode" => parse_create(
                    &example,
                    &Policy::default(),
                    Origin::SelfService,
                    Utc::now(),
                )
                .map(drop),
                "replaceBypassCodeSettings" => Policy::from_json(&example).map(drop),
                "createMyBypassCodeSet" => {
                    let size = example["size"].as_i64().unwrap_or_default();
                    let most = Policy::default().self_service_set_size as i64;
                    assert!((1..=most).contains(&size), "{example}");
                    Ok(())
                }
                // Their values must be live (a current TOTP code, a code just generated);
                // tests/api_document.rs sends the notify example with one.
                "confirmTotpEnrollment" | "notifyBypassCode" => Ok(()),
                other => panic!("no check for the example of {other}"),
            };
            assert!(accepted.is_ok(), "{id}: {accepted:?}");
        }
    }

    #[test]
    fn the_document_is_built_and_every_operation_is_accounted_for() {
        let mut doc = document().clone();
        let ids: Vec<String> = operations(&mut doc)
            .map(|(_, _, op)| op["operationId"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 40, "{ids:?}");
        // What projection may leave out is required nowhere a response uses it.
        let schemas = &doc["components"]["schemas"];
        for name in ["UserEmail", "GroupMember", "UserGroup", "Meta"] {
            assert!(schemas[name].get("required").is_none(), "{name}");
        }
        assert_eq!(schemas["UserEmailRequest"]["required"], json!(["value"]));
        assert!(
            schemas["Group"]["properties"]["members"]
                .get("maxItems")
                .is_none()
        );
        assert!(schemas["GroupRequest"]["properties"]["members"]["maxItems"].is_number());
        for id in CONFLICTS {
            assert!(ids.iter().any(|i| i == id), "{id} is not an operation");
        }
        // Limits come from the domain.
        let user = &doc["components"]["schemas"]["User"]["properties"];
        assert_eq!(user["userName"]["maxLength"], 256);
        assert_eq!(user["profileUrl"]["maxLength"], 2048);
        assert!(
            user.get("password").is_none(),
            "write-only stays out of responses"
        );
        let request = &doc["components"]["schemas"]["UserRequest"];
        assert_eq!(
            request["properties"]["password"]["minLength"],
            MIN_PASSWORD_CHARS
        );
        assert!(request["properties"].get("id").is_none());
        assert_eq!(request["required"], json!(["schemas", "userName"]));
        let settings = &doc["components"]["schemas"]["BypassCodeSettings"]["properties"];
        assert!(settings["helpDeskMaxUsage"].get("nullable").is_none());
        assert_eq!(settings["helpDeskMaxUsageUnlimited"]["type"], "boolean");
        let create = operation(&mut doc, "createUser");
        assert_eq!(
            create["requestBody"]["content"]["application/scim+json"]["schema"]["$ref"],
            "#/components/schemas/UserRequest"
        );
        assert!(create["responses"]["201"]["links"]["GetUser"].is_object());
        let statuses: Vec<&String> = operation(&mut doc, "getServiceProviderConfig")["responses"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(statuses, ["200", "401", "500", "503"]);
        let search = operation(&mut doc, "searchAll");
        assert!(search.get("parameters").is_none(), "{search}");
    }

    #[test]
    fn allow_lists_the_methods_of_the_matching_path() {
        assert_eq!(
            allowed("/scim/v2/Users/abc").as_deref(),
            Some("DELETE, GET, HEAD, PATCH, PUT")
        );
        assert_eq!(
            allowed("/scim/v2/Users/abc/bypassCodes/def/notifications").as_deref(),
            Some("POST")
        );
        assert_eq!(allowed("/scim/v2/Users/.search").as_deref(), Some("POST"));
        assert_eq!(allowed("/scim/v2/Nope"), None);
        assert_eq!(allowed("/scim/v2/Users//totp"), None);
    }
}
