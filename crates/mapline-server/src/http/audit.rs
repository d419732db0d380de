//! Integrity for anyone who may read a plan: the server's check of the plan's hash chain
//! (`GET /api/plans/{id}/verify`) and an export of the chain a third party can check without
//! the server (`GET /api/plans/{id}/audit.json`, `mapline verify-audit FILE`).
//!
//! Each history entry is stored as one record (a format byte, then postcard) and the chain is
//! SHA-256 over those bytes: an entry's `prev_sha256` is the SHA-256 of the previous entry's
//! stored bytes (32 zero bytes for the first), and it is the last 32 bytes of the entry's own
//! record. The export carries each entry's record in base64 with its hash, so the chain can be
//! re-hashed with nothing but SHA-256; docs/api.md spells out the steps.
//!
//! An entry's JSON is built from its record alone ([`entry_view`]), by the export (with the
//! names of links and members) and by [`check_export`] (with the author's identity only), and
//! compared as whole values: what the JSON claims beyond the record is limited to those names,
//! which no record holds. An export that checks out is consistent with itself, no more;
//! [`check_head`] and [`check_extends`] tie it to a head or an older export kept elsewhere.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mapline_store::{Author, ChangeRecord, GENESIS, HistoryEntry, PlanId, Seq, Store, StoreError};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::App;
use crate::http::error::{ApiError, blocking};
use crate::http::extract::PlanReader;
use crate::http::plan_api::{Labels, change_json, time, wrote_field};
use crate::http::plans::side_name;

/// The export's `format`.
pub const AUDIT_FORMAT: &str = "mapline.audit.v1";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

/// `GET /api/plans/{id}/verify`: the plan's log and hash chain checked by the server.
#[utoipa::path(get, path = "/api/plans/{plan_id}/verify", tag = "plans", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "`{ ok, entries, head, problems }`: the plan's hash chain checked by the server"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn verify(
    State(app): State<Arc<App>>,
    PlanReader { principal, plan_id }: PlanReader,
) -> Result<Json<Value>, ApiError> {
    let internal = crate::http::extract::may_see_internal(&principal);
    // The head comes from the very read that was checked: a head read afterwards could name an
    // entry appended meanwhile that no check saw.
    let report = blocking(&app, move |store| {
        crate::history::verify::verify_plan(store, plan_id)
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
        "head": report.head.map(|h| hex(&h)),
        "problems": problems,
    })))
}

/// Who wrote an entry as far as its record says: kind, share or member id, side. Names, labels
/// and emails are not in the record; the export adds them beside these keys.
fn author_json(author: Author) -> Value {
    match author {
        Author::System => json!({ "kind": "system" }),
        Author::Admin => json!({ "kind": "admin" }),
        Author::Share { id, side } => {
            json!({ "kind": "share", "shareId": id, "side": side_name(side) })
        }
        Author::Member { id, side } => {
            json!({ "kind": "member", "memberId": id, "side": side_name(side) })
        }
    }
}

/// The writer of the other value of a conflict found at `index`: the latest entry before it
/// that carried insertions of Yjs client `client` and wrote the conflict's field (or created
/// its entry), else the latest that carried that client's insertions at all. The same rule as
/// the history API's, over the entries of the export itself, so a checker can recompute it.
fn writer_before<'a>(
    history: &'a [(Seq, HistoryEntry)],
    index: usize,
    client: u64,
    conflict: &ChangeRecord,
) -> Option<(Seq, &'a HistoryEntry)> {
    let mut earlier = history[..index]
        .iter()
        .rev()
        .filter(|(_, e)| e.client_ids.contains(&client));
    let latest = earlier.clone().next();
    earlier
        .find(|(_, e)| wrote_field(e, conflict))
        .or(latest)
        .map(|(seq, e)| (*seq, e))
}

