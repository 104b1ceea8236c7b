//! `/Groups`: thin handlers over [`GroupService`](crate::service::groups::GroupService).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::{ApiResponse, OpenApi};
use serde_json::Value;

use super::ApiTags;
use super::auth::ScimBearer;
use super::error::ScimError;
use super::models::{GroupListResponse, GroupResource, PatchRequest, SearchRequest};
use super::payload::{ScimJson, list_response};
use super::users::{attribute_lists, expected_version};
use crate::domain::ids::GroupId;
use crate::domain::scim::filter::AttrPath;
use crate::domain::scim::group::{Group, parse_group, parse_patch};
use crate::domain::scim::search::{ListQuery, SearchParams};
use crate::domain::scim::user::project;
use crate::domain::scope::{SCIM_GROUPS, USERS_READ};
use crate::edge::ClientAddr;
use crate::state::AppState;

#[derive(ApiResponse)]
pub enum CreateGroupResponse {
    /// The group was created; the body is the stored resource.
    #[oai(status = 201)]
    Created(
        ScimJson<GroupResource>,
        #[oai(header = "Location")] String,
        #[oai(header = "ETag")] String,
    ),
}

#[derive(ApiResponse)]
pub enum GroupResponse {
    /// The group.
    #[oai(status = 200)]
    Ok(ScimJson<GroupResource>, #[oai(header = "ETag")] String),
}

#[derive(ApiResponse)]
pub enum PatchGroupResponse {
    /// The changes were applied (RFC 7644 §3.5.2 allows 204): members are not read back, so
    /// a large group is patched in constant time. GET the group to see it.
    #[oai(status = 204)]
    Patched(#[oai(header = "ETag")] String),
}

#[derive(ApiResponse)]
pub enum ListGroupsResponse {
    /// A page of matching groups.
    #[oai(status = 200)]
    Ok(ScimJson<GroupListResponse>),
}

#[derive(ApiResponse)]
pub enum DeleteGroupResponse {
    /// The group was deleted; its members remain users.
    #[oai(status = 204)]
    Deleted,
}

/// Whether the response will show `members`: reading them is skipped when it will not.
fn shows_members(attributes: &[AttrPath], excluded: &[AttrPath]) -> bool {
    let is_members = |p: &AttrPath| p.attr.eq_ignore_ascii_case("members");
    if !attributes.is_empty() {
        return attributes.iter().any(is_members);
    }
    !excluded.iter().any(is_members)
}

/// Reading groups: provisioning clients (`scim:groups`) and the help desk (`users:read`).
fn require_read(auth: &ScimBearer) -> Result<(), ScimError> {
    auth.require_any(&[SCIM_GROUPS, USERS_READ]).map(|_| ())
}

pub struct GroupsApi;

impl GroupsApi {
    fn render(
        state: &AppState,
        group: &Group,
        attributes: &[AttrPath],
        excluded: &[AttrPath],
    ) -> Value {
        project(group.to_scim(&state.scim_base()), attributes, excluded)
    }

    async fn search(
        state: &AppState,
        params: SearchParams,
    ) -> Result<ListGroupsResponse, ScimError> {
        let with_members = shows_members(&params.attributes, &params.excluded_attributes);
        let page = state.groups.list(&params, with_members).await?;
        let resources: Vec<Value> = page
            .groups
            .iter()
            .map(|g| Self::render(state, g, &params.attributes, &params.excluded_attributes))
            .collect();
        Ok(ListGroupsResponse::Ok(ScimJson::written(&list_response(
            resources,
            page.total,
            params.start_index,
        ))))
    }
}

#[OpenApi(prefix_path = "/scim/v2", tag = "ApiTags::Groups")]
impl GroupsApi {
    /// Create a group; `displayName` must be unique (case-insensitively) and members must be
    /// users of this server.
    #[oai(path = "/Groups", method = "post", operation_id = "createGroup")]
    async fn create(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        body: ScimJson<GroupResource>,
    ) -> Result<CreateGroupResponse, ScimError> {
        auth.require(SCIM_GROUPS)?;
        let created = state
            .groups
            .create(parse_group(&body.value)?, &auth.context(remote.0))
            .await?;
        let location = format!("{}/Groups/{}", state.scim_base(), created.id);
        tracing::info!(group_id = %created.id, client_id = %auth.0.client_id, "group created");
        Ok(CreateGroupResponse::Created(
            ScimJson::new(Self::render(state, &created, &[], &[])),
            location,
            created.etag(),
        ))
    }

