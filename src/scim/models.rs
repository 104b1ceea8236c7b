//! Types that document SCIM bodies in the OpenAPI document. Requests are validated by the
//! domain model, so these only describe the shape; they are never deserialised. Limits
//! (lengths, counts, ranges) are not written here: [`crate::openapi`] copies them from the
//! domain constants that enforce them.

use poem_openapi::Object;
use serde_json::Value;

/// An RFC 7644 §3.12 error.
#[derive(Object)]
#[oai(rename = "ScimError")]
pub struct ScimErrorBody {
    /// Always `["urn:ietf:params:scim:api:messages:2.0:Error"]`.
    pub schemas: Vec<String>,
    /// The HTTP status code, as a string.
    pub status: String,
    /// The SCIM error type, e.g. `invalidFilter`, `uniqueness`, `invalidValue`.
    #[oai(rename = "scimType")]
    pub scim_type: Option<String>,
    /// What went wrong, for a person to act on.
    pub detail: String,
}

/// Components of a user's name.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct UserName {
    pub formatted: Option<String>,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub honorific_prefix: Option<String>,
    pub honorific_suffix: Option<String>,
}

/// An email address of a user.
#[derive(Object)]
pub struct UserEmail {
    pub value: String,
    /// `work`, `home` or `other`.
    #[oai(rename = "type")]
    pub kind: Option<String>,
    /// At most one address is primary.
    pub primary: Option<bool>,
    pub display: Option<String>,
}

/// Resource metadata (RFC 7643 §3.1).
#[derive(Object, Default)]
#[oai(rename_all = "camelCase")]
pub struct Meta {
    pub resource_type: String,
    pub created: Option<String>,
    pub last_modified: Option<String>,
    pub location: String,
    /// The ETag, e.g. `W/"3"` (Users and Groups).
    pub version: Option<String>,
}

/// A SCIM User (RFC 7643 §4.1). Attribute names are matched case-insensitively. `id` and
/// `schemas` are always returned; the rest only when `attributes` / `excludedAttributes` let
/// them. Requests use `UserRequest`: this schema without its read-only attributes.
#[derive(Object)]
#[oai(rename = "User", rename_all = "camelCase")]
pub struct UserResource {
    /// Must contain `urn:ietf:params:scim:schemas:core:2.0:User`.
    pub schemas: Vec<String>,
    #[oai(read_only)]
    pub id: String,
    pub external_id: Option<String>,
    /// Unique case-insensitively. Required in requests.
    pub user_name: Option<String>,
    pub name: Option<UserName>,
    pub display_name: Option<String>,
    pub nick_name: Option<String>,
    pub profile_url: Option<String>,
    pub title: Option<String>,
    pub user_type: Option<String>,
    pub preferred_language: Option<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    /// Defaults to true.
    pub active: Option<bool>,
    /// Write-only; at least 8 characters; stored as an Argon2id hash.
    #[oai(write_only)]
    pub password: Option<String>,
    pub emails: Option<Vec<UserEmail>>,
    /// The groups the user belongs to; change membership through `/Groups`.
    #[oai(read_only)]
    pub groups: Option<Vec<UserGroup>>,
    #[oai(read_only)]
    pub meta: Option<Meta>,
}

/// A group a user belongs to (read-only on the user).
#[derive(Object)]
pub struct UserGroup {
    /// The group's id.
    pub value: String,
    #[oai(rename = "$ref")]
    pub reference: String,
    /// The group's displayName.
    pub display: String,
}

/// A member of a group: a user.
#[derive(Object)]
pub struct GroupMember {
    /// The user's id.
    pub value: String,
    #[oai(rename = "$ref", read_only)]
    pub reference: Option<String>,
    /// Always `User`.
    #[oai(rename = "type", read_only)]
    pub kind: Option<String>,
}

