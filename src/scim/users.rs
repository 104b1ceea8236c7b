//! `/Users`: thin handlers over [`UserService`](crate::service::users::UserService).

use std::sync::{Arc, LazyLock};

use poem::http::{HeaderValue, header};
use poem::web::Data;
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::edge::ClientAddr;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::{ApiResponse, OpenApi};
use regex::Regex;
use serde_json::Value;

use super::ApiTags;
use super::auth::ScimBearer;
use super::error::ScimError;
use super::models::{PatchRequest, SearchRequest, UserListResponse, UserResource};
use super::payload::{ScimJson, list_response};
use crate::domain::ids::UserId;
use crate::domain::repo::GroupRef;
use crate::domain::scim::filter::AttrPath;
use crate::domain::scim::search::{ListQuery, SearchParams};
use crate::domain::scim::user::{self, User, parse_attribute_list, project};
use crate::domain::scim::{ScimType, ScimViolation};
use crate::domain::scope::{SCIM_USERS, USERS_READ};
use crate::state::AppState;

#[derive(ApiResponse)]
pub enum CreateUserResponse {
    /// The user was created; the body is the stored resource.
    #[oai(status = 201)]
    Created(
        ScimJson<UserResource>,
        #[oai(header = "Location")] String,
        #[oai(header = "ETag")] String,
    ),
}

#[derive(ApiResponse)]
pub enum UserResponse {
    /// The user.
    #[oai(status = 200)]
    Ok(ScimJson<UserResource>, #[oai(header = "ETag")] String),
}

#[derive(ApiResponse)]
pub enum ListUsersResponse {
    /// A page of matching users.
    #[oai(status = 200)]
    Ok(ScimJson<UserListResponse>),
}

#[derive(ApiResponse)]
pub enum DeleteUserResponse {
    /// The user was deleted.
    #[oai(status = 204)]
    Deleted,
}

/// What `If-Match` takes: one entity tag or `*`. An empty value is refused: read as "no
/// condition" it would make an update unconditional that its sender meant to be
/// conditional. The OpenAPI document declares this pattern and
/// [`refuse_malformed_if_match`] enforces it.
pub const IF_MATCH_PATTERN: &str = r#"^ *(?:\*|(?:W/)?"[\x21\x23-\x7E]*") *$"#;

fn well_formed_if_match(value: &HeaderValue) -> bool {
    static SYNTAX: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(IF_MATCH_PATTERN).expect("IF_MATCH_PATTERN compiles"));
    value.to_str().is_ok_and(|v| SYNTAX.is_match(v))
}

/// Refuses (400) a SCIM request whose `If-Match` is not [`IF_MATCH_PATTERN`] or comes more
/// than once, before any handler sees it: poem hands a handler a value that is not visible
/// ASCII as no header at all, which would make a malformed condition unconditional.
pub async fn refuse_malformed_if_match<E: Endpoint>(
    inner: Arc<E>,
    request: Request,
) -> poem::Result<Response> {
    let values: Vec<&HeaderValue> = request.headers().get_all(header::IF_MATCH).iter().collect();
    // Only the methods that take a condition are checked (another is answered 405 by the
    // router), and a request without credentials is answered 401 by the handler first.
    let conditional = matches!(
        *request.method(),
        poem::http::Method::PUT | poem::http::Method::PATCH | poem::http::Method::DELETE
    );
    let authenticated = request.headers().contains_key(header::AUTHORIZATION);
    let malformed = values.len() > 1 || values.iter().any(|v| !well_formed_if_match(v));
    if conditional && authenticated && malformed {
        let refusal = ScimError::from(ScimViolation::new(
            ScimType::InvalidValue,
            "If-Match must be one entity tag such as W/\"3\" (from the resource's ETag), or *",
        ));
        return Ok(refusal.into_response());
    }
    Ok(inner.call(request).await?.into_response())
}

/// The version a well-formed `If-Match` names; `None` for `*` or no header.
/// A tag that names no version of ours can never match (412, once the resource is found).
pub(super) fn expected_version(if_match: &Option<String>) -> Option<i64> {
    let header = if_match.as_deref().map(str::trim).unwrap_or_default();
    if header.is_empty() || header == "*" {
        return None;
    }
    let bare = header.trim_start_matches("W/").trim_matches('"');
    Some(bare.parse::<i64>().unwrap_or(NO_VERSION))
}

/// A version no resource has: versions start at 1.
const NO_VERSION: i64 = -1;

