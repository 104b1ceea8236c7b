//! Groups and memberships. A PATCH is applied as inserts and deletes of membership rows under
//! a conditional version bump, so a large group is changed without reading its members.

use std::collections::{HashMap, HashSet};

use entity::{group_member, scim_group, user};
use sea_orm::sea_query::{Expr, LikeExpr, NullOrdering, Order, Query, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    ExprTrait, IdenStatic, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select, Set,
};

use super::user_query::escape_like;
use super::users::now_ms;
use super::{Store, StoreError};
use crate::domain::ids::{GroupId, UserId};
use crate::domain::repo::{GroupPage, GroupRef, GroupRepo};
use crate::domain::scim::filter::CompareOp;
use crate::domain::scim::group::{Group, GroupChange, GroupField, GroupFilter, GroupWrite, Member};
use crate::domain::scim::search::{Sort, SortOrder};

/// Rows inserted per statement: well under SQLite's and PostgreSQL's parameter limits.
const INSERT_CHUNK: usize = 500;

fn group(row: scim_group::Model, members: Option<Vec<Member>>) -> Group {
    Group {
        id: GroupId::new(row.id),
        display_name: row.display_name,
        external_id: row.external_id,
        members,
        version: row.version,
        created: row.created_at,
        last_modified: row.updated_at,
    }
}

/// The members of these groups, in one query on the membership key.
async fn members_of<C: ConnectionTrait>(
    db: &C,
    group_ids: &[String],
) -> Result<HashMap<String, Vec<Member>>, StoreError> {
    let mut out: HashMap<String, Vec<Member>> = HashMap::new();
    if group_ids.is_empty() {
        return Ok(out);
    }
    let rows: Vec<(String, String)> = group_member::Entity::find()
        .select_only()
        .column(group_member::Column::GroupId)
        .column(group_member::Column::UserId)
        .filter(group_member::Column::GroupId.is_in(group_ids.to_vec()))
        .order_by_asc(group_member::Column::GroupId)
        .order_by_asc(group_member::Column::UserId)
        .into_tuple()
        .all(db)
        .await?;
    for (group_id, user_id) in rows {
        out.entry(group_id).or_default().push(Member {
            user_id: UserId::new(user_id),
        });
    }
    Ok(out)
}

async fn insert_members<C: ConnectionTrait>(
    db: &C,
    group_id: &str,
    users: &[UserId],
) -> Result<(), StoreError> {
    for chunk in users.chunks(INSERT_CHUNK) {
        let rows = chunk.iter().map(|u| group_member::ActiveModel {
            group_id: Set(group_id.to_owned()),
            user_id: Set(u.as_str().to_owned()),
        });
        // Adding a member twice is not an error.
        group_member::Entity::insert_many(rows)
            .on_conflict_do_nothing_on([
                group_member::Column::GroupId,
                group_member::Column::UserId,
            ])
            .exec(db)
            .await
            .map_err(StoreError::classify)?;
    }
    Ok(())
}

/// Removes these users from the group; returns those that were members.
async fn remove_members<C: ConnectionTrait>(
    db: &C,
    group_id: &str,
    users: &[UserId],
) -> Result<Vec<UserId>, StoreError> {
    let mut removed = Vec::new();
    for chunk in users.chunks(INSERT_CHUNK) {
        let ids: Vec<String> = chunk.iter().map(|u| u.as_str().to_owned()).collect();
        let present: Vec<String> = group_member::Entity::find()
            .select_only()
            .column(group_member::Column::UserId)
            .filter(group_member::Column::GroupId.eq(group_id))
            .filter(group_member::Column::UserId.is_in(ids.clone()))
            .into_tuple()
            .all(db)
            .await?;
        if present.is_empty() {
            continue;
        }
        group_member::Entity::delete_many()
            .filter(group_member::Column::GroupId.eq(group_id))
            .filter(group_member::Column::UserId.is_in(present.clone()))
            .exec(db)
            .await?;
        removed.extend(present.into_iter().map(UserId::new));
    }
    Ok(removed)
}

async fn member_ids<C: ConnectionTrait>(db: &C, group_id: &str) -> Result<Vec<UserId>, StoreError> {
    let ids: Vec<String> = group_member::Entity::find()
        .select_only()
        .column(group_member::Column::UserId)
        .filter(group_member::Column::GroupId.eq(group_id))
        .into_tuple()
        .all(db)
        .await?;
    Ok(ids.into_iter().map(UserId::new).collect())
}

