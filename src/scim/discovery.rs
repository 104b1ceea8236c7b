//! `/ServiceProviderConfig`, `/ResourceTypes` and `/Schemas` (RFC 7643 §5–§7): they advertise
//! only what the server really does, and the User schema is rendered from the same table
//! that validates requests.

use serde_json::{Value, json};

use crate::domain::scim::group::GROUP_SCHEMA;
use crate::domain::scim::schema::{self, AttrDef};
use crate::domain::scim::{MFA_EXTENSION_SCHEMA, USER_SCHEMA};
use crate::service::users::MAX_PAGE_SIZE;

pub const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": format!("{base}/docs"),
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_PAGE_SIZE},
        "changePassword": {"supported": true},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "An access token from this server's token endpoint (client_credentials grant).",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig")
        }
    })
}

pub fn user_resource_type(base: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A person who signs in",
        "schema": USER_SCHEMA,
        "schemaExtensions": [{"schema": MFA_EXTENSION_SCHEMA, "required": false}],
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
    })
}

pub fn group_resource_type(base: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "Group",
        "name": "Group",
        "endpoint": "/Groups",
        "description": "A set of users; some groups grant administrator roles",
        "schema": GROUP_SCHEMA,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")}
    })
}

/// A resource type by its id, if this server serves it.
pub fn resource_type(base: &str, id: &str) -> Option<Value> {
    match id {
        "User" => Some(user_resource_type(base)),
        "Group" => Some(group_resource_type(base)),
        _ => None,
    }
}

pub fn resource_types(base: &str) -> Value {
    list(vec![user_resource_type(base), group_resource_type(base)])
}

fn attribute(def: &AttrDef) -> Value {
    let mut value = json!({
        "name": def.name,
        "type": def.ty.as_str(),
        "multiValued": def.multi_valued,
        "description": def.description,
        "required": def.required,
        "caseExact": def.case_exact,
        "mutability": def.mutability.as_str(),
        "returned": def.returned,
        "uniqueness": def.uniqueness,
    });
    if !def.canonical_values.is_empty() {
        value["canonicalValues"] = json!(def.canonical_values);
    }
    if def.ty == schema::AttrType::Reference {
        value["referenceTypes"] = json!(def.reference_types);
    }
    if !def.sub_attributes.is_empty() {
        value["subAttributes"] = Value::Array(def.sub_attributes.iter().map(attribute).collect());
    }
    value
}

pub fn user_schema(base: &str) -> Value {
    let mut attributes = vec![attribute(&schema::EXTERNAL_ID)];
    attributes.extend(schema::USER_ATTRIBUTES.iter().map(attribute));
    attributes.push(attribute(&schema::USER_GROUPS));
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "User account",
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{USER_SCHEMA}")}
    })
}

/// The 2-step verification extension of User, from the same table that validates it.
pub fn mfa_extension_schema(base: &str) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": MFA_EXTENSION_SCHEMA,
        "name": "TwoStepVerification",
        "description": "2-step verification of the user",
        "attributes": schema::MFA_EXTENSION.sub_attributes.iter().map(attribute).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{MFA_EXTENSION_SCHEMA}")}
    })
}

pub fn list(resources: Vec<Value>) -> Value {
    let total = resources.len() as u64;
    serde_json::to_value(super::payload::list_response(resources, total, 1)).unwrap_or_default()
}

pub fn group_schema(base: &str) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": GROUP_SCHEMA,
        "name": "Group",
        "description": "Group",
        "attributes": schema::GROUP_ATTRIBUTES.iter().map(attribute).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{GROUP_SCHEMA}")}
    })
}

/// A schema by its URN, if this server serves it.
pub fn schema(base: &str, id: &str) -> Option<Value> {
    match id {
        USER_SCHEMA => Some(user_schema(base)),
        MFA_EXTENSION_SCHEMA => Some(mfa_extension_schema(base)),
        GROUP_SCHEMA => Some(group_schema(base)),
        _ => None,
    }
}

pub fn schemas(base: &str) -> Value {
    list(vec![
        user_schema(base),
        group_schema(base),
        mfa_extension_schema(base),
    ])
}