/// A SCIM Group (RFC 7643 §4.2). Attribute names are matched case-insensitively. `id` and
/// `schemas` are always returned; the rest only when `attributes` / `excludedAttributes` let
/// them. Requests use `GroupRequest`: this schema without its read-only attributes.
#[derive(Object)]
#[oai(rename = "Group", rename_all = "camelCase")]
pub struct GroupResource {
    /// Must contain `urn:ietf:params:scim:schemas:core:2.0:Group`.
    pub schemas: Vec<String>,
    #[oai(read_only)]
    pub id: String,
    /// Unique case-insensitively. Required in requests.
    pub display_name: Option<String>,
    pub external_id: Option<String>,
    pub members: Option<Vec<GroupMember>>,
    #[oai(read_only)]
    pub meta: Option<Meta>,
}

/// A page of groups (RFC 7644 §3.4.2).
#[derive(Object)]
#[oai(rename = "GroupListResponse")]
pub struct GroupListResponse {
    pub schemas: Vec<String>,
    #[oai(rename = "totalResults")]
    pub total_results: u64,
    #[oai(rename = "startIndex")]
    pub start_index: u64,
    #[oai(rename = "itemsPerPage")]
    pub items_per_page: u64,
    #[oai(rename = "Resources")]
    pub resources: Vec<GroupResource>,
}

/// A page of users (RFC 7644 §3.4.2).
#[derive(Object)]
#[oai(rename = "UserListResponse")]
pub struct UserListResponse {
    pub schemas: Vec<String>,
    #[oai(rename = "totalResults")]
    pub total_results: u64,
    #[oai(rename = "startIndex")]
    pub start_index: u64,
    #[oai(rename = "itemsPerPage")]
    pub items_per_page: u64,
    #[oai(rename = "Resources")]
    pub resources: Vec<UserResource>,
}

/// One PATCH operation (RFC 7644 §3.5.2).
#[derive(Object)]
pub struct PatchOperation {
    /// `add`, `replace` or `remove` (any case).
    pub op: String,
    /// e.g. `name.givenName`, `emails[type eq "work"].value`; required for `remove`.
    pub path: Option<String>,
    pub value: Option<Value>,
}

/// A PATCH request.
#[derive(Object)]
pub struct PatchRequest {
    /// Must be `["urn:ietf:params:scim:api:messages:2.0:PatchOp"]`.
    pub schemas: Vec<String>,
    #[oai(rename = "Operations")]
    pub operations: Vec<PatchOperation>,
}

/// A query sent in a body (RFC 7644 §3.4.3).
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct SearchRequest {
    /// Must be `["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]`.
    pub schemas: Vec<String>,
    pub filter: Option<String>,
    pub attributes: Option<Vec<String>>,
    pub excluded_attributes: Option<Vec<String>>,
    /// 1-based; below 1 means 1.
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    /// The attribute to sort by, e.g. `name.familyName`.
    pub sort_by: Option<String>,
    /// `ascending` (the default) or `descending`.
    pub sort_order: Option<String>,
}

/// A discovery document (`ServiceProviderConfig`, a list of `ResourceType`s or `Schema`s),
/// as RFC 7643 §5–§7 define them.
#[derive(Object)]
pub struct DiscoveryDocument {
    pub schemas: Vec<String>,
}

/// The outcome of emailing a code.
#[derive(Object)]
pub struct BypassCodeNotification {
    /// Always `email`.
    pub channel: String,
    /// `sent` or `failed`.
    pub status: String,
    /// The address, or why sending failed.
    #[oai(nullable)]
    pub detail: Option<String>,
    pub at: String,
}

