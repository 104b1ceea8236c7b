//! `/Users/{id}/totp`: TOTP enrolment administered by the help desk (scope `mfa:manage`).

use std::sync::Arc;

use poem::web::Data;

use crate::edge::ClientAddr;
use poem_openapi::param::Path;
use poem_openapi::{ApiResponse, OpenApi};
use serde_json::{Value, json};

use super::ApiTags;
use super::auth::ScimBearer;
use super::bypass_codes::required_string;
use super::error::ScimError;
use super::models::{TotpConfirmation, TotpEnrollment, TotpState};
use super::payload::ScimJson;
use crate::domain::ids::UserId;
use crate::service::mfa::TotpStatus;
use crate::state::AppState;

pub const TOTP_SCHEMA: &str = "urn:bypass-idp:params:scim:schemas:core:2.0:Totp";

#[derive(ApiResponse)]
pub enum StartEnrollmentResponse {
    /// A pending factor; confirm it with a current code. The body holds the secret.
    #[oai(status = 201)]
    Created(
        ScimJson<TotpEnrollment>,
        #[oai(header = "Cache-Control")] String,
    ),
}

#[derive(ApiResponse)]
pub enum TotpStateResponse {
    /// The factor's state.
    #[oai(status = 200)]
    Ok(ScimJson<TotpState>),
}

#[derive(ApiResponse)]
pub enum ResetResponse {
    /// The TOTP factor is removed and every bypass code of the user revoked.
    #[oai(status = 204)]
    Reset,
}

fn state_body(status: TotpStatus) -> Value {
    json!({"schemas": [TOTP_SCHEMA], "status": status.as_str()})
}

pub struct MfaApi;

#[OpenApi(prefix_path = "/scim/v2", tag = "ApiTags::TwoStepVerification")]
impl MfaApi {
    /// Start (or restart) TOTP enrolment for an active user.
    #[oai(
        path = "/Users/:id/totp",
        method = "post",
        operation_id = "startTotpEnrollment"
    )]
    async fn start(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
    ) -> Result<StartEnrollmentResponse, ScimError> {
        let ctx = auth.acting(state, remote.0).await?;
        let enrollment = state.mfa.enrol_for(&UserId::new(id.0), &ctx).await?;
        Ok(StartEnrollmentResponse::Created(
            ScimJson::new(json!({
                "schemas": [TOTP_SCHEMA],
                "secret": enrollment.secret_base32.expose(),
                "otpauthUri": enrollment.otpauth_uri.expose(),
                "status": TotpStatus::Pending.as_str(),
            })),
            "no-store".into(),
        ))
    }

    /// Confirm a pending TOTP factor with a current code.
    #[oai(
        path = "/Users/:id/totp/confirmation",
        method = "post",
        operation_id = "confirmTotpEnrollment"
    )]
    async fn confirm(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
        body: ScimJson<TotpConfirmation>,
    ) -> Result<TotpStateResponse, ScimError> {
        let ctx = auth.acting(state, remote.0).await?;
        let code = required_string(
            &body.value,
            "code",
            "\"code\" is required: the current TOTP code",
        )?;
        state.mfa.confirm(&UserId::new(id.0), code, &ctx).await?;
        Ok(TotpStateResponse::Ok(ScimJson::new(state_body(
            TotpStatus::Enrolled,
        ))))
    }

    /// Whether the user has a TOTP factor (never the secret).
    #[oai(
        path = "/Users/:id/totp",
        method = "get",
        operation_id = "getTotpState"
    )]
    async fn get(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
    ) -> Result<TotpStateResponse, ScimError> {
        let ctx = auth.acting(state, remote.0).await?;
        let user_id = UserId::new(id.0);
        let status = state.mfa.status_for(&user_id, &ctx).await?;
        state.users.get(&user_id).await?;
        Ok(TotpStateResponse::Ok(ScimJson::new(state_body(status))))
    }

    /// Reset 2-step verification: remove the TOTP factor and revoke every bypass code.
    #[oai(
        path = "/Users/:id/totp",
        method = "delete",
        operation_id = "resetTotp"
    )]
    async fn reset(
        &self,
        auth: ScimBearer,
        Data(state): Data<&Arc<AppState>>,
        remote: Data<&ClientAddr>,
        id: Path<String>,
    ) -> Result<ResetResponse, ScimError> {
        let ctx = auth.acting(state, remote.0).await?;
        state.mfa.reset(&UserId::new(id.0), &ctx).await?;
        Ok(ResetResponse::Reset)
    }
}
