//! A plan's own routes: creating one, and the read side — the projected plan (now or as it
//! was), its slips, its change history, its health, and the templates. A share reads only its
//! own plan; admin reads all.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, NaiveDate, Utc};
use mapline_plan::{Activity, Health, NewPlan, Plan, SlipFact, SlipSide, TEMPLATES};
use mapline_store::{
    Author, ChangeKind, ChangeRecord, DocRef, HistoryEntry, LogBound, PlanId, PlanRecord, Seq,
    ShareId, Side, Store, StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::App;
use crate::clock::now_ms;
use crate::history;
use crate::http::error::{ApiError, blocking};
use crate::http::extract::{ApiJson, Caller, authenticate, authorize_read, bad_query, query};
use crate::http::plans::{self, side_name};
use crate::identity::auth::Principal;

/// Most history entries one page may ask for.
pub const MAX_HISTORY_PAGE: usize = 500;
/// History entries per page unless asked otherwise.
pub const DEFAULT_HISTORY_PAGE: usize = 50;

/// Authenticates the caller and checks it may read the plan (which must exist).
async fn reader(app: &Arc<App>, headers: &HeaderMap, raw_id: &str) -> Result<PlanId, ApiError> {
    let principal = authenticate(app, headers, None).await?;
    authorize_read(app, &principal, raw_id).await
}

/// The plan as its room holds it now (loaded if needed), and the log position that is.
pub(crate) async fn current_plan(app: &Arc<App>, plan_id: PlanId) -> Result<(Plan, Seq), ApiError> {
    let room = app
        .rooms
        .open(DocRef::plan(plan_id))
        .await
        .map_err(ApiError::internal)?;
    Ok(room.projection())
}

pub(crate) fn time(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.to_rfc3339())
}

/// Parses a time given as RFC 3339 or as a date (midnight UTC at its start).
fn parse_time(text: &str) -> Option<i64> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp_millis());
    }
    mapline_plan::parse_date(text)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

#[derive(Deserialize)]
pub struct PlanQuery {
    /// An RFC 3339 time, or a log position (a whole number).
    at: Option<String>,
}

/// `GET /api/plans/{id}`: the projected plan, or with `?at=` the plan as it was then.
#[utoipa::path(get, path = "/api/plans/{plan_id}", tag = "plans", params(("plan_id" = String, Path, description = "The plan's id (UUID)"), ("at" = Option<String>, Query, description = "A log position, an RFC 3339 time or a date")), responses((status = 200, description = "`{ id, seq, plan }`: the projected plan"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn get_plan(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    params: Result<Query<PlanQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let principal = authenticate(&app, &headers, None).await?;
    let plan_id = authorize_read(&app, &principal, &raw_id).await?;
    let Some(at) = params.at else {
        let (plan, seq) = current_plan(&app, plan_id).await?;
        // Seller links and the admin get the seller's judgments of each stakeholder; a buyer
        // link's plan has no such keys at all.
        let plan = crate::http::judgments::plan_for(&app, &principal, plan_id, &plan).await?;
        return Ok(Json(json!({ "id": plan_id, "seq": seq, "plan": plan })));
    };
    // A past position is the plan document's projection alone: it never reads a v1
    // document's shared judgments, and the internal document's past is not served here.
    let bound = if !at.is_empty() && at.bytes().all(|b| b.is_ascii_digit()) {
        LogBound::Seq(
            at.parse()
                .map_err(|_| bad_query("`at` is too large a log position"))?,
        )
    } else {
        LogBound::ReceivedBy(parse_time(&at).ok_or_else(|| {
            bad_query(format!(
                "`at` must be an RFC 3339 time, a date or a log position, got {at:?}"
            ))
        })?)
    };
    let found = blocking(&app, move |store| history::plan_at(store, plan_id, bound)).await?;
    let Some((plan, seq, received_at_ms)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_yet_created",
            "the plan did not exist yet at that point",
        ));
    };
    Ok(Json(json!({
        "id": plan_id,
        "seq": seq,
        "asOf": time(received_at_ms),
        "plan": plan,
    })))
}

/// Who made a change, as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Who {
    Share {
        #[serde(rename = "shareId")]
        share_id: ShareId,
        label: Option<String>,
        side: &'static str,
    },
    Admin,
    System,
    /// A signed-in member of the seller team.
    Member {
        #[serde(rename = "memberId")]
        member_id: mapline_store::MemberId,
        name: Option<String>,
        /// Left out for buyer links: a seller's work address is the seller's to share.
        #[serde(skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        side: &'static str,
    },
}