/// A bypass code. `code` appears only in the response that created it.
#[derive(Object)]
#[oai(rename = "BypassCode", rename_all = "camelCase")]
pub struct BypassCodeResource {
    pub schemas: Vec<String>,
    pub id: String,
    /// The code, grouped by four digits (`1234-5678-9012`). Only in the create response.
    pub code: Option<String>,
    /// `active`, `scheduled` (approved, but `startsAt` is still ahead), `pendingApproval`
    /// (waiting for a second person; no code exists yet), `expired` (a request not approved
    /// within 24 hours too), `exhausted` or `revoked` (a rejected or withdrawn request too).
    pub status: String,
    /// `null`: never expires.
    #[oai(nullable)]
    pub expires_at: Option<String>,
    /// `null`: unlimited.
    #[oai(nullable)]
    pub max_usage_count: Option<i64>,
    pub actual_usage_count: i64,
    /// `null`: unlimited.
    #[oai(nullable)]
    pub remaining_usage_count: Option<i64>,
    /// `helpDesk`, `selfService` or `savedSet` (one of a printable set).
    pub origin: String,
    /// Why the code was given, as the requester wrote it.
    #[oai(nullable)]
    pub reason: Option<String>,
    /// When the code starts to work (`null`: when it was made).
    #[oai(nullable)]
    pub starts_at: Option<String>,
    /// For a code that needed a second person: `pending`, `approved`, `rejected` or
    /// `withdrawn`; `null` when none was needed.
    #[oai(nullable)]
    pub approval: Option<String>,
    /// Who approved, rejected or withdrew the request.
    #[oai(nullable)]
    pub decided_by: Option<String>,
    #[oai(nullable)]
    pub decided_at: Option<String>,
    /// The lifetime asked for, in minutes from when the code starts to work (`null`: never
    /// expires). For a request waiting for approval, `expiresAt` is when the request lapses,
    /// and the code's expiry will count this lifetime from the approval.
    #[oai(nullable)]
    pub lifetime_minutes: Option<i64>,
    /// For a code that needed approval: the address the approved code is emailed to, fixed
    /// at the request (an approval refuses to send it anywhere else).
    #[oai(nullable)]
    pub send_to: Option<String>,
    /// `signIn`: the second step of a sign-in (after which the user may replace their
    /// authenticator). `enrolment`: only to set up an authenticator after a reset.
    pub purpose: String,
    /// `client:<id>` or `user:<id>`.
    pub created_by: String,
    #[oai(nullable)]
    pub last_used_at: Option<String>,
    #[oai(nullable)]
    pub revoked_at: Option<String>,
    pub notifications: Vec<BypassCodeNotification>,
    pub meta: Meta,
}

/// Days, hours and minutes from now; they add up.
#[derive(Object)]
pub struct ExpiresIn {
    pub days: Option<i64>,
    pub hours: Option<i64>,
    pub minutes: Option<i64>,
}

/// What to generate: give `expiresIn` or `neverExpires`; `maxUsageCount` or
/// `unlimitedUsage` (neither: usable once). Limits come from `BypassCodeSettings`.
#[derive(Object)]
#[oai(rename = "BypassCodeRequest", rename_all = "camelCase")]
pub struct BypassCodeRequest {
    pub expires_in: Option<ExpiresIn>,
    pub never_expires: Option<bool>,
    pub max_usage_count: Option<i64>,
    pub unlimited_usage: Option<bool>,
    /// `["email"]` emails the code to the user's primary address.
    pub notify: Option<Vec<String>>,
    /// `signIn` (default): the second step of a sign-in, for a user with an authenticator
    /// (it then lets them set up a new one) or one whose 2-step verification was reset.
    /// `enrolment`: only to set up an authenticator, for a user whose 2-step verification
    /// was reset (or an administrator's first); help desk only.
    pub purpose: Option<String>,
    /// Why the code is given (a ticket number, a sentence): 1 to 500 characters, one line.
    /// Required when the policy says `reasonRequired`. Shown in lists, the audit trail and
    /// the user's email.
    pub reason: Option<String>,
    /// When the code starts to work (RFC 3339), from now to `maxStartDelayDays` ahead; until
    /// then its status is `scheduled`. Its expiry counts from this time.
    pub starts_at: Option<String>,
}