/// The entry at `index` of a plan's whole history (oldest first) as the export shows it —
/// `seq`, `at`, `who`, `changes` (with `kept`/`lost` for conflicts) and `slips`, exactly as
/// `GET /api/plans/{id}/history` shows them — built from the records alone, with `who` giving
/// each author's JSON. The export builds it with names; [`check_export`] builds it with
/// [`author_json`] and compares.
fn entry_view<E>(
    history: &[(Seq, HistoryEntry)],
    index: usize,
    who: &mut impl FnMut(Author) -> Result<Value, E>,
) -> Result<Value, E> {
    let (seq, entry) = &history[index];
    let here_who = who(entry.author)?;
    let at = time(entry.received_at_ms);
    let mut changes = Vec::with_capacity(entry.changes.len());
    for c in &entry.changes {
        let here = json!({ "seq": seq, "who": here_who, "at": at });
        changes.push(change_json(c, here, |client| {
            Ok(match writer_before(history, index, client, c) {
                Some((other_seq, other)) => json!({
                    "seq": other_seq, "who": who(other.author)?, "at": time(other.received_at_ms),
                }),
                None => json!({ "seq": null, "who": null, "at": null }),
            })
        })?);
    }
    let slips: Vec<Value> = entry
        .slips
        .iter()
        .map(|slip| {
            json!({
                "seq": seq,
                "subject": if slip.milestone_id.is_some() { "milestone" } else { "go_live" },
                "milestoneId": slip.milestone_id,
                "title": slip.title,
                "from": slip.from,
                "to": slip.to,
                "days": slip.days,
                "reason": slip.reason,
                "who": here_who,
                "clientIds": entry.client_ids,
                "at": at,
                "kept": slip.kept,
            })
        })
        .collect();
    Ok(json!({
        "seq": seq,
        "at": at,
        "who": here_who,
        "changes": changes,
        "slips": slips,
    }))
}

/// The export of a plan's history chain (see the module docs), from ONE read of its history:
/// every entry, its chain fields and what it shows are taken from the same records.
pub fn export(
    store: &Store,
    plan_id: PlanId,
    now_ms: i64,
    member_emails: bool,
) -> Result<Value, StoreError> {
    let history = store.all_history(plan_id)?;
    let mut labels = Labels::new(store, member_emails);
    let mut who = |author: Author| -> Result<Value, StoreError> {
        let who = labels.who(author)?;
        Ok(serde_json::to_value(who).unwrap_or(Value::Null))
    };
    let mut entries = Vec::with_capacity(history.len());
    for index in 0..history.len() {
        let mut view = entry_view(&history, index, &mut who)?;
        let entry = &history[index].1;
        let bytes = entry.stored_bytes();
        view["prev"] = json!(hex(&entry.prev_sha256));
        view["update"] = json!(hex(&entry.update_sha256));
        view["hash"] = json!(hex(&sha256(&bytes)));
        view["record"] = json!(BASE64.encode(&bytes));
        entries.push(view);
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
#[utoipa::path(get, path = "/api/plans/{plan_id}/audit.json", tag = "exports", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "The plan's history with its hash chain (format mapline.audit.v1)", content_type = "application/json"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn audit_json(
    State(app): State<Arc<App>>,
    PlanReader { principal, plan_id }: PlanReader,
) -> Result<Response, ApiError> {
    let now = crate::now_ms();
    let member_emails = crate::http::plan_api::shows_member_emails(&principal);
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

/// The keys of an export and of each of its entries: anything else is refused.
const EXPORT_KEYS: [&str; 5] = ["format", "planId", "head", "entries", "exportedAt"];
const ENTRY_KEYS: [&str; 9] = [
    "seq", "at", "who", "changes", "slips", "prev", "update", "hash", "record",
];

fn unknown_key<'a>(value: &'a Value, known: &[&str]) -> Option<&'a str> {
    value
        .as_object()?
        .keys()
        .find(|k| !known.contains(&k.as_str()))
        .map(String::as_str)
}

