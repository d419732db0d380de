//! Nothing deleted is gone: the entries deleted and not back (`GET /api/plans/{id}/deleted`),
//! read from the stored history, and putting one back (`POST /api/plans/{id}/restore`).
//!
//! A restore is an update the server writes itself, on behalf of the calling link: built
//! against the room's durable document, admitted by the room like a client's update, queued
//! on the writer like one (durable before it is relayed to every open client, derived into
//! history as a `created` change, attributed to the link), and answered once it is durable.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mapline_plan::edit::restore_entry;
use mapline_plan::raw::{Collection, RawPlan};
use mapline_plan::schema;
use mapline_store::{
    ChangeKind, DocRef, HistoryEntry, PlanId, Seq, Store, StoreError, UpdateRecord,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use yrs::updates::decoder::Decode as _;
use yrs::{Doc, ReadTxn as _, StateVector, Transact as _, Update};

use crate::App;
use crate::clock::now_ms;
use crate::http::error::{ApiError, blocking};
use crate::http::extract::{ApiJson, PlanReader};
use crate::http::plan_api::{Labels, Who, time};
use crate::sync::writer::WriteRequest;

/// One entry deleted and not back, as `/deleted` lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Deleted {
    collection: &'static str,
    id: String,
    /// The log position of the update that deleted it.
    seq: Seq,
    at: Option<String>,
    who: Who,
    /// The entry's last fields (a stakeholder's seller judgments left out).
    entry: serde_json::Map<String, Value>,
    /// Milestones that lost its id from `dependsOn` in the same update.
    dependents: Vec<String>,
}

fn collection_named(name: &str) -> Option<Collection> {
    Collection::ALL.into_iter().find(|c| c.root() == name)
}

fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn names(list: Option<&Value>, id: &str) -> bool {
    list.and_then(Value::as_array)
        .is_some_and(|ids| ids.iter().any(|d| d.as_str() == Some(id)))
}