pub(super) fn attribute_lists(
    attributes: &Option<String>,
    excluded: &Option<String>,
) -> Result<(Vec<AttrPath>, Vec<AttrPath>), ScimError> {
    let parse = |list: &Option<String>| list.as_deref().map(parse_attribute_list).transpose();
    Ok((
        parse(attributes)?.unwrap_or_default(),
        parse(excluded)?.unwrap_or_default(),
    ))
}

pub struct UsersApi;

impl UsersApi {
    fn location(state: &AppState, id: &UserId) -> String {
        format!("{}/Users/{id}", state.scim_base())
    }

    /// The resource, with its read-only `groups` (omitted when there are none).
    pub(super) fn render(state: &AppState, user: &User, groups: Option<&Vec<GroupRef>>) -> Value {
        let (location, base) = (Self::location(state, &user.id), state.scim_base());
        user::UserResource {
            user,
            location: &location,
            groups: groups.map(|g| (g.as_slice(), base.as_str())),
        }
        .tree()
    }

    async fn search(
        state: &AppState,
        params: SearchParams,
    ) -> Result<ListUsersResponse, ScimError> {
        let page = state.users.list(&params).await?;
        let ids: Vec<UserId> = page.users.iter().map(|u| u.id.clone()).collect();
        // One query for the groups of the whole page.
        let groups = state.groups.of_users(&ids).await?;
        let body = if params.attributes.is_empty() && params.excluded_attributes.is_empty() {
            // The whole resources: written straight into the response, no tree per user.
            let base = state.scim_base();
            let locations: Vec<String> = page
                .users
                .iter()
                .map(|u| Self::location(state, &u.id))
                .collect();
            let resources = page
                .users
                .iter()
                .zip(&locations)
                .map(|(found, location)| user::UserResource {
                    user: found,
                    location,
                    groups: groups.get(&found.id).map(|g| (g.as_slice(), base.as_str())),
                })
                .collect();
            ScimJson::written(&list_response(resources, page.total, params.start_index))
        } else {
            let resources: Vec<Value> = page
                .users
                .iter()
                .map(|u| {
                    project(
                        Self::render(state, u, groups.get(&u.id)),
                        &params.attributes,
                        &params.excluded_attributes,
                    )
                })
                .collect();
            ScimJson::written(&list_response(resources, page.total, params.start_index))
        };
        Ok(ListUsersResponse::Ok(body))
    }

    async fn single(
        state: &AppState,
        user: &User,
        attributes: &[AttrPath],
        excluded: &[AttrPath],
    ) -> Result<UserResponse, ScimError> {
        let groups = state
            .groups
            .of_users(std::slice::from_ref(&user.id))
            .await?;
        let body = project(
            Self::render(state, user, groups.get(&user.id)),
            attributes,
            excluded,
        );
        Ok(UserResponse::Ok(ScimJson::new(body), user.etag()))
    }
}

#[OpenApi(prefix_path = "/scim/v2", tag = "ApiTags::Users")]
impl UsersApi {
    /// Create a user. `userName` must be unique (case-insensitively).
    #[oai(path = "/Users", method = "post", operation_id = "createUser")]
    async fn create(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        body: ScimJson<UserResource>,
    ) -> Result<CreateUserResponse, ScimError> {
        auth.require(SCIM_USERS)?;
        let write = user::parse_user(&body.value)?;
        let created = state.users.create(write, &auth.context(remote.0)).await?;
        let location = Self::location(state, &created.id);
        tracing::info!(user_id = %created.id, client_id = %auth.0.client_id, "user created");
        Ok(CreateUserResponse::Created(
            ScimJson::new(Self::render(state, &created, None)),
            location,
            created.etag(),
        ))
    }