/// Checks a shown `who` against the author the record holds (`expected`, from
/// [`author_json`]): every key of `expected` with its value, plus only the names the server
/// adds (a share link's `label`, a member's `name` and `email`), which are text (or `null`
/// where the server may have none) and are **not** covered by the record.
fn check_who(shown: &Value, expected: &Value) -> Result<(), String> {
    let (Some(shown_fields), Some(expected_fields)) = (shown.as_object(), expected.as_object())
    else {
        return if shown == expected {
            Ok(())
        } else {
            Err("is not the author its record holds".into())
        };
    };
    for (key, value) in expected_fields {
        if shown_fields.get(key) != Some(value) {
            return Err(format!("`{key}` is not the author its record holds"));
        }
    }
    let names: &[&str] = match expected["kind"].as_str() {
        Some("share") => &["label"],
        Some("member") => &["name", "email"],
        _ => &[],
    };
    for (key, value) in shown_fields {
        if expected_fields.contains_key(key) {
            continue;
        }
        if !names.contains(&key.as_str()) {
            return Err(format!("has an unknown key `{key}`"));
        }
        let text = value.is_string() || (key != "email" && value.is_null());
        if !text {
            return Err(format!("`{key}` is not text"));
        }
    }
    Ok(())
}

/// Checks every `who` of a shown part (`changes` or `slips`) against the expected one and
/// gives the shown part with each `who` replaced by the expected one, so the rest can be
/// compared as whole values.
fn with_checked_who(shown: &Value, expected: &Value, item_name: &str) -> Result<Value, String> {
    let mut out = shown.clone();
    let (Some(items), Some(wanted)) = (out.as_array_mut(), expected.as_array()) else {
        return Ok(out);
    };
    if items.len() != wanted.len() {
        return Ok(out);
    }
    for (i, (item, want)) in items.iter_mut().zip(wanted).enumerate() {
        let fix = |slot: &mut Value, want: &Value, what: &str| -> Result<(), String> {
            check_who(slot, want).map_err(|why| format!("{item_name} {i}: {what}`who` {why}"))?;
            *slot = want.clone();
            Ok(())
        };
        if item.get("who").is_some() {
            fix(&mut item["who"], &want["who"], "")?;
        }
        for side in ["kept", "lost"] {
            if item.get(side).and_then(|s| s.get("who")).is_some() && want.get(side).is_some() {
                fix(
                    &mut item[side]["who"],
                    &want[side]["who"],
                    &format!("`{side}`."),
                )?;
            }
        }
    }
    Ok(out)
}

/// Checks one entry of an export against the hash before it and the entries before it (as
/// decoded so far); returns the decoded entry and its hash.
fn check_entry(
    entry: &Value,
    prev: &[u8; 32],
    seq: Seq,
    before: &mut Vec<(Seq, HistoryEntry)>,
) -> Result<[u8; 32], String> {
    if !entry.is_object() {
        return Err("it is not an object".into());
    }
    if let Some(key) = unknown_key(entry, &ENTRY_KEYS) {
        return Err(format!("it has an unknown key `{key}`"));
    }
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
    // Exactly one entry: re-encoding gives the very bytes (nothing left over, nothing encoded
    // two ways), so the hash is over what was decoded and nothing else.
    if stored.stored_bytes() != bytes {
        return Err("its record is not exactly one encoded entry (bytes left over)".into());
    }
    if stored.prev_sha256 != *prev {
        return Err("its record does not commit to the entry before it".into());
    }
    if entry["update"].as_str() != Some(hex(&stored.update_sha256).as_str()) {
        return Err("its `update` is not the update hash its record holds".into());
    }
    before.push((seq, stored));
    let index = before.len() - 1;
    let expected = match entry_view(before, index, &mut |a| {
        Ok::<_, std::convert::Infallible>(author_json(a))
    }) {
        Ok(view) => view,
        Err(never) => match never {},
    };
    if entry["at"] != expected["at"] {
        return Err("its `at` is not the time its record holds".into());
    }
    check_who(&entry["who"], &expected["who"]).map_err(|why| format!("its `who` {why}"))?;
    for (part, item_name) in [("changes", "change"), ("slips", "slip")] {
        let shown = with_checked_who(&entry[part], &expected[part], item_name)
            .map_err(|why| format!("its `{part}`: {why}"))?;
        if shown != expected[part] {
            return Err(format!("its `{part}` are not the ones its record holds"));
        }
    }
    Ok(hash)
}

