//! Integrity for anyone who may read a plan: the server's check of the plan's hash chain
//! (`GET /api/plans/{id}/verify`) and an export of the chain a third party can check without
//! the server (`GET /api/plans/{id}/audit.json`, `mapline verify-audit FILE`).
//!
//! Each history entry is stored as one record (a format byte, then postcard) and the chain is
//! SHA-256 over those bytes: an entry's `prev_sha256` is the SHA-256 of the previous entry's
//! stored bytes (32 zero bytes for the first), and it is the last 32 bytes of the entry's own
//! record. The export carries each entry's record in base64 with its hash, so the chain can be
//! re-hashed with nothing but SHA-256; docs/api.md spells out the steps.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mapline_store::{GENESIS, HistoryEntry, PlanId, Seq, Store, StoreError};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::App;
use crate::api::{ApiError, authenticate, authorize_read};
use crate::plan_api::{blocking, history_page, time};

/// The export's `format`.
pub const AUDIT_FORMAT: &str = "mapline.audit.v1";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

/// `GET /api/plans/{id}/verify`: the plan's log and hash chain checked by the server.
#[utoipa::path(get, path = "/api/plans/{plan_id}/verify", tag = "plans", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "`{ ok, entries, head, problems }`: the plan's hash chain checked by the server"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::openapi::ErrorBody)))]
pub async fn verify(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let principal = authenticate(&app, &headers, None).await?;
    let plan_id = authorize_read(&app, &principal, &raw_id).await?;
    let internal = crate::api::may_see_internal(&principal);
    let (report, head) = blocking(&app, move |store| {
        let report = crate::verify::verify_plan(store, plan_id)?;
        let head = store
            .history(plan_id, None, 1)?
            .first()
            .map(|(_, entry)| sha256(&entry.stored_bytes()));
        Ok((report, head))
    })
    .await?;
    // A buyer's link learns nothing about the seller's internal document, not even its faults.
    let problems: Vec<_> = report
        .problems
        .into_iter()
        .filter(|p| internal || !p.table.starts_with("internal_"))
        .collect();
    Ok(Json(json!({
        "ok": problems.is_empty(),
        "entries": report.history_entries,
        "updates": report.updates,
        "head": head.map(|h| hex(&h)),
        "problems": problems,
    })))
}

/// The export of a plan's history chain (see the module docs).
pub fn export(
    store: &Store,
    plan_id: PlanId,
    now_ms: i64,
    member_emails: bool,
) -> Result<Value, StoreError> {
    let stored = store.all_history(plan_id)?;
    // The history as the API shows it, for the same positions (entries are keyed by position
    // and never change, so a later one appended meanwhile is simply left out).
    let (mut shown, _) = history_page(store, plan_id, None, usize::MAX, member_emails)?;
    shown.reverse();
    let mut shown = shown.into_iter().peekable();
    let mut entries = Vec::with_capacity(stored.len());
    for (seq, entry) in &stored {
        while shown
            .peek()
            .is_some_and(|v| v["seq"].as_u64().is_some_and(|s| s < *seq))
        {
            shown.next();
        }
        let view = shown
            .next_if(|v| v["seq"].as_u64() == Some(*seq))
            .unwrap_or(Value::Null);
        let bytes = entry.stored_bytes();
        entries.push(json!({
            "seq": seq,
            "at": time(entry.received_at_ms),
            "who": view["who"],
            "changes": view["changes"],
            "slips": view["slips"],
            "prev": hex(&entry.prev_sha256),
            "update": hex(&entry.update_sha256),
            "hash": hex(&sha256(&bytes)),
            "record": BASE64.encode(&bytes),
        }));
    }
    let head = entries
        .last()
        .map(|e| e["hash"].clone())
        .unwrap_or(Value::Null);
    Ok(json!({
        "format": AUDIT_FORMAT,
        "planId": plan_id,
        "head": head,
        "entries": entries,
        "exportedAt": time(now_ms),
    }))
}

