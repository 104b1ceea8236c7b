//! Single sign-on sessions: found by the digest of their cookie, ended by sign-out or by what
//! ends a user's sign-ins, and queued for Back-Channel Logout when they end.

use chrono::{DateTime, Duration, Utc};
use entity::{grant, sign_in_session};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use super::{Store, StoreError};
use crate::domain::ids::UserId;
use crate::domain::session::SignInSession;

/// Why a session ended, as stored with it (`end_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    SignedOut,
    /// Another sign-in in the same browser replaced it.
    Replaced,
    /// The user opened more sessions than allowed: the oldest ends.
    TooMany,
    /// "Sign out everywhere".
    EverywhereSignedOut,
    /// The bypass code that opened it was revoked.
    CodeRevoked,
    /// Password change, 2-step verification reset, deactivation or deletion.
    CredentialsChanged,
    /// The user replaced their authenticator: the old one may be in someone else's hands.
    AuthenticatorReplaced,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignedOut => "signed_out",
            Self::Replaced => "replaced",
            Self::TooMany => "too_many_sessions",
            Self::EverywhereSignedOut => "signed_out_everywhere",
            Self::CodeRevoked => "bypass_code_revoked",
            Self::CredentialsChanged => "credentials_changed",
            Self::AuthenticatorReplaced => "authenticator_replaced",
        }
    }
}

fn session_of(row: sign_in_session::Model) -> SignInSession {
    SignInSession {
        id: row.id,
        user_id: UserId::new(row.user_id),
        created_at: row.created_at,
        auth_time: row.auth_time,
        amr: row.amr.split_whitespace().map(str::to_owned).collect(),
        acr: row.acr,
        bypass_code_id: row.bypass_code_id,
        last_seen_at: row.last_seen_at,
        expires_at: row.expires_at,
        single_sign_on_until: row.single_sign_on_until,
        ip: row.ip,
        ended_at: row.ended_at,
    }
}

/// A session's grants that ending it revokes: all, or all but `offline_access` ones (OpenID
/// Connect Core §11 lets those outlive the sign-in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grants {
    All,
    KeepOffline,
}