/// A printable set to make for yourself; `size` defaults to the policy's
/// `selfServiceSetSize`, and may not exceed it.
#[derive(Object)]
#[oai(rename = "BypassCodeSetRequest", rename_all = "camelCase")]
pub struct BypassCodeSetRequest {
    pub schemas: Option<Vec<String>>,
    pub size: Option<i64>,
}

/// A new printable set: its codes, shown in this answer only. The previous set no longer
/// works.
#[derive(Object)]
#[oai(rename = "BypassCodeSet", rename_all = "camelCase")]
pub struct BypassCodeSet {
    pub schemas: Vec<String>,
    /// The codes, grouped by four digits; each works once.
    pub codes: Vec<String>,
    /// The stored codes (never their plaintext), in the same order.
    #[oai(rename = "Resources")]
    pub resources: Vec<BypassCodeResource>,
}

/// A page of bypass codes.
#[derive(Object)]
pub struct BypassCodeList {
    pub schemas: Vec<String>,
    #[oai(rename = "totalResults")]
    pub total_results: u64,
    #[oai(rename = "Resources")]
    pub resources: Vec<BypassCodeResource>,
}

/// The code to email again; the server checks that it is this code and keeps nothing.
#[derive(Object)]
pub struct NotifyRequest {
    pub code: String,
}

/// One audit event.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AuditEvent {
    /// generated, emailed, email_failed, used, failed, revoked.
    pub event: String,
    pub at: String,
    /// `client:<id>`, `user:<id>` or `system`.
    pub actor: String,
    #[oai(nullable)]
    pub client_id: Option<String>,
    #[oai(nullable)]
    pub ip: Option<String>,
    #[oai(nullable)]
    pub detail: Option<String>,
}

/// One event of the audit log.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AuditLogEvent {
    pub schemas: Vec<String>,
    /// generated, emailed, email_failed, email_refused, used, failed, revoked, mfa_reset,
    /// policy_changed, password_set, deactivated, user_deleted, role_group_changed, …
    pub event: String,
    pub at: String,
    /// `client:<id>`, `user:<id>`, `system` or `anonymous`.
    pub actor: String,
    /// The user the event is about; `null` for events about the service.
    #[oai(nullable)]
    pub user_id: Option<String>,
    #[oai(nullable)]
    pub code_id: Option<String>,
    #[oai(nullable)]
    pub client_id: Option<String>,
    #[oai(nullable)]
    pub ip: Option<String>,
    #[oai(nullable)]
    pub detail: Option<String>,
}

/// A page of the audit log, newest first.
#[derive(Object)]
pub struct AuditLogPage {
    pub schemas: Vec<String>,
    #[oai(rename = "totalResults")]
    pub total_results: u64,
    #[oai(rename = "startIndex")]
    pub start_index: u64,
    #[oai(rename = "itemsPerPage")]
    pub items_per_page: u64,
    #[oai(rename = "Resources")]
    pub resources: Vec<AuditLogEvent>,
}

/// A bypass code's audit trail, oldest first.
#[derive(Object)]
pub struct AuditEventList {
    pub schemas: Vec<String>,
    #[oai(rename = "totalResults")]
    pub total_results: u64,
    #[oai(rename = "Resources")]
    pub resources: Vec<AuditEvent>,
}