/// Resolves share labels once per request.
pub(crate) struct Labels<'a> {
    store: &'a Store,
    known: HashMap<ShareId, Option<String>>,
    members: HashMap<mapline_store::MemberId, Option<(String, String)>>,
    /// Whether members are named with their email (not for buyer links).
    member_emails: bool,
}

/// Whether a reader sees seller members' emails in `who`: everyone but buyer links.
pub(crate) fn shows_member_emails(principal: &Principal) -> bool {
    !matches!(principal, Principal::Share(share) if share.side == Side::Buyer)
}

impl<'a> Labels<'a> {
    /// Labels for a reader who sees members' emails or not ([`shows_member_emails`]).
    pub(crate) fn new(store: &'a Store, member_emails: bool) -> Self {
        Self {
            store,
            known: HashMap::new(),
            members: HashMap::new(),
            member_emails,
        }
    }

    pub(crate) fn who(&mut self, author: Author) -> Result<Who, StoreError> {
        Ok(match author {
            Author::System => Who::System,
            Author::Admin => Who::Admin,
            Author::Member { id, side } => {
                let found = match self.members.get(&id) {
                    Some(found) => found.clone(),
                    None => {
                        let found = self.store.member(id)?.map(|m| (m.name, m.email));
                        self.members.insert(id, found.clone());
                        found
                    }
                };
                let (name, email) = found.unzip();
                let email = email.filter(|_| self.member_emails);
                Who::Member {
                    member_id: id,
                    name,
                    email,
                    side: side_name(side),
                }
            }
            Author::Share { id, side } => {
                let label = match self.known.get(&id) {
                    Some(label) => label.clone(),
                    None => {
                        let label = self.store.share(id)?.map(|s| s.label);
                        self.known.insert(id, label.clone());
                        label
                    }
                };
                Who::Share {
                    share_id: id,
                    label,
                    side: side_name(side),
                }
            }
        })
    }
}

/// A slip as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SlipView {
    seq: Seq,
    /// `milestone` or `go_live`.
    subject: &'static str,
    pub(crate) milestone_id: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) from: String,
    pub(crate) to: Option<String>,
    pub(crate) days: Option<i64>,
    pub(crate) reason: Option<String>,
    pub(crate) who: Who,
    client_ids: Vec<u64>,
    pub(crate) at: Option<String>,
    /// `false` for a move that lost to a concurrent move of the same date: recorded as it
    /// arrived, or found later when a move made without seeing it replaced it.
    pub(crate) kept: bool,
}

fn slip_views(
    labels: &mut Labels<'_>,
    entries: Vec<(Seq, HistoryEntry)>,
) -> Result<Vec<SlipView>, StoreError> {
    let mut out: Vec<SlipView> = Vec::new();
    for (seq, entry) in entries {
        let who = labels.who(entry.author)?;
        // A move this update replaced without having seen it is no longer the plan's date.
        for change in &entry.changes {
            let Some(conflict) = change.conflict.filter(|c| !c.lost_here) else {
                continue;
            };
            let milestone = match (change.entity.as_str(), change.field.as_deref()) {
                ("milestones", Some("due")) => change.entity_id.clone(),
                ("meta", Some("goLive")) => None,
                _ => continue,
            };
            let lost = change.old.as_deref().map(json_value);
            if let Some(earlier) = out.iter_mut().rev().find(|view| {
                view.milestone_id == milestone
                    && view.kept
                    && view.to.clone().map(Value::String) == lost
                    && view.client_ids.contains(&conflict.lost_client)
            }) {
                earlier.kept = false;
            }
        }
        for slip in entry.slips {
            out.push(SlipView {
                seq,
                subject: if slip.milestone_id.is_some() {
                    "milestone"
                } else {
                    "go_live"
                },
                milestone_id: slip.milestone_id,
                title: slip.title,
                from: slip.from,
                to: slip.to,
                days: slip.days,
                reason: slip.reason,
                who: who.clone(),
                client_ids: entry.client_ids.clone(),
                at: time(entry.received_at_ms),
                kept: slip.kept,
            });
        }
    }
    Ok(out)
}

/// Every slip of a plan, oldest first, as the API shows it (for the exports).
pub(crate) fn all_slips(
    store: &Store,
    plan_id: PlanId,
    member_emails: bool,
) -> Result<Vec<SlipView>, StoreError> {
    slip_views(
        &mut Labels::new(store, member_emails),
        store.slip_entries(plan_id)?,
    )
}