    /// List users, optionally filtered (RFC 7644 §3.4.2.2), a page at a time.
    #[oai(path = "/Users", method = "get", operation_id = "listUsers")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        /// e.g. `userName eq "bjensen"`, `emails[type eq "work" and value co "@example.com"]`.
        filter: Query<Option<String>>,
        /// 1-based index of the first result.
        #[oai(name = "startIndex")]
        start_index: Query<Option<i64>>,
        /// Results per page, at most 200.
        count: Query<Option<i64>>,
        /// Comma-separated attributes to return.
        attributes: Query<Option<String>>,
        /// Comma-separated attributes to leave out.
        #[oai(name = "excludedAttributes")]
        excluded_attributes: Query<Option<String>>,
        /// The attribute to sort by (RFC 7644 §3.4.2.3): `userName`, `name.familyName`, `emails` (the primary address), `meta.lastModified`….
        #[oai(name = "sortBy")]
        sort_by: Query<Option<String>>,
        /// `ascending` (the default) or `descending`; resources without a value come last
        /// ascending and first descending.
        #[oai(name = "sortOrder")]
        sort_order: Query<Option<String>>,
    ) -> Result<ListUsersResponse, ScimError> {
        auth.require_any(&[SCIM_USERS, USERS_READ])?;
        let params = SearchParams::from_query(ListQuery {
            filter: filter.0,
            start_index: start_index.0,
            count: count.0,
            attributes: attributes.0.as_deref(),
            excluded_attributes: excluded_attributes.0.as_deref(),
            sort_by: sort_by.0.as_deref(),
            sort_order: sort_order.0.as_deref(),
        })?;
        Self::search(state, params).await
    }

    /// Search users with a SearchRequest body, keeping the filter out of URLs and logs.
    #[oai(path = "/Users/.search", method = "post", operation_id = "searchUsers")]
    async fn search_users(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        body: ScimJson<SearchRequest>,
    ) -> Result<ListUsersResponse, ScimError> {
        auth.require_any(&[SCIM_USERS, USERS_READ])?;
        Self::search(state, SearchParams::from_body(&body.value)?).await
    }

    /// Read a user.
    #[oai(path = "/Users/:id", method = "get", operation_id = "getUser")]
    async fn get(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        id: Path<String>,
        /// Comma-separated attributes to return.
        attributes: Query<Option<String>>,
        /// Comma-separated attributes to leave out.
        #[oai(name = "excludedAttributes")]
        excluded_attributes: Query<Option<String>>,
    ) -> Result<UserResponse, ScimError> {
        auth.require_any(&[SCIM_USERS, USERS_READ])?;
        let (attributes, excluded) = attribute_lists(&attributes.0, &excluded_attributes.0)?;
        let found = state.users.get(&UserId::new(id.0)).await?;
        Self::single(state, &found, &attributes, &excluded).await
    }

    /// Replace a user. Read-only attributes in the body are ignored; `If-Match` makes it conditional.
    #[oai(path = "/Users/:id", method = "put", operation_id = "replaceUser")]
    async fn replace(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: ScimJson<UserResource>,
    ) -> Result<UserResponse, ScimError> {
        auth.require(SCIM_USERS)?;
        let expected = expected_version(&if_match.0);
        let write = user::parse_user(&body.value)?;
        let updated = state
            .users
            .replace(&UserId::new(id.0), write, expected, &auth.context(remote.0))
            .await?;
        Self::single(state, &updated, &[], &[]).await
    }

    /// Modify a user with add / replace / remove operations (RFC 7644 §3.5.2).
    #[oai(path = "/Users/:id", method = "patch", operation_id = "patchUser")]
    async fn patch(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: ScimJson<PatchRequest>,
    ) -> Result<UserResponse, ScimError> {
        auth.require(SCIM_USERS)?;
        let expected = expected_version(&if_match.0);
        let updated = state
            .users
            .patch(
                &UserId::new(id.0),
                &body.value,
                expected,
                &auth.context(remote.0),
            )
            .await?;
        Self::single(state, &updated, &[], &[]).await
    }

    /// Delete a user.
    #[oai(path = "/Users/:id", method = "delete", operation_id = "deleteUser")]
    async fn delete(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
    ) -> Result<DeleteUserResponse, ScimError> {
        auth.require(SCIM_USERS)?;
        let expected = expected_version(&if_match.0);
        let user_id = UserId::new(id.0);
        let ctx = auth.context(remote.0);
        state.users.delete(&user_id, expected, &ctx).await?;
        tracing::info!(user_id = %user_id, client_id = %auth.0.client_id, "user deleted");
        Ok(DeleteUserResponse::Deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_forms() {
        assert_eq!(expected_version(&None), None);
        assert_eq!(expected_version(&Some("*".into())), None);
        assert_eq!(expected_version(&Some(" ".into())), None);
        assert_eq!(expected_version(&Some("W/\"7\"".into())), Some(7));
        assert_eq!(expected_version(&Some("\"7\"".into())), Some(7));
        assert_eq!(
            expected_version(&Some("W/\"abc\"".into())),
            Some(NO_VERSION)
        );
        for malformed in ["7", "W/7", "\"7", "W/\"7\", W/\"8\""] {
            assert!(
                !well_formed_if_match(&HeaderValue::from_static(malformed)),
                "{malformed:?}"
            );
        }
        let latin1 = HeaderValue::from_bytes(b"W/\"\xc2\x84\"").unwrap();
        assert!(!well_formed_if_match(&latin1));
        assert!(well_formed_if_match(&HeaderValue::from_static("W/\"3\"")));
        // Empty is refused: read as "no condition" it would drop the sender's condition.
        assert!(!well_formed_if_match(&HeaderValue::from_static("")));
        assert!(well_formed_if_match(&HeaderValue::from_static("*")));
    }
}
