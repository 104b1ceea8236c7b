//! `POST /.search`: one filter over every resource type the caller may read (RFC 7644
//! §3.4.3), Users first, then Groups, paged as one list.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{ApiResponse, OpenApi};
use serde_json::Value;

use super::ApiTags;
use super::auth::ScimBearer;
use super::error::ScimError;
use super::models::{ResourceListResponse, SearchRequest};
use super::payload::{ScimJson, list_response};
use super::users::UsersApi;
use crate::domain::ids::UserId;
use crate::domain::scim::filter::parse_filter;
use crate::domain::scim::search::SearchParams;
use crate::domain::scim::user::project;
use crate::domain::scim::{ScimType, ScimViolation};
use crate::domain::scope::{SCIM_GROUPS, SCIM_USERS, USERS_READ};
use crate::service::ServiceError;
use crate::state::AppState;

#[derive(ApiResponse)]
pub enum SearchAllResponse {
    /// A page of matching Users and Groups.
    #[oai(status = 200)]
    Ok(ScimJson<ResourceListResponse>),
}

/// A filter naming attributes one type lacks matches nothing of that type (not an error).
fn none_of_this_type<T>(result: Result<T, ServiceError>) -> Result<Option<T>, ServiceError> {
    match result {
        Ok(page) => Ok(Some(page)),
        Err(ServiceError::Invalid(ScimViolation {
            scim_type: ScimType::InvalidFilter,
            ..
        })) => Ok(None),
        Err(other) => Err(other),
    }
}

pub struct SearchAllApi;

#[OpenApi(prefix_path = "/scim/v2", tag = "ApiTags::Discovery")]
impl SearchAllApi {
    /// Search Users and Groups with one SearchRequest (the types the token may read).
    #[oai(path = "/.search", method = "post", operation_id = "searchAll")]
    async fn search_all(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        body: ScimJson<SearchRequest>,
    ) -> Result<SearchAllResponse, ScimError> {
        let users = auth.require_any(&[SCIM_USERS, USERS_READ]).is_ok();
        let groups = auth.require_any(&[SCIM_GROUPS, USERS_READ]).is_ok();
        if !users && !groups {
            auth.require_any(&[SCIM_USERS, SCIM_GROUPS, USERS_READ])?;
        }
        let params = SearchParams::from_body(&body.value)?;
        if let Some(filter) = params.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            // A malformed filter is the caller's error whatever the types.
            parse_filter(filter)?;
        }
        let (mut resources, mut total, mut user_error) = (Vec::<Value>::new(), 0u64, None);
        if users {
            match none_of_this_type(state.users.list(&params).await) {
                Ok(Some(page)) => {
                    total += page.total;
                    let ids: Vec<UserId> = page.users.iter().map(|u| u.id.clone()).collect();
                    let memberships = state.groups.of_users(&ids).await?;
                    resources.extend(page.users.iter().map(|u| {
                        project(
                            UsersApi::render(state, u, memberships.get(&u.id)),
                            &params.attributes,
                            &params.excluded_attributes,
                        )
                    }));
                }
                Ok(None) => user_error = Some(()),
                Err(e) => return Err(e.into()),
            }
        }
        if groups {
            // The groups' part of the page starts where the users' ended.
            let mut group_params = params.clone();
            group_params.start_index = params.start_index.saturating_sub(total).max(1);
            group_params.count = params.count.saturating_sub(resources.len() as u64);
            let with_members = !params
                .excluded_attributes
                .iter()
                .any(|p| p.attr.eq_ignore_ascii_case("members"));
            match none_of_this_type(state.groups.list(&group_params, with_members).await) {
                Ok(Some(page)) => {
                    total += page.total;
                    let base = state.scim_base();
                    resources.extend(page.groups.iter().map(|g| {
                        project(
                            g.to_scim(&base),
                            &params.attributes,
                            &params.excluded_attributes,
                        )
                    }));
                }
                Ok(None) if user_error.is_some() || !users => {
                    // No type knows the filter's attributes: say so once.
                    state.groups.list(&group_params, false).await?;
                }
                Ok(None) => {}
                Err(e) => return Err(e.into()),
            }
        } else if user_error.is_some() {
            state.users.list(&params).await?;
        }
        Ok(SearchAllResponse::Ok(ScimJson::written(&list_response(
            resources,
            total,
            params.start_index,
        ))))
    }
}