    /// List groups, optionally filtered (`displayName eq`, `externalId eq`,
    /// `members[value eq "…"]`), a page at a time.
    #[oai(path = "/Groups", method = "get", operation_id = "listGroups")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        /// e.g. `displayName eq "Help desk administrators"`, `members[value eq "<user id>"]`.
        filter: Query<Option<String>>,
        /// 1-based index of the first result.
        #[oai(name = "startIndex")]
        start_index: Query<Option<i64>>,
        /// Results per page, at most 200.
        count: Query<Option<i64>>,
        /// Comma-separated attributes to return.
        attributes: Query<Option<String>>,
        /// Comma-separated attributes to leave out (`members` makes large groups cheap).
        #[oai(name = "excludedAttributes")]
        excluded_attributes: Query<Option<String>>,
        /// The attribute to sort by (RFC 7644 §3.4.2.3): `displayName`, `externalId`, `id`, `meta.created` or `meta.lastModified`.
        #[oai(name = "sortBy")]
        sort_by: Query<Option<String>>,
        /// `ascending` (the default) or `descending`; resources without a value come last
        /// ascending and first descending.
        #[oai(name = "sortOrder")]
        sort_order: Query<Option<String>>,
    ) -> Result<ListGroupsResponse, ScimError> {
        require_read(&auth)?;
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

    /// Search groups with a SearchRequest body.
    #[oai(
        path = "/Groups/.search",
        method = "post",
        operation_id = "searchGroups"
    )]
    async fn search_groups(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        body: ScimJson<SearchRequest>,
    ) -> Result<ListGroupsResponse, ScimError> {
        require_read(&auth)?;
        Self::search(state, SearchParams::from_body(&body.value)?).await
    }

    /// Read a group.
    #[oai(path = "/Groups/:id", method = "get", operation_id = "getGroup")]
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
    ) -> Result<GroupResponse, ScimError> {
        require_read(&auth)?;
        let (attributes, excluded) = attribute_lists(&attributes.0, &excluded_attributes.0)?;
        let group = state
            .groups
            .get(&GroupId::new(id.0), shows_members(&attributes, &excluded))
            .await?;
        let body = Self::render(state, &group, &attributes, &excluded);
        Ok(GroupResponse::Ok(ScimJson::new(body), group.etag()))
    }

    /// Replace a group, members included. `If-Match` makes it conditional.
    #[oai(path = "/Groups/:id", method = "put", operation_id = "replaceGroup")]
    async fn replace(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: ScimJson<GroupResource>,
    ) -> Result<GroupResponse, ScimError> {
        auth.require(SCIM_GROUPS)?;
        let expected = expected_version(&if_match.0);
        let write = parse_group(&body.value)?;
        let group = state
            .groups
            .replace(
                &GroupId::new(id.0),
                write,
                expected,
                &auth.context(remote.0),
            )
            .await?;
        let body = Self::render(state, &group, &[], &[]);
        Ok(GroupResponse::Ok(ScimJson::new(body), group.etag()))
    }

    /// Change a group with add / replace / remove operations (RFC 7644 §3.5.2), in the shapes
    /// Entra ID and Okta send: `add`/`remove` on `members` with value arrays,
    /// `members[value eq "id"]`, a `replace` of the member list or of `displayName`. Adding a
    /// member twice or removing an absent one is not an error.
    #[oai(path = "/Groups/:id", method = "patch", operation_id = "patchGroup")]
    async fn patch(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: ScimJson<PatchRequest>,
    ) -> Result<PatchGroupResponse, ScimError> {
        auth.require(SCIM_GROUPS)?;
        let expected = expected_version(&if_match.0);
        let changes = parse_patch(&body.value)?;
        let group = state
            .groups
            .patch(
                &GroupId::new(id.0),
                &changes,
                expected,
                &auth.context(remote.0),
            )
            .await?;
        Ok(PatchGroupResponse::Patched(group.etag()))
    }

    /// Delete a group. Its members remain users.
    #[oai(path = "/Groups/:id", method = "delete", operation_id = "deleteGroup")]
    async fn delete(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
    ) -> Result<DeleteGroupResponse, ScimError> {
        auth.require(SCIM_GROUPS)?;
        let expected = expected_version(&if_match.0);
        let id = GroupId::new(id.0);
        state
            .groups
            .delete(&id, expected, &auth.context(remote.0))
            .await?;
        tracing::info!(group_id = %id, client_id = %auth.0.client_id, "group deleted");
        Ok(DeleteGroupResponse::Deleted)
    }
}