/// Bumps the group's version if it is still `expected` (when given) and applies the name,
/// external id and time; `NotFound` or `VersionMismatch` otherwise.
async fn bump(
    txn: &DatabaseTransaction,
    id: &str,
    expected: Option<i64>,
    display_name: Option<&str>,
    external_id: Option<Option<&str>>,
) -> Result<(), StoreError> {
    let mut update = scim_group::Entity::update_many()
        .col_expr(
            scim_group::Column::Version,
            Expr::col(scim_group::Column::Version).add(1),
        )
        .col_expr(scim_group::Column::UpdatedAt, Expr::value(now_ms()))
        .filter(scim_group::Column::Id.eq(id));
    if let Some(name) = display_name {
        update = update
            .col_expr(scim_group::Column::DisplayName, Expr::value(name))
            .col_expr(
                scim_group::Column::DisplayNameLower,
                Expr::value(name.to_lowercase()),
            );
    }
    if let Some(external_id) = external_id {
        update = update.col_expr(
            scim_group::Column::ExternalId,
            Expr::value(external_id.map(str::to_owned)),
        );
    }
    if let Some(version) = expected {
        update = update.filter(scim_group::Column::Version.eq(version));
    }
    let result = update.exec(txn).await.map_err(StoreError::classify)?;
    if result.rows_affected == 1 {
        return Ok(());
    }
    let exists = scim_group::Entity::find_by_id(id).count(txn).await? > 0;
    Err(if exists {
        StoreError::VersionMismatch
    } else {
        StoreError::NotFound
    })
}

fn column(field: GroupField) -> scim_group::Column {
    match field {
        GroupField::Id => scim_group::Column::Id,
        GroupField::DisplayName => scim_group::Column::DisplayNameLower,
        GroupField::ExternalId => scim_group::Column::ExternalId,
        GroupField::Created => scim_group::Column::CreatedAt,
        GroupField::LastModified => scim_group::Column::UpdatedAt,
    }
}

/// A group query in `sort` order, ties (and no sort) oldest first, or newest first
/// descending. Groups without a value come last ascending and first descending (RFC 7644
/// §3.4.2.3); text sorts in code point order on both backends.
fn ordered(
    select: Select<scim_group::Entity>,
    sort: Option<Sort<GroupField>>,
    backend: sea_orm::DatabaseBackend,
) -> Select<scim_group::Entity> {
    let (field, order, nulls) = match sort {
        None => (GroupField::Created, Order::Asc, NullOrdering::Last),
        Some(Sort {
            field,
            order: SortOrder::Ascending,
        }) => (field, Order::Asc, NullOrdering::Last),
        Some(Sort {
            field,
            order: SortOrder::Descending,
        }) => (field, Order::Desc, NullOrdering::First),
    };
    let key: SimpleExpr = match field {
        GroupField::DisplayName | GroupField::ExternalId
            if backend == sea_orm::DatabaseBackend::Postgres =>
        {
            Expr::cust(format!("{} COLLATE \"C\"", column(field).as_str()))
        }
        _ => Expr::col((scim_group::Entity, column(field))),
    };
    select
        .order_by_with_nulls(key, order.clone(), nulls)
        .order_by(scim_group::Column::CreatedAt, order.clone())
        .order_by(scim_group::Column::Id, order)
}

fn condition(filter: &GroupFilter) -> Condition {
    let col = |field: GroupField| Expr::col((scim_group::Entity, column(field)));
    match filter {
        GroupFilter::And(a, b) => Condition::all().add(condition(a)).add(condition(b)),
        GroupFilter::Or(a, b) => Condition::any().add(condition(a)).add(condition(b)),
        GroupFilter::Not(inner) => condition(inner).not(),
        GroupFilter::Present(field) => Condition::all().add(col(*field).is_not_null()),
        GroupFilter::HasMember(user_id) => {
            let mut members = Query::select();
            members
                .column((group_member::Entity, group_member::Column::GroupId))
                .from(group_member::Entity)
                .and_where(
                    Expr::col((group_member::Entity, group_member::Column::UserId))
                        .eq(user_id.as_str()),
                );
            Condition::all().add(col(GroupField::Id).in_subquery(members))
        }
        GroupFilter::Time(field, op, time) => Condition::all().add(match op {
            CompareOp::Eq => col(*field).eq(*time),
            CompareOp::Ne => col(*field).ne(*time),
            CompareOp::Gt => col(*field).gt(*time),
            CompareOp::Ge => col(*field).gte(*time),
            CompareOp::Lt => col(*field).lt(*time),
            _ => col(*field).lte(*time),
        }),
        GroupFilter::Text(field, op, text) => {
            // displayName is stored lower-cased beside its original; externalId and id compare exactly.
            let (lhs, text): (SimpleExpr, String) = match field {
                GroupField::DisplayName => (col(*field), text.to_lowercase()),
                _ => (col(*field), text.clone()),
            };
            let like = |pattern: String| lhs.clone().like(LikeExpr::new(pattern).escape('\\'));
            Condition::all().add(match op {
                CompareOp::Eq => lhs.eq(text),
                CompareOp::Ne => Condition::any()
                    .add(lhs.clone().ne(text))
                    .add(lhs.is_null())
                    .into(),
                CompareOp::Co => like(format!("%{}%", escape_like(&text))),
                CompareOp::Sw => like(format!("{}%", escape_like(&text))),
                CompareOp::Ew => like(format!("%{}", escape_like(&text))),
                CompareOp::Gt => lhs.gt(text),
                CompareOp::Ge => lhs.gte(text),
                CompareOp::Lt => lhs.lt(text),
                CompareOp::Le => lhs.lte(text),
            })
        }
    }
}