#[derive(Deserialize)]
pub struct SlipQuery {
    /// A milestone id, or `goLive` for go-live moves.
    milestone: Option<String>,
    /// `buyer` or `seller`: slips made through that side's share links.
    side: Option<String>,
    /// RFC 3339 time or date: slips recorded at or after it.
    since: Option<String>,
}

/// `GET /api/plans/{id}/slips`: every moved date, oldest first.
#[utoipa::path(get, path = "/api/plans/{plan_id}/slips", tag = "plans", params(("plan_id" = String, Path, description = "The plan's id (UUID)"), ("milestone" = Option<String>, Query), ("side" = Option<String>, Query), ("since" = Option<String>, Query)), responses((status = 200, description = "`{ slips }`: every moved date, oldest first"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn get_slips(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    params: Result<Query<SlipQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let side = match params.side.as_deref() {
        None => None,
        Some("buyer") => Some(Side::Buyer),
        Some("seller") => Some(Side::Seller),
        Some(other) => {
            return Err(bad_query(format!(
                "`side` must be buyer or seller, got {other:?}"
            )));
        }
    };
    let since = match params.since.as_deref() {
        None => None,
        Some(text) => Some(parse_time(text).ok_or_else(|| {
            bad_query(format!(
                "`since` must be an RFC 3339 time or a date, got {text:?}"
            ))
        })?),
    };
    let principal = authenticate(&app, &headers, None).await?;
    let plan_id = authorize_read(&app, &principal, &raw_id).await?;
    let member_emails = shows_member_emails(&principal);
    let milestone = params.milestone;
    let slips = blocking(&app, move |store| {
        let entries = store
            .slip_entries(plan_id)?
            .into_iter()
            .filter(|(_, e)| since.is_none_or(|at| e.received_at_ms >= at))
            .filter(|(_, e)| {
                side.is_none_or(
                    |wanted| matches!(e.author, Author::Share { side, .. } | Author::Member { side, .. } if side == wanted),
                )
            })
            .collect();
        let mut views = slip_views(&mut Labels::new(store, member_emails), entries)?;
        if let Some(wanted) = &milestone {
            views.retain(|v| match &v.milestone_id {
                Some(id) => id == wanted,
                None => wanted == "goLive",
            });
        }
        Ok(views)
    })
    .await?;
    Ok(Json(json!({ "slips": slips })))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    limit: Option<usize>,
    /// Log position: entries before it (the previous page's `nextBefore`).
    before: Option<Seq>,
}

/// `GET /api/plans/{id}/history`: who changed what and when, newest first, paged.
#[utoipa::path(get, path = "/api/plans/{plan_id}/history", tag = "plans", params(("plan_id" = String, Path, description = "The plan's id (UUID)"), ("limit" = Option<usize>, Query), ("before" = Option<u64>, Query)), responses((status = 200, description = "`{ entries, nextBefore }`: who changed what, newest first"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn get_history(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    params: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let limit = params.limit.unwrap_or(DEFAULT_HISTORY_PAGE);
    if !(1..=MAX_HISTORY_PAGE).contains(&limit) {
        return Err(bad_query(format!(
            "`limit` must be between 1 and {MAX_HISTORY_PAGE}"
        )));
    }
    let principal = authenticate(&app, &headers, None).await?;
    let plan_id = authorize_read(&app, &principal, &raw_id).await?;
    let member_emails = shows_member_emails(&principal);
    let before = params.before;
    let (entries, next_before) = blocking(&app, move |store| {
        history_page(store, plan_id, before, limit, member_emails)
    })
    .await?;
    Ok(Json(
        json!({ "entries": entries, "nextBefore": next_before }),
    ))
}

/// A page of a plan's history as the API shows it, newest first, and the `nextBefore` of the
/// next page. `limit: usize::MAX` gives the whole history (the JSON export).
pub(crate) fn history_page(
    store: &Store,
    plan_id: PlanId,
    before: Option<Seq>,
    limit: usize,
    member_emails: bool,
) -> Result<(Vec<Value>, Option<Seq>), StoreError> {
    let page = store.history(plan_id, before, limit)?;
    let next_before = (page.len() == limit)
        .then(|| page.last().map(|(seq, _)| *seq))
        .flatten();
    let mut labels = Labels::new(store, member_emails);
    let mut entries = Vec::with_capacity(page.len());
    for (seq, entry) in page {
        let who = labels.who(entry.author)?;
        let mut changes: Vec<Value> = Vec::with_capacity(entry.changes.len());
        let at_ms = entry.received_at_ms;
        for c in &entry.changes {
            changes.push(change_json(
                c,
                json!({ "seq": seq, "who": who, "at": time(at_ms) }),
                |client| {
                    Ok::<_, StoreError>(match writer_before(store, plan_id, seq, client, c)? {
                        Some((other_seq, author, at_ms)) => json!({
                            "seq": other_seq, "who": labels.who(author)?, "at": time(at_ms),
                        }),
                        None => json!({ "seq": null, "who": null, "at": null }),
                    })
                },
            )?);
        }
        let at = time(entry.received_at_ms);
        let client_ids = entry.client_ids.clone();
        let slips = slip_views(&mut labels, vec![(seq, entry)])?;
        entries.push(json!({
            "seq": seq,
            "at": at,
            "who": who,
            "clientIds": client_ids,
            "changes": changes,
            "slips": slips,
        }));
    }
    Ok((entries, next_before))
}