/// Re-checks an audit export offline: every entry's record hashes to its `hash`, commits to
/// the entry before it, decodes to exactly one entry whose update hash is its `update`, and
/// holds what the entry's JSON shows (time, author, changes, slips, whole values; no unknown
/// keys); `head` is the last hash. Not covered by any hash: `seq` (only required to increase),
/// `planId`, `exportedAt`, and the names beside an author's id (`label`, `name`, `email`).
pub fn check_export(export: &Value) -> ExportCheck {
    let bad = |index: usize, seq: Option<Seq>, reason: String| BadEntry { index, seq, reason };
    let entries = export["entries"].as_array().map_or(&[][..], Vec::as_slice);
    let mut first_bad = None;
    if export["format"].as_str() != Some(AUDIT_FORMAT) {
        first_bad = Some(bad(0, None, format!("the format is not {AUDIT_FORMAT}")));
    } else if !export["entries"].is_array() {
        first_bad = Some(bad(0, None, "it has no `entries` list".into()));
    } else if let Some(key) = unknown_key(export, &EXPORT_KEYS) {
        first_bad = Some(bad(
            0,
            None,
            format!("the export has an unknown key `{key}`"),
        ));
    }
    let mut prev = GENESIS;
    let mut last_seq = 0;
    let mut before = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        if first_bad.is_some() {
            break;
        }
        let seq = entry["seq"].as_u64();
        let Some(this) = seq.filter(|s| *s > last_seq) else {
            first_bad = Some(bad(
                index,
                seq,
                "its `seq` does not follow the one before".into(),
            ));
            break;
        };
        last_seq = this;
        match check_entry(entry, &prev, this, &mut before) {
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

/// Whether a checked export's chain ends at a head obtained elsewhere (from the server's
/// `/verify`, or a copy kept earlier): the export alone proves only that it is consistent with
/// itself, not that it is the plan's history. `trusted` is hex, either case.
pub fn check_head(check: &ExportCheck, trusted: &str) -> Result<(), String> {
    let trusted = trusted.trim().to_ascii_lowercase();
    if trusted.len() != 64 || !trusted.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`{trusted}` is not a SHA-256 in hex (64 digits)"));
    }
    match &check.head {
        Some(head) if *head == trusted => Ok(()),
        Some(head) => Err(format!("its head {head} is not the trusted head {trusted}")),
        None => Err(format!(
            "it has no entries, so no head; trusted head {trusted}"
        )),
    }
}

/// Whether `new` keeps every entry of `old` (an export kept earlier): both must check out on
/// their own, and `old`'s entries must be `new`'s first entries, the same records at the same
/// positions. Since each entry commits to the one before, nothing `old` holds was rewritten,
/// removed or reordered in `new`; `new` only appended.
pub fn check_extends(old: &Value, new: &Value) -> Result<(), String> {
    let old_check = check_export(old);
    if let Some(bad) = &old_check.first_bad {
        let seq = bad.seq.map_or("?".to_owned(), |s| s.to_string());
        return Err(format!(
            "the older export does not check out: entry {} (seq {seq}): {}",
            bad.index, bad.reason
        ));
    }
    let empty = Vec::new();
    let old_entries = old["entries"].as_array().unwrap_or(&empty);
    let new_entries = new["entries"].as_array().unwrap_or(&empty);
    if old_entries.len() > new_entries.len() {
        return Err(format!(
            "the older export has {} entries, this one only {}: entries were removed",
            old_entries.len(),
            new_entries.len()
        ));
    }
    for (index, (was, is)) in old_entries.iter().zip(new_entries).enumerate() {
        if was["hash"] != is["hash"] || was["seq"] != is["seq"] {
            return Err(format!(
                "entry {index} (seq {}) of the older export is not in this one: the chain was rewritten from there",
                was["seq"]
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use mapline_store::{
        ChangeKind, ConflictRecord, DerivedHistory, PlanRecord, Side, SlipRecord, UpdateRecord,
    };
    use uuid::Uuid;

    use super::*;

    const BUYER: Uuid = Uuid::from_u128(0xb);
    const SELLER: Uuid = Uuid::from_u128(0x5);

    fn change(field: &str, kind: ChangeKind, old: &str, new: &str) -> ChangeRecord {
        ChangeRecord {
            entity: "milestones".into(),
            entity_id: Some("m1".into()),
            field: Some(field.into()),
            kind,
            old: Some(old.into()),
            new: Some(new.into()),
            conflict: None,
        }
    }

    fn entry(author: Author, client: u64, at: i64, changes: Vec<ChangeRecord>) -> HistoryEntry {
        HistoryEntry {
            author,
            client_ids: vec![client],
            received_at_ms: at,
            changes,
            slips: Vec::new(),
            update_sha256: [at as u8; 32],
            prev_sha256: GENESIS,
        }
    }

    /// A plan whose history has a creation, a buyer's move with a slip, a seller's concurrent
    /// move that lost (a conflict naming the buyer's entry), and a member's edit.
    fn plan_with_history() -> (tempfile::TempDir, Store, PlanId) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("mapline.redb")).unwrap();
        let plan = Uuid::from_u128(1);
        let record = PlanRecord {
            title: "Rollout".into(),
            buyer_org: "Northwind".into(),
            seller_org: "Mapline".into(),
            go_live: "2027-04-01".into(),
            created_at_ms: 1,
        };
        let first = UpdateRecord {
            author: Author::System,
            client_ids: vec![1],
            received_at_ms: 1,
            update: vec![0, 0],
        };
        store
            .create_plan(plan, &record, &first, &[], &DerivedHistory::none(plan))
            .unwrap();
        let buyer = Author::Share {
            id: BUYER,
            side: Side::Buyer,
        };
        let seller = Author::Share {
            id: SELLER,
            side: Side::Seller,
        };
        let mut moved = entry(
            buyer,
            20,
            2_000,
            vec![change(
                "due",
                ChangeKind::Updated,
                "\"2027-01-01\"",
                "\"2027-01-08\"",
            )],
        );
        moved.slips.push(SlipRecord {
            milestone_id: Some("m1".into()),
            title: Some("Security review".into()),
            from: "2027-01-01".into(),
            to: Some("2027-01-08".into()),
            days: Some(7),
            reason: None,
            kept: true,
        });
        let mut lost = change(
            "due",
            ChangeKind::Conflict,
            "\"2027-01-15\"",
            "\"2027-01-08\"",
        );
        lost.conflict = Some(ConflictRecord {
            kept_client: 20,
            lost_client: 30,
            lost_here: true,
        });
        let mut entries = vec![
            (
                1,
                entry(
                    Author::System,
                    1,
                    1_000,
                    vec![ChangeRecord {
                        field: None,
                        old: None,
                        kind: ChangeKind::Created,
                        ..change("", ChangeKind::Created, "", "{}")
                    }],
                ),
            ),
            (2, moved),
            (3, entry(seller, 30, 3_000, vec![lost])),
            (
                5,
                entry(
                    Author::Member {
                        id: Uuid::from_u128(0x77),
                        side: Side::Seller,
                    },
                    40,
                    5_000,
                    vec![change("title", ChangeKind::Updated, "\"A\"", "\"B\"")],
                ),
            ),
        ];
        let mut prev = GENESIS;
        for (_, e) in &mut entries {
            e.prev_sha256 = prev;
            prev = sha256(&e.stored_bytes());
        }
        store
            .commit_history(&[DerivedHistory {
                plan_id: plan,
                entries,
                through: 5,
                summary: None,
            }])
            .unwrap();
        (dir, store, plan)
    }

    #[test]
    fn the_export_shows_each_entry_as_the_history_api_does_and_checks_out() {
        let (_dir, store, plan) = plan_with_history();
        let export = export(&store, plan, 9_000, true).unwrap();
        let (mut history, _) =
            crate::http::plan_api::history_page(&store, plan, None, usize::MAX, true).unwrap();
        history.reverse();
        let entries = export["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 4);
        for (exported, shown) in entries.iter().zip(&history) {
            for key in ["seq", "at", "who", "changes", "slips"] {
                assert_eq!(exported[key], shown[key], "{key} of seq {}", shown["seq"]);
            }
        }
        // The conflict names the buyer's entry as the kept writer.
        let conflict = &entries[2]["changes"][0];
        assert_eq!(conflict["kept"]["seq"], 2);
        assert_eq!(conflict["kept"]["who"]["shareId"], json!(BUYER));
        assert_eq!(conflict["lost"]["who"]["shareId"], json!(SELLER));
        let check = check_export(&export);
        assert_eq!(check.first_bad, None);
        assert_eq!(
            check.head.as_ref(),
            export["head"].as_str().map(str::to_owned).as_ref()
        );
    }

    /// The reason the first bad entry gives after `forge` edits the export.
    fn refused(forge: impl FnOnce(&mut Value)) -> Option<(usize, String)> {
        let (_dir, store, plan) = plan_with_history();
        let mut export = export(&store, plan, 9_000, true).unwrap();
        forge(&mut export);
        check_export(&export)
            .first_bad
            .map(|bad| (bad.index, bad.reason))
    }

    #[test]
    fn a_conflict_naming_another_writer_is_refused() {
        // The kept value claimed for the seller, the lost one for the buyer.
        let found = refused(|e| {
            e["entries"][2]["changes"][0]["kept"]["who"]["shareId"] = json!(SELLER);
        });
        assert_eq!(
            found,
            Some((2, "its `changes`: change 0: `kept`.`who` `shareId` is not the author its record holds".into()))
        );
        let found =
            refused(|e| e["entries"][2]["changes"][0]["lost"]["who"]["side"] = json!("buyer"));
        assert!(found.is_some_and(|(i, why)| i == 2 && why.contains("`lost`.`who` `side`")));
        let found = refused(|e| e["entries"][2]["changes"][0]["kept"]["seq"] = json!(1));
        assert_eq!(
            found,
            Some((2, "its `changes` are not the ones its record holds".into()))
        );
    }

    #[test]
    fn values_of_another_type_and_unknown_keys_are_refused() {
        let changes = "its `changes` are not the ones its record holds";
        for (forge, at, why) in [
            (
                Box::new(|e: &mut Value| e["entries"][0]["changes"][0]["field"] = json!(7))
                    as Box<dyn FnOnce(&mut Value)>,
                0,
                changes,
            ),
            (
                Box::new(|e: &mut Value| e["entries"][0]["changes"][0]["old"] = json!(false)),
                0,
                changes,
            ),
            (
                Box::new(|e: &mut Value| e["entries"][1]["slips"][0]["reason"] = json!(["x"])),
                1,
                "its `slips` are not the ones its record holds",
            ),
            (
                Box::new(|e: &mut Value| e["entries"][1]["slips"][0]["title"] = json!("Other")),
                1,
                "its `slips` are not the ones its record holds",
            ),
            (
                Box::new(|e: &mut Value| e["entries"][3]["changes"][0]["extra"] = json!(1)),
                3,
                changes,
            ),
            (
                Box::new(|e: &mut Value| e["entries"][3]["who"]["name"] = json!(3)),
                3,
                "its `who` `name` is not text",
            ),
            (
                Box::new(|e: &mut Value| e["entries"][3]["who"]["memberId"] = json!(BUYER)),
                3,
                "its `who` `memberId` is not the author its record holds",
            ),
            (
                Box::new(|e: &mut Value| e["entries"][1]["update"] = json!("00")),
                1,
                "its `update` is not the update hash its record holds",
            ),
        ] {
            assert_eq!(refused(forge), Some((at, why.to_owned())), "{why}");
        }
        // A name the server adds is free text: not covered by the record.
        assert_eq!(
            refused(|e| e["entries"][3]["who"]["name"] = json!("Anyone")),
            None
        );
    }

    #[test]
    fn a_record_with_bytes_left_over_is_refused() {
        // The real record followed by its own prev hash again: it still decodes (postcard stops
        // at the end of the entry), still ends with the prev hash and is rehashed, so the chain
        // links — but the hash is over bytes that are not the entry alone.
        let found = refused(|e| {
            let entry = &mut e["entries"].as_array_mut().unwrap()[0];
            let mut bytes = BASE64.decode(entry["record"].as_str().unwrap()).unwrap();
            bytes.extend_from_slice(&GENESIS);
            entry["record"] = json!(BASE64.encode(&bytes));
            entry["hash"] = json!(hex(&sha256(&bytes)));
            e["entries"][1]["prev"] = json!(hex(&sha256(&bytes)));
        });
        assert_eq!(
            found,
            Some((
                0,
                "its record is not exactly one encoded entry (bytes left over)".into()
            ))
        );
    }
}