impl GroupRepo for Store {
    type Error = StoreError;

    async fn create_group(&self, write: &GroupWrite) -> Result<Group, StoreError> {
        let now = now_ms();
        let id = GroupId::generate();
        let txn = self.write().await?;
        let row = scim_group::ActiveModel {
            id: Set(id.as_str().to_owned()),
            display_name: Set(write.display_name.clone()),
            display_name_lower: Set(write.display_name.to_lowercase()),
            external_id: Set(write.external_id.clone()),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(StoreError::classify)?;
        insert_members(&txn, id.as_str(), &write.members).await?;
        let members = members_of(&txn, std::slice::from_ref(&row.id)).await?;
        txn.commit().await?;
        let members = members.into_values().next().unwrap_or_default();
        Ok(group(row, Some(members)))
    }

    async fn get_group(
        &self,
        id: &GroupId,
        with_members: bool,
    ) -> Result<Option<Group>, StoreError> {
        let Some(row) = scim_group::Entity::find_by_id(id.as_str())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let members = if with_members {
            Some(
                members_of(&self.db, std::slice::from_ref(&row.id))
                    .await?
                    .into_values()
                    .next()
                    .unwrap_or_default(),
            )
        } else {
            None
        };
        Ok(Some(group(row, members)))
    }

    async fn list_groups(
        &self,
        filter: Option<&GroupFilter>,
        sort: Option<Sort<GroupField>>,
        start_index: u64,
        count: u64,
        with_members: bool,
    ) -> Result<GroupPage, StoreError> {
        let condition = filter.map_or_else(Condition::all, condition);
        let total = scim_group::Entity::find()
            .filter(condition.clone())
            .count(&self.db)
            .await?;
        if count == 0 {
            return Ok(GroupPage {
                total,
                groups: Vec::new(),
            });
        }
        let backend = self.db.get_database_backend();
        let rows = ordered(scim_group::Entity::find().filter(condition), sort, backend)
            .offset(start_index.saturating_sub(1))
            .limit(count)
            .all(&self.db)
            .await?;
        let mut members = if with_members {
            let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
            members_of(&self.db, &ids).await?
        } else {
            HashMap::new()
        };
        let groups = rows
            .into_iter()
            .map(|row| {
                let own = with_members.then(|| members.remove(&row.id).unwrap_or_default());
                group(row, own)
            })
            .collect();
        Ok(GroupPage { total, groups })
    }

    async fn replace_group(
        &self,
        id: &GroupId,
        write: &GroupWrite,
        expected_version: Option<i64>,
    ) -> Result<Vec<UserId>, StoreError> {
        let txn = self.write().await?;
        bump(
            &txn,
            id.as_str(),
            expected_version,
            Some(&write.display_name),
            Some(write.external_id.as_deref()),
        )
        .await?;
        let before = member_ids(&txn, id.as_str()).await?;
        let keep: HashSet<&UserId> = write.members.iter().collect();
        let gone: Vec<UserId> = before
            .iter()
            .filter(|u| !keep.contains(u))
            .cloned()
            .collect();
        remove_members(&txn, id.as_str(), &gone).await?;
        let had: HashSet<&UserId> = before.iter().collect();
        let new: Vec<UserId> = write
            .members
            .iter()
            .filter(|u| !had.contains(u))
            .cloned()
            .collect();
        insert_members(&txn, id.as_str(), &new).await?;
        txn.commit().await?;
        Ok(before)
    }

    async fn change_group(
        &self,
        id: &GroupId,
        changes: &[GroupChange],
        expected_version: Option<i64>,
    ) -> Result<Vec<UserId>, StoreError> {
        let txn = self.write().await?;
        let name = changes.iter().rev().find_map(|c| match c {
            GroupChange::SetDisplayName(name) => Some(name.as_str()),
            _ => None,
        });
        let external_id = changes.iter().rev().find_map(|c| match c {
            GroupChange::SetExternalId(value) => Some(value.as_deref()),
            _ => None,
        });
        bump(&txn, id.as_str(), expected_version, name, external_id).await?;
        let mut removed = Vec::new();
        for change in changes {
            match change {
                GroupChange::SetDisplayName(_) | GroupChange::SetExternalId(_) => {}
                GroupChange::AddMembers(users) => insert_members(&txn, id.as_str(), users).await?,
                GroupChange::RemoveMembers(users) => {
                    removed.extend(remove_members(&txn, id.as_str(), users).await?);
                }
                GroupChange::RemoveAllMembers | GroupChange::ReplaceMembers(_) => {
                    let before = member_ids(&txn, id.as_str()).await?;
                    group_member::Entity::delete_many()
                        .filter(group_member::Column::GroupId.eq(id.as_str()))
                        .exec(&txn)
                        .await?;
                    if let GroupChange::ReplaceMembers(users) = change {
                        insert_members(&txn, id.as_str(), users).await?;
                        let kept: HashSet<&UserId> = users.iter().collect();
                        removed.extend(before.into_iter().filter(|u| !kept.contains(u)));
                    } else {
                        removed.extend(before);
                    }
                }
            }
        }
        txn.commit().await?;
        Ok(removed)
    }

    async fn delete_group(
        &self,
        id: &GroupId,
        expected_version: Option<i64>,
    ) -> Result<Vec<UserId>, StoreError> {
        let txn = self.write().await?;
        let members = member_ids(&txn, id.as_str()).await?;
        let mut delete =
            scim_group::Entity::delete_many().filter(scim_group::Column::Id.eq(id.as_str()));
        if let Some(version) = expected_version {
            delete = delete.filter(scim_group::Column::Version.eq(version));
        }
        if delete.exec(&txn).await?.rows_affected == 0 {
            let exists = scim_group::Entity::find_by_id(id.as_str())
                .count(&txn)
                .await?
                > 0;
            return Err(if exists {
                StoreError::VersionMismatch
            } else {
                StoreError::NotFound
            });
        }
        txn.commit().await?;
        Ok(members)
    }

    async fn groups_of_users(
        &self,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Vec<GroupRef>>, StoreError> {
        let mut out: HashMap<UserId, Vec<GroupRef>> = HashMap::new();
        if users.is_empty() {
            return Ok(out);
        }
        let ids: Vec<String> = users.iter().map(|u| u.as_str().to_owned()).collect();
        let rows: Vec<(String, String, String)> = group_member::Entity::find()
            .select_only()
            .column(group_member::Column::UserId)
            .column(group_member::Column::GroupId)
            .column_as(scim_group::Column::DisplayName, "display_name")
            .join(
                sea_orm::JoinType::InnerJoin,
                group_member::Entity::belongs_to(scim_group::Entity)
                    .from(group_member::Column::GroupId)
                    .to(scim_group::Column::Id)
                    .into(),
            )
            .filter(group_member::Column::UserId.is_in(ids))
            .order_by_asc(scim_group::Column::DisplayNameLower)
            .into_tuple()
            .all(&self.db)
            .await?;
        for (user_id, group_id, display_name) in rows {
            out.entry(UserId::new(user_id)).or_default().push(GroupRef {
                id: GroupId::new(group_id),
                display_name,
            });
        }
        Ok(out)
    }

    async fn missing_users(&self, users: &[UserId]) -> Result<Vec<UserId>, StoreError> {
        let mut found: HashSet<String> = HashSet::new();
        for chunk in users.chunks(INSERT_CHUNK) {
            let ids: Vec<String> = chunk.iter().map(|u| u.as_str().to_owned()).collect();
            let rows: Vec<String> = user::Entity::find()
                .select_only()
                .column(user::Column::Id)
                .filter(user::Column::Id.is_in(ids))
                .into_tuple()
                .all(&self.db)
                .await?;
            found.extend(rows);
        }
        Ok(users
            .iter()
            .filter(|u| !found.contains(u.as_str()))
            .cloned()
            .collect())
    }
}