/// One change of a history entry as the API (and the audit export) shows it. `here` is
/// `{ seq, who, at }` of the entry it belongs to; for a conflict, `other` gives the same for the
/// other side's writer, found from the Yjs client that wrote it.
pub(crate) fn change_json<E>(
    c: &ChangeRecord,
    here: Value,
    other: impl FnOnce(u64) -> Result<Value, E>,
) -> Result<Value, E> {
    let mut change = json!({
        "entity": c.entity,
        "entityId": c.entity_id,
        "field": c.field,
        "kind": match c.kind {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Conflict => "conflict",
        },
        "old": c.old.as_deref().map(json_value),
        "new": c.new.as_deref().map(json_value),
    });
    if let Some(conflict) = c.conflict {
        let other = other(if conflict.lost_here {
            conflict.kept_client
        } else {
            conflict.lost_client
        })?;
        let (mut kept, mut lost) = if conflict.lost_here {
            (other, here)
        } else {
            (here, other)
        };
        kept["value"] = change["new"].clone();
        kept["clientId"] = json!(conflict.kept_client);
        lost["value"] = change["old"].clone();
        lost["clientId"] = json!(conflict.lost_client);
        change["kept"] = kept;
        change["lost"] = lost;
    }
    Ok(change)
}

/// Whether a history entry wrote the field a conflict is about (or created or deleted its
/// entry): the writer of the conflict's other side.
pub(crate) fn wrote_field(entry: &HistoryEntry, conflict: &ChangeRecord) -> bool {
    entry.changes.iter().any(|c| {
        c.entity == conflict.entity
            && c.entity_id == conflict.entity_id
            && (c.field == conflict.field || c.field.is_none())
            && c.kind != ChangeKind::Conflict
    })
}

/// Who wrote the other value of a conflict, and when it arrived: the latest history entry
/// before `seq` that carried insertions of Yjs client `client` and wrote the conflict's field
/// (or created its entry), else the latest that carried that client's insertions at all.
fn writer_before(
    store: &Store,
    plan_id: PlanId,
    seq: Seq,
    client: u64,
    conflict: &ChangeRecord,
) -> Result<Option<(Seq, Author, i64)>, StoreError> {
    const PAGE: usize = 256;
    let mut fallback = None;
    let mut before = Some(seq);
    while let Some(bound) = before {
        let page = store.history(plan_id, Some(bound), PAGE)?;
        for (found, entry) in page.iter().filter(|(_, e)| e.client_ids.contains(&client)) {
            let writer = (*found, entry.author, entry.received_at_ms);
            if wrote_field(entry, conflict) {
                return Ok(Some(writer));
            }
            fallback.get_or_insert(writer);
        }
        before = (page.len() == PAGE)
            .then(|| page.last().map(|(s, _)| *s))
            .flatten();
    }
    Ok(fallback)
}

fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

#[derive(Deserialize)]
pub struct HealthQuery {
    /// `YYYY-MM-DD`; the server's date (UTC) if absent.
    today: Option<String>,
}

fn today(param: Option<&str>) -> Result<NaiveDate, ApiError> {
    match param {
        None => Ok(Utc::now().date_naive()),
        Some(text) => mapline_plan::parse_date(text)
            .ok_or_else(|| bad_query(format!("`today` must be YYYY-MM-DD, got {text:?}"))),
    }
}