/// The milestones whose `dependsOn` lost `id` in this history entry.
fn dependents_in(entry: &HistoryEntry, id: &str) -> Vec<String> {
    let mut out: Vec<String> = entry
        .changes
        .iter()
        .filter(|c| c.entity == schema::MILESTONES && c.kind == ChangeKind::Updated)
        .filter(|c| c.field.as_deref() == Some(schema::milestone::DEPENDS_ON))
        .filter(|c| {
            let old = c.old.as_deref().map(json_value);
            let new = c.new.as_deref().map(json_value);
            names(old.as_ref(), id) && !names(new.as_ref(), id)
        })
        .filter_map(|c| c.entity_id.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every entry deleted and not back, newest deletion first: from the stored history (newest
/// first), the last `deleted` change of each entity whose id is not in `current`.
pub(crate) fn deleted_entries(
    store: &Store,
    plan_id: PlanId,
    current: &RawPlan,
    member_emails: bool,
) -> Result<Vec<Deleted>, StoreError> {
    let present: HashSet<(Collection, &str)> = Collection::ALL
        .into_iter()
        .flat_map(|c| current.entries(c).map(move |(id, _)| (c, id.as_str())))
        .collect();
    let mut seen: HashSet<(Collection, String)> = HashSet::new();
    let mut labels = Labels::new(store, member_emails);
    let mut out = Vec::new();
    for (seq, entry) in store.history(plan_id, None, usize::MAX)? {
        for change in &entry.changes {
            if change.kind != ChangeKind::Deleted || change.field.is_some() {
                continue;
            }
            let (Some(collection), Some(id)) =
                (collection_named(&change.entity), change.entity_id.as_ref())
            else {
                continue;
            };
            if present.contains(&(collection, id.as_str()))
                || !seen.insert((collection, id.clone()))
            {
                continue;
            }
            let Some(Value::Object(mut fields)) = change.old.as_deref().map(json_value) else {
                // Not an entry map (something a client wrote in its place): nothing to restore.
                continue;
            };
            if collection == Collection::Stakeholders {
                for judgment in schema::SELLER_JUDGMENTS {
                    fields.remove(judgment);
                }
            }
            out.push(Deleted {
                collection: collection.root(),
                id: id.clone(),
                seq,
                at: time(entry.received_at_ms),
                who: labels.who(entry.author)?,
                entry: fields,
                dependents: if collection == Collection::Milestones {
                    dependents_in(&entry, id)
                } else {
                    Vec::new()
                },
            });
        }
    }
    Ok(out)
}

/// The plan's room and its current raw document.
async fn current(
    app: &Arc<App>,
    plan_id: PlanId,
) -> Result<(Arc<crate::sync::room::Room>, RawPlan), ApiError> {
    let room = app
        .rooms
        .open(DocRef::plan(plan_id))
        .await
        .map_err(ApiError::internal)?;
    let (raw, _) = room.read(|txn| RawPlan::read(txn));
    Ok((room, raw))
}

/// `GET /api/plans/{id}/deleted`: entries deleted and not back, newest first (any link).
#[utoipa::path(get, path = "/api/plans/{plan_id}/deleted", tag = "plans", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "`{ deleted: [{ collection, id, seq, at, who, entry, dependents }] }`, newest first"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn get_deleted(
    State(app): State<Arc<App>>,
    PlanReader { principal, plan_id }: PlanReader,
) -> Result<Json<Value>, ApiError> {
    let (_, raw) = current(&app, plan_id).await?;
    let member_emails = crate::http::plan_api::shows_member_emails(&principal);
    let deleted = blocking(&app, move |store| {
        deleted_entries(store, plan_id, &raw, member_emails)
    })
    .await?;
    Ok(Json(json!({ "deleted": deleted })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct RestoreBody {
    /// `objectives`, `stakeholders`, `milestones`, `criteria` or `risks`.
    collection: String,
    id: String,
}

fn not_deleted(collection: &str, id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_deleted",
        format!(
            "{collection} has no deleted entry {id:?} to restore (it exists, or was never deleted)"
        ),
    )
}

/// The update that puts a deleted entry back, written by a fresh Yjs client against the room's
/// durable state (`None`: the entry is there again).
fn restore_update(
    state: &[u8],
    deleted: &Deleted,
    collection: Collection,
) -> Result<Option<Vec<u8>>, ApiError> {
    let doc = Doc::with_client_id(crate::http::plans::server_client_id());
    let update = Update::decode_v1(state).map_err(ApiError::internal)?;
    doc.transact_mut()
        .apply_update(update)
        .map_err(ApiError::internal)?;
    let before = doc.transact().state_vector();
    let restored = restore_entry(
        &mut doc.transact_mut(),
        collection,
        &deleted.id,
        &deleted.entry,
        &deleted.dependents,
    );
    if restored.is_err() {
        return Ok(None);
    }
    Ok(Some(doc.transact().encode_state_as_update_v1(&before)))
}

/// `POST /api/plans/{id}/restore` `{ collection, id }`: puts a deleted entry back with its last
/// fields and its dependencies (editor links of either side, the admin). `{ seq }` once durable.
#[utoipa::path(post, path = "/api/plans/{plan_id}/restore", tag = "plans", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), request_body = RestoreBody, responses((status = 200, description = "`{ seq }`: the restore's log position, durable"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn restore(
    State(app): State<Arc<App>>,
    PlanReader { principal, plan_id }: PlanReader,
    body: Result<ApiJson<RestoreBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    if !principal.can_write() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "editors_only",
            "a view-only link cannot restore entries",
        ));
    }
    let ApiJson(body) = body?;
    let collection = collection_named(&body.collection).ok_or_else(|| {
        ApiError::invalid(format!(
            "`collection` must be one of objectives, stakeholders, milestones, criteria, risks; got {:?}",
            body.collection
        ))
    })?;
    // One restore at a time: the next one reads the plan with this one's entry back in it.
    let _restoring = app.restoring.lock().await;
    let (room, raw) = current(&app, plan_id).await?;
    let wanted = (collection.root(), body.id.clone());
    let found = blocking(&app, move |store| {
        Ok(deleted_entries(store, plan_id, &raw, true)?
            .into_iter()
            .find(|d| (d.collection, &d.id) == (wanted.0, &wanted.1)))
    })
    .await?;
    let Some(deleted) = found else {
        return Err(not_deleted(collection.root(), &body.id));
    };
    let (state, _) = room.read(|txn| txn.encode_state_as_update_v1(&StateVector::default()));
    let Some(raw_update) = restore_update(&state, &deleted, collection)? else {
        return Err(not_deleted(collection.root(), &body.id));
    };
    let update = Update::decode_v1(&raw_update).map_err(ApiError::internal)?;
    room.admit(&raw_update, &update).map_err(|refusal| {
        if refusal.is_limit() {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "over_limit",
                refusal.to_string(),
            )
        } else {
            ApiError::internal(refusal)
        }
    })?;
    let author = principal.author();
    let (durable, stored) = tokio::sync::oneshot::channel();
    let request = WriteRequest::Update {
        room: room.clone(),
        // No connection has this id: the update is relayed to every open client.
        origin: app.next_conn_id(),
        record: UpdateRecord {
            author,
            client_ids: crate::sync::protocol::client_ids(&update),
            received_at_ms: now_ms(),
            update: raw_update,
        },
        update,
        durable: Some(durable),
    };
    if app.writer.send(request).await.is_err() {
        // The writer has stopped: the admitted update will never be applied.
        room.reject_unsaved(crate::sync::writer::SERVER_ORIGIN);
        return Err(ApiError::unavailable());
    }
    // Dropped unsent when the commit failed: nothing was stored.
    let seq = stored.await.map_err(|_| ApiError::unavailable())?;
    tracing::info!(plan_id = %plan_id, collection = collection.root(), id = %deleted.id, seq, "entry restored");
    Ok(Json(json!({ "seq": seq })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapline_store::ChangeRecord;

    fn change(entity_id: &str, field: &str, old: &str, new: &str) -> ChangeRecord {
        ChangeRecord {
            entity: schema::MILESTONES.into(),
            entity_id: Some(entity_id.into()),
            field: Some(field.into()),
            kind: ChangeKind::Updated,
            old: Some(old.into()),
            new: Some(new.into()),
            conflict: None,
        }
    }

    #[test]
    fn dependents_are_the_milestones_that_lost_the_id_in_the_same_update() {
        let entry = HistoryEntry {
            author: mapline_store::Author::System,
            client_ids: Vec::new(),
            received_at_ms: 0,
            changes: vec![
                change("m3", "dependsOn", r#"["m1","m2"]"#, r#"["m1"]"#),
                change("m4", "dependsOn", r#"["m2"]"#, r#"["m2","m9"]"#),
                change("m5", "dependsOn", r#"["m1"]"#, r#"[]"#),
                change("m6", "title", r#""m2""#, r#""x""#),
                change("m7", "dependsOn", r#"["m2"]"#, r#"[]"#),
            ],
            slips: Vec::new(),
            update_sha256: [0; 32],
            prev_sha256: [0; 32],
        };
        assert_eq!(dependents_in(&entry, "m2"), ["m3", "m7"]);
    }
}