/// The bypass-code policy. An absent member takes its default; `null` is refused (400
/// naming the member). A limit is lifted only explicitly, by its `…Unlimited: true` switch
/// (then leave the number out): unlimited usage, or codes that never expire, are allowed.
#[derive(Object)]
#[oai(rename = "BypassCodeSettings", rename_all = "camelCase")]
pub struct BypassCodeSettingsResource {
    /// Always in responses; ignored in requests.
    pub schemas: Option<Vec<String>>,
    /// Digits per code (default 12).
    pub code_length: Option<i64>,
    /// Active codes a user may hold (default 5).
    pub max_active: Option<i64>,
    pub help_desk_generation_enabled: Option<bool>,
    /// Most uses of a help-desk code (absent in a response when lifted).
    pub help_desk_max_usage: Option<i64>,
    /// `true`: no limit on uses (unlimited codes allowed); give no `helpDeskMaxUsage` then.
    pub help_desk_max_usage_unlimited: Option<bool>,
    /// Longest expiry of a help-desk code, in minutes (absent in a response when lifted).
    pub help_desk_max_expiry_minutes: Option<i64>,
    /// `true`: no limit on expiry (codes that never expire allowed).
    pub help_desk_max_expiry_minutes_unlimited: Option<bool>,
    pub self_service_generation_enabled: Option<bool>,
    /// Most uses of a self-service code (absent in a response when lifted).
    pub self_service_max_usage: Option<i64>,
    /// `true`: no limit on uses.
    pub self_service_max_usage_unlimited: Option<bool>,
    /// Longest expiry of a self-service code, in minutes (absent in a response when lifted).
    pub self_service_max_expiry_minutes: Option<i64>,
    /// `true`: no limit on expiry.
    pub self_service_max_expiry_minutes_unlimited: Option<bool>,
    /// How long a sign-in session opened with a bypass code gives single sign-on to other
    /// applications, in minutes (default 60; 0: every application asks again).
    pub bypass_session_max_minutes: Option<i64>,
    /// After a sign-in with a bypass code: `offered` (default) shows "Set up a new
    /// authenticator app" and "Not now"; `required` only the set-up; `off` neither.
    pub authenticator_replacement: Option<String>,
    /// After an administrator resets 2-step verification (and for an administrator's first
    /// authenticator), setting one up takes a bypass code, not a password alone (default true).
    pub reenrolment_requires_code: Option<bool>,
    /// Every bypass code needs a `reason` (default false).
    pub reason_required: Option<bool>,
    /// How many days ahead `startsAt` may be (default 30; 0: no scheduled codes).
    pub max_start_delay_days: Option<i64>,
    /// Which help-desk codes wait for a second person with `bypass_codes:approve`:
    /// `never`, `unbounded` (default: never expires, unlimited uses, or for a holder of an
    /// administrator role) or `always`.
    pub approval_required: Option<String>,
    /// Email the user when a code is generated for them, never the code itself (default
    /// true).
    pub notify_user_on_issue: Option<bool>,
    /// Email the user each time a code is typed to sign them in (default true).
    pub notify_user_on_use: Option<bool>,
    /// Codes in a printable self-service set (default 10).
    pub self_service_set_size: Option<i64>,
}

/// A TOTP factor waiting for confirmation. Show `otpauthUri` as a QR code.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TotpEnrollment {
    pub schemas: Vec<String>,
    /// Base32 secret, for typing into an authenticator by hand.
    pub secret: String,
    pub otpauth_uri: String,
    /// `pending` until confirmed.
    pub status: String,
}

/// A current code from the authenticator.
#[derive(Object)]
pub struct TotpConfirmation {
    pub code: String,
}

/// Whether a user has a TOTP factor.
#[derive(Object)]
pub struct TotpState {
    pub schemas: Vec<String>,
    /// `none`, `pending` or `enrolled`.
    pub status: String,
}

/// A page of resources of any type (RFC 7644 §3.4.3): Users first, then Groups.
#[derive(Object)]
#[oai(rename = "ResourceListResponse")]
pub struct ResourceListResponse {
    pub schemas: Vec<String>,
    #[oai(rename = "totalResults")]
    pub total_results: u64,
    #[oai(rename = "startIndex")]
    pub start_index: u64,
    #[oai(rename = "itemsPerPage")]
    pub items_per_page: u64,
    /// Users and Groups, told apart by `schemas` and `meta.resourceType`.
    #[oai(rename = "Resources")]
    pub resources: Vec<Value>,
}