/// A plan's health from its projection and what the store knows of its activity.
pub fn plan_health(
    store: &Store,
    plan_id: PlanId,
    record: &PlanRecord,
    plan: &Plan,
    today: NaiveDate,
) -> Result<Health, StoreError> {
    let slips: Vec<SlipFact> = store
        .slip_entries(plan_id)?
        .into_iter()
        .flat_map(|(_, entry)| {
            let side = match entry.author {
                Author::Share {
                    side: Side::Buyer, ..
                }
                | Author::Member {
                    side: Side::Buyer, ..
                } => SlipSide::Buyer,
                Author::Share {
                    side: Side::Seller, ..
                }
                | Author::Member {
                    side: Side::Seller, ..
                } => SlipSide::Seller,
                Author::Admin | Author::System => SlipSide::Other,
            };
            // A move that lost to a concurrent one never moved the plan's date.
            entry
                .slips
                .into_iter()
                .filter(|s| s.kept)
                .map(move |s| SlipFact { side, days: s.days })
        })
        .collect();
    let last_update = store
        .last_update(plan_id)?
        .and_then(|(_, at)| DateTime::<Utc>::from_timestamp_millis(at))
        .map(|t| t.date_naive());
    let activity = Activity {
        original_go_live: mapline_plan::parse_date(&record.go_live),
        last_update,
        slips: &slips,
    };
    Ok(mapline_plan::health(plan, today, &activity))
}

/// `GET /api/plans/{id}/health`: the full health of one plan.
#[utoipa::path(get, path = "/api/plans/{plan_id}/health", tag = "plans", params(("plan_id" = String, Path, description = "The plan's id (UUID)"), ("today" = Option<String>, Query)), responses((status = 200, description = "`{ id, health }`"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn get_health(
    State(app): State<Arc<App>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    params: Result<Query<HealthQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let today = today(params.today.as_deref())?;
    let plan_id = reader(&app, &headers, &raw_id).await?;
    let (plan, _) = current_plan(&app, plan_id).await?;
    let health = blocking(&app, move |store| {
        let record = store
            .plan(plan_id)?
            .ok_or(StoreError::NoSuchPlan(plan_id))?;
        plan_health(store, plan_id, &record, &plan, today)
    })
    .await?;
    Ok(Json(json!({ "id": plan_id, "health": health })))
}

/// `GET /api/templates`: the built-in templates (public: they hold no plan data).
#[utoipa::path(get, path = "/api/templates", tag = "plans", security(()), responses((status = 200, description = "`{ templates }`: the built-in plan templates")))]
pub async fn list_templates() -> Json<Value> {
    Json(json!({ "templates": TEMPLATES }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatePlanBody {
    title: String,
    buyer_org: String,
    seller_org: String,
    go_live: String,
    /// An id chosen by the caller (e.g. derived from a CRM deal), making creation idempotent.
    #[serde(default)]
    id: Option<Uuid>,
    /// A built-in template (`GET /api/templates`): its milestones are dated back from go-live.
    #[serde(default)]
    template: Option<String>,
}

#[utoipa::path(post, path = "/api/plans", tag = "plans", request_body = CreatePlanBody, responses((status = 201, description = "`{ id, shares }`: the plan's id and a seller and a buyer link"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody), (status = "5XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn create_plan(
    State(app): State<Arc<App>>,
    Caller(principal): Caller,
    body: Result<ApiJson<CreatePlanBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    // The admin credential (automation) or any member, who then owns the plan.
    if matches!(principal, Principal::Share(_)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_only",
            "creating a plan needs the admin credential or a signed-in member",
        ));
    }
    let ApiJson(body) = body?;
    let plan = NewPlan::parse(
        &body.title,
        &body.buyer_org,
        &body.seller_org,
        &body.go_live,
    )
    .and_then(|plan| match body.template.as_deref() {
        Some(template) => plan.with_template(template),
        None => Ok(plan),
    })
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    let id = body.id.unwrap_or_else(Uuid::now_v7);
    let first_update = mapline_plan::new_plan_update(&plan, plans::server_client_id());
    let store = app.store.clone();
    let shares = tokio::task::spawn_blocking(move || {
        plans::create_plan(&store, id, &plan, first_update, now_ms())
    })
    .await
    .map_err(ApiError::internal)??;
    if let Some(owner) = principal.member() {
        let owner = owner.member.id;
        blocking(&app, move |store| {
            store.add_plan_member(
                id,
                owner,
                mapline_store::PlanMemberRecord {
                    role: mapline_store::PlanMemberRole::Owner,
                    added_at_ms: now_ms(),
                },
            )
        })
        .await?;
    }
    tracing::info!(plan_id = %id, owner = ?principal.member().map(|m| m.member.id), "plan created");
    let public_url = app.config.public_url.as_deref();
    let shares: Vec<_> = shares.iter().map(|s| s.view(public_url)).collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "shares": shares })),
    ))
}