impl Store {
    pub async fn insert_session(
        &self,
        session: &SignInSession,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        sign_in_session::ActiveModel {
            id: Set(session.id.clone()),
            token_hash: Set(token_hash.to_owned()),
            user_id: Set(session.user_id.as_str().to_owned()),
            created_at: Set(session.created_at),
            auth_time: Set(session.auth_time),
            amr: Set(session.amr.join(" ")),
            acr: Set(session.acr.clone()),
            bypass_code_id: Set(session.bypass_code_id.clone()),
            last_seen_at: Set(session.last_seen_at),
            expires_at: Set(session.expires_at),
            single_sign_on_until: Set(session.single_sign_on_until),
            ip: Set(session.ip.clone()),
            ended_at: Set(None),
            end_reason: Set(None),
            logout_pending_since: Set(None),
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }

    pub async fn session_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<SignInSession>, StoreError> {
        Ok(sign_in_session::Entity::find()
            .filter(sign_in_session::Column::TokenHash.eq(token_hash))
            .one(&self.db)
            .await?
            .map(session_of))
    }

    pub async fn session(&self, id: &str) -> Result<Option<SignInSession>, StoreError> {
        Ok(sign_in_session::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(session_of))
    }

    /// Records a use; written at most once a minute per session.
    pub async fn touch_session(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        sign_in_session::Entity::update_many()
            .col_expr(sign_in_session::Column::LastSeenAt, Expr::value(now))
            .filter(sign_in_session::Column::Id.eq(id))
            .filter(sign_in_session::Column::LastSeenAt.lt(now - Duration::seconds(60)))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The session's user signed in again (a second step, `prompt=login`, `max_age`): new
    /// methods, times and cookie (the old one stops working), the same id, so the `sid` the
    /// clients hold stays true. Only while the session is still open (not ended, not
    /// expired, and used within `idle` when given). Returns whether it was.
    pub async fn renew_session(
        &self,
        id: &str,
        new_hash: &str,
        renewed: &SignInSession,
        idle: Option<Duration>,
    ) -> Result<bool, StoreError> {
        use sign_in_session::Column;
        let now = renewed.last_seen_at;
        let update = sign_in_session::Entity::update_many()
            .col_expr(Column::TokenHash, Expr::value(new_hash))
            .col_expr(Column::AuthTime, Expr::value(renewed.auth_time))
            .col_expr(Column::Amr, Expr::value(renewed.amr.join(" ")))
            .col_expr(Column::Acr, Expr::value(renewed.acr.clone()))
            .col_expr(
                Column::BypassCodeId,
                Expr::value(renewed.bypass_code_id.clone()),
            )
            .col_expr(Column::ExpiresAt, Expr::value(renewed.expires_at))
            .col_expr(
                Column::SingleSignOnUntil,
                Expr::value(renewed.single_sign_on_until),
            )
            .col_expr(Column::LastSeenAt, Expr::value(now))
            .filter(Column::Id.eq(id))
            .filter(Column::EndedAt.is_null())
            .filter(Column::ExpiresAt.gt(now));
        let update = match idle {
            Some(idle) => update.filter(Column::LastSeenAt.gt(now - idle)),
            None => update,
        };
        let result = update.exec(&self.db).await?;
        Ok(result.rows_affected == 1)
    }

    /// Ends a session and the grants it gave; returns whether it was live until now.
    pub async fn end_session(
        &self,
        id: &str,
        reason: EndReason,
        grants: Grants,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let ended = Self::mark_ended(reason, now)
            .filter(sign_in_session::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        let mut revoke = grant::Entity::update_many()
            .col_expr(grant::Column::RevokedAt, Expr::value(now))
            .filter(grant::Column::SessionId.eq(id))
            .filter(grant::Column::RevokedAt.is_null());
        if grants == Grants::KeepOffline {
            revoke = revoke.filter(grant::Column::Scope.like("%offline_access%").not());
        }
        revoke.exec(&self.db).await?;
        Ok(ended.rows_affected == 1)
    }

    /// Sessions that have not ended yet, to be ended now. Sessions already past their
    /// absolute end are left alone: nobody signs in with them, and their clients need no
    /// word of it (a user's history would otherwise be announced again at every revocation).
    fn mark_ended(
        reason: EndReason,
        now: DateTime<Utc>,
    ) -> sea_orm::UpdateMany<sign_in_session::Entity> {
        sign_in_session::Entity::update_many()
            .filter(sign_in_session::Column::ExpiresAt.gt(now))
            .col_expr(sign_in_session::Column::EndedAt, Expr::value(now))
            .col_expr(
                sign_in_session::Column::EndReason,
                Expr::value(reason.as_str()),
            )
            .col_expr(
                sign_in_session::Column::LogoutPendingSince,
                Expr::value(now),
            )
            .filter(sign_in_session::Column::EndedAt.is_null())
    }

    /// Ends every session of a user (their grants are revoked by the caller); returns how many.
    pub async fn end_user_sessions<C: ConnectionTrait>(
        db: &C,
        user_id: &UserId,
        reason: EndReason,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let result = Self::mark_ended(reason, now)
            .filter(sign_in_session::Column::UserId.eq(user_id.as_str()))
            .exec(db)
            .await?;
        Ok(result.rows_affected)
    }

    /// Ends every session of a user but `keep` (the one replacing the authenticator, if it is
    /// a session yet), and revokes every grant that did not come from `keep`, `offline_access`
    /// ones too: the lost authenticator's phone may hold them.
    pub async fn end_other_sessions<C: ConnectionTrait>(
        db: &C,
        user_id: &UserId,
        keep: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut sessions = Self::mark_ended(EndReason::AuthenticatorReplaced, now)
            .filter(sign_in_session::Column::UserId.eq(user_id.as_str()));
        let mut grants = grant::Entity::update_many()
            .col_expr(grant::Column::RevokedAt, Expr::value(now))
            .filter(grant::Column::UserId.eq(user_id.as_str()))
            .filter(grant::Column::RevokedAt.is_null());
        if let Some(keep) = keep {
            sessions = sessions.filter(sign_in_session::Column::Id.ne(keep));
            grants = grants.filter(
                grant::Column::SessionId
                    .is_null()
                    .or(grant::Column::SessionId.ne(keep)),
            );
        }
        let ended = sessions.exec(db).await?;
        grants.exec(db).await?;
        Ok(ended.rows_affected)
    }

    /// Ends every session opened (or stepped up) with the bypass code `code_id`.
    pub async fn end_code_sessions<C: ConnectionTrait>(
        db: &C,
        code_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let result = Self::mark_ended(EndReason::CodeRevoked, now)
            .filter(sign_in_session::Column::BypassCodeId.eq(code_id))
            .exec(db)
            .await?;
        Ok(result.rows_affected)
    }

    /// A user's sessions that have not ended nor expired, newest first.
    pub async fn open_sessions(
        &self,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<SignInSession>, StoreError> {
        Ok(sign_in_session::Entity::find()
            .filter(sign_in_session::Column::UserId.eq(user_id.as_str()))
            .filter(sign_in_session::Column::EndedAt.is_null())
            .filter(sign_in_session::Column::ExpiresAt.gt(now))
            .order_by_desc(sign_in_session::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(session_of)
            .collect())
    }

    /// The clients a session gave tokens to, by name.
    pub async fn session_clients(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<String> = grant::Entity::find()
            .select_only()
            .column(grant::Column::ClientId)
            .distinct()
            .filter(grant::Column::SessionId.eq(id))
            .order_by_asc(grant::Column::ClientId)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows)
    }

    /// "Sign out everywhere": every session of the user ends, every grant (`offline_access`
    /// too), and sign-ins still in progress are voided, in one transaction.
    pub async fn sign_out_everywhere(
        &self,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let txn = self.write().await?;
        let ended =
            Self::end_user_sessions(&txn, user_id, EndReason::EverywhereSignedOut, now).await?;
        Self::revoke_user_grants(&txn, user_id, now).await?;
        txn.commit().await?;
        Ok(ended)
    }

    /// Forgets sessions that ended or expired before `before` and were announced.
    pub async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let ended_long_ago = sign_in_session::Column::EndedAt.lt(before);
        let expired_long_ago = sign_in_session::Column::ExpiresAt.lt(before);
        let result = sign_in_session::Entity::delete_many()
            .filter(ended_long_ago.or(expired_long_ago))
            .filter(sign_in_session::Column::LogoutPendingSince.is_null())
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }

    /// Takes up to `limit` ended sessions whose clients are still to be told. Each is taken by
    /// one instance only (a conditional update).
    pub async fn claim_logouts(&self, limit: u64) -> Result<Vec<SignInSession>, StoreError> {
        let pending = sign_in_session::Entity::find()
            .filter(sign_in_session::Column::LogoutPendingSince.is_not_null())
            .order_by_asc(sign_in_session::Column::LogoutPendingSince)
            .limit(limit)
            .all(&self.db)
            .await?;
        let mut claimed = Vec::new();
        for row in pending {
            let taken = sign_in_session::Entity::update_many()
                .col_expr(
                    sign_in_session::Column::LogoutPendingSince,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .filter(sign_in_session::Column::Id.eq(row.id.as_str()))
                .filter(sign_in_session::Column::LogoutPendingSince.is_not_null())
                .exec(&self.db)
                .await?;
            if taken.rows_affected == 1 {
                claimed.push(session_of(row));
            }
        }
        Ok(claimed)
    }
}