/// `GET /api/plans/{id}/audit.json`: the plan's history chain as a download.
#[utoipa::path(get, path = "/api/plans/{plan_id}/audit.json", tag = "exports", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "The plan's history with its hash chain (format mapline.audit.v1)", content_type = "application/json"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::openapi::ErrorBody)))]
pub async fn audit_json(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = authenticate(&app, &headers, None).await?;
    let plan_id = authorize_read(&app, &principal, &raw_id).await?;
    let now = crate::now_ms();
    let member_emails = crate::plan_api::shows_member_emails(&principal);
    let body = blocking(&app, move |store| {
        export(store, plan_id, now, member_emails)
    })
    .await?;
    let body = serde_json::to_string_pretty(&body).map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"mapline-audit-{plan_id}.json\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// What checking an export found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportCheck {
    pub ok: bool,
    pub entries: usize,
    pub head: Option<String>,
    /// The first entry that does not check out (its `seq`, if it has one) and why.
    pub first_bad: Option<BadEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BadEntry {
    /// The entry's index in `entries` (0-based).
    pub index: usize,
    pub seq: Option<Seq>,
    pub reason: String,
}

/// The fields of a change, as the export's JSON shows them and as its record holds them.
fn change_matches(shown: &Value, stored: &mapline_store::ChangeRecord) -> bool {
    let text = |v: &Value| match v {
        Value::Null => None,
        other => Some(other.clone()),
    };
    let json_of = |t: &Option<String>| {
        t.as_deref().map(|t| {
            serde_json::from_str::<Value>(t).unwrap_or_else(|_| Value::String(t.to_owned()))
        })
    };
    let kind = match stored.kind {
        mapline_store::ChangeKind::Created => "created",
        mapline_store::ChangeKind::Updated => "updated",
        mapline_store::ChangeKind::Deleted => "deleted",
        mapline_store::ChangeKind::Conflict => "conflict",
    };
    shown["entity"].as_str() == Some(stored.entity.as_str())
        && shown["entityId"].as_str() == stored.entity_id.as_deref()
        && shown["field"].as_str() == stored.field.as_deref()
        && shown["kind"].as_str() == Some(kind)
        && text(&shown["old"]) == json_of(&stored.old)
        && text(&shown["new"]) == json_of(&stored.new)
}

fn slip_matches(shown: &Value, stored: &mapline_store::SlipRecord) -> bool {
    shown["milestoneId"].as_str() == stored.milestone_id.as_deref()
        && shown["from"].as_str() == Some(stored.from.as_str())
        && shown["to"].as_str() == stored.to.as_deref()
        && shown["days"].as_i64() == stored.days
        && shown["reason"].as_str() == stored.reason.as_deref()
}

/// Checks one entry of an export against the hash before it; returns its hash.
fn check_entry(entry: &Value, prev: &[u8; 32]) -> Result<[u8; 32], String> {
    let record = entry["record"].as_str().ok_or("no `record`")?;
    let bytes = BASE64
        .decode(record)
        .map_err(|e| format!("`record` is not base64: {e}"))?;
    let hash = sha256(&bytes);
    if entry["hash"].as_str() != Some(hex(&hash).as_str()) {
        return Err("its `hash` is not the SHA-256 of its `record`".into());
    }
    if entry["prev"].as_str() != Some(hex(prev).as_str()) {
        return Err("its `prev` is not the hash of the entry before it".into());
    }
    if bytes.len() < 32 || bytes[bytes.len() - 32..] != prev[..] {
        return Err("its record does not commit to the entry before it".into());
    }
    let stored = HistoryEntry::from_stored_bytes(&bytes).ok_or("its record does not decode")?;
    if entry["at"].as_str() != time(stored.received_at_ms).as_deref() {
        return Err("its `at` is not the time its record holds".into());
    }
    let changes = entry["changes"].as_array().ok_or("no `changes`")?;
    if changes.len() != stored.changes.len()
        || !changes
            .iter()
            .zip(&stored.changes)
            .all(|(shown, stored)| change_matches(shown, stored))
    {
        return Err("its `changes` are not the ones its record holds".into());
    }
    let slips = entry["slips"].as_array().ok_or("no `slips`")?;
    if slips.len() != stored.slips.len()
        || !slips
            .iter()
            .zip(&stored.slips)
            .all(|(shown, stored)| slip_matches(shown, stored))
    {
        return Err("its `slips` are not the ones its record holds".into());
    }
    Ok(hash)
}

/// Re-checks an audit export offline: every entry's record hashes to its `hash`, commits to
/// the entry before it, and holds what the entry's JSON shows; `head` is the last hash.
pub fn check_export(export: &Value) -> ExportCheck {
    let bad = |index: usize, seq: Option<Seq>, reason: String| BadEntry { index, seq, reason };
    let entries = export["entries"].as_array().map_or(&[][..], Vec::as_slice);
    let mut first_bad = None;
    if export["format"].as_str() != Some(AUDIT_FORMAT) {
        first_bad = Some(bad(0, None, format!("the format is not {AUDIT_FORMAT}")));
    }
    let mut prev = GENESIS;
    let mut last_seq = 0;
    for (index, entry) in entries.iter().enumerate() {
        if first_bad.is_some() {
            break;
        }
        let seq = entry["seq"].as_u64();
        if seq.is_none_or(|s| s <= last_seq) {
            first_bad = Some(bad(
                index,
                seq,
                "its `seq` does not follow the one before".into(),
            ));
            break;
        }
        last_seq = seq.unwrap_or(last_seq);
        match check_entry(entry, &prev) {
            Ok(hash) => prev = hash,
            Err(reason) => first_bad = Some(bad(index, seq, reason)),
        }
    }
    let head = (!entries.is_empty()).then(|| hex(&prev));
    if first_bad.is_none() && export["head"].as_str() != head.as_deref() {
        first_bad = Some(bad(
            entries.len().saturating_sub(1),
            entries.last().and_then(|e| e["seq"].as_u64()),
            "`head` is not the last entry's hash".into(),
        ));
    }
    ExportCheck {
        ok: first_bad.is_none(),
        entries: entries.len(),
        head,
        first_bad,
    }
}
