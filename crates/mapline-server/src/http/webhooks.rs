//! Signed webhooks with a persistent outbox.
//!
//! Events come from the stored history, not from the live path: a worker reads each plan's
//! history after its event cursor, turns entries into events (`milestone.slipped`,
//! `milestone.completed`, `plan.golive_changed`), and queues one delivery per matching
//! subscription in the same transaction that advances the cursor. History is derived exactly
//! once per update and re-derived after a crash, so every event is queued exactly once and
//! survives restarts. `milestone.overdue` comes from a periodic scan (once per milestone and due
//! date), `share.revoked` from the revocation. Deliveries are POSTed with an HMAC-SHA256
//! signature over `{timestamp}.{body}`, retried with exponential backoff, and logged. Every URL
//! goes through [`crate::outbound`]'s guard, at subscription and again at each delivery.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use mapline_store::{
    AttemptRecord, Author, ChangeKind, DeliveryRecord, HistoryEntry, PlanId, Seq, Store,
    StoreError, WebhookRecord,
};
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::App;
use crate::clock::now_ms;
use crate::http::error::{ApiError, blocking};
use crate::http::extract::{Admin, ApiJson};
use crate::outbound::{Guard, OutboundError, Policy, Refusal};

/// The events a subscription can ask for.
pub const EVENTS: [&str; 5] = [
    "milestone.slipped",
    "milestone.completed",
    "milestone.overdue",
    "plan.golive_changed",
    "share.revoked",
];

/// Attempts before a delivery is given up (about 17 minutes of backoff in all).
const MAX_ATTEMPTS: u32 = 10;
/// How often the worker looks for new events and due deliveries.
const TICK: Duration = Duration::from_millis(200);
/// How often overdue milestones are looked for.
const OVERDUE_EVERY: Duration = Duration::from_secs(2);

fn time(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339())
}

/// The signature header value for a body sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

fn who(store: &Store, author: Author) -> Value {
    match author {
        Author::Share { id, side } => {
            let label = store.share(id).ok().flatten().map(|s| s.label);
            json!({ "kind": "share", "shareId": id, "label": label,
                "side": crate::http::plans::side_name(side) })
        }
        Author::Member { id, side } => {
            let member = store.member(id).ok().flatten();
            json!({ "kind": "member", "memberId": id,
                "name": member.as_ref().map(|m| m.name.clone()),
                "email": member.as_ref().map(|m| m.email.clone()),
                "side": crate::http::plans::side_name(side) })
        }
        Author::Admin => json!({ "kind": "admin" }),
        Author::System => json!({ "kind": "system" }),
    }
}

/// The events one history entry holds.
fn entry_events(
    store: &Store,
    plan: PlanId,
    seq: Seq,
    entry: &HistoryEntry,
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let by = who(store, entry.author);
    let at = time(entry.received_at_ms);
    // A move that lost to a concurrent one moved nothing: no event (it is in /slips as not
    // kept, and in /history as a conflict).
    for (n, slip) in entry.slips.iter().enumerate().filter(|(_, slip)| slip.kept) {
        let data = json!({ "from": slip.from, "to": slip.to, "days": slip.days, "reason": slip.reason,
            "who": by, "side": by.get("side"), "at": at });
        match &slip.milestone_id {
            Some(id) => {
                let mut data = data;
                data["milestoneId"] = json!(id);
                data["title"] = json!(slip.title);
                out.push((
                    "milestone.slipped".to_owned(),
                    event(plan, &format!("{seq}.s{n}"), "milestone.slipped", data),
                ));
            }
            None => out.push((
                "plan.golive_changed".to_owned(),
                event(plan, &format!("{seq}.s{n}"), "plan.golive_changed", data),
            )),
        }
    }
    for (n, change) in entry.changes.iter().enumerate() {
        if change.kind == ChangeKind::Updated
            && change.entity == "milestones"
            && change.field.as_deref() == Some("status")
            && change.new.as_deref() == Some("\"done\"")
        {
            let data = json!({ "milestoneId": change.entity_id, "who": by, "at": at });
            out.push((
                "milestone.completed".to_owned(),
                event(plan, &format!("{seq}.c{n}"), "milestone.completed", data),
            ));
        }
    }
    out
}

fn event(plan: PlanId, key: &str, name: &str, data: Value) -> Value {
    json!({ "id": format!("{plan}.{key}"), "event": name, "planId": plan, "data": data })
}

fn deliveries(
    hooks: &[WebhookRecord],
    plan: PlanId,
    events: Vec<(String, Value)>,
    now: i64,
) -> Vec<DeliveryRecord> {
    let mut out = Vec::new();
    for (name, body) in events {
        for hook in hooks.iter().filter(|h| h.wants(plan, &name)) {
            out.push(DeliveryRecord {
                webhook: hook.id,
                event: name.clone(),
                body: body.to_string(),
                attempts: 0,
                next_attempt_ms: now,
                created_at_ms: now,
            });
        }
    }
    out
}

/// Queues the events of history stored since the last look, for every plan. Blocks.
fn queue_history_events(store: &Store) -> Result<(), StoreError> {
    let queued = queue_new_history(store);
    if queued.is_err() {
        // The plans just taken were not queued: look at every plan next time.
        store.rescan_history();
    }
    queued
}

fn queue_new_history(store: &Store) -> Result<(), StoreError> {
    let plans = store.plans_with_new_history()?;
    if plans.is_empty() {
        return Ok(());
    }
    let hooks = store.webhooks()?;
    let mut batch = Vec::with_capacity(plans.len());
    for (plan, derived) in plans {
        // Without subscriptions nothing is read: the cursors just follow the history.
        if hooks.is_empty() {
            batch.push((plan, derived, Vec::new()));
            continue;
        }
        let (through, entries) = store.history_after_cursor(plan)?;
        let events = entries
            .iter()
            .flat_map(|(seq, entry)| entry_events(store, plan, *seq, entry))
            .collect();
        batch.push((plan, through, deliveries(&hooks, plan, events, now_ms())));
    }
    store.queue_history_batch(&batch)
}

/// Queues `milestone.overdue` once per milestone and due date. Blocks.
fn queue_overdue(store: &Store, today: chrono::NaiveDate) -> Result<(), StoreError> {
    let hooks: Vec<_> = store
        .webhooks()?
        .into_iter()
        .filter(|h| h.events.is_empty() || h.events.iter().any(|e| e == "milestone.overdue"))
        .collect();
    if hooks.is_empty() {
        return Ok(());
    }
    for (plan_id, _) in store.plans()? {
        if !hooks.iter().any(|h| h.plan.is_none_or(|p| p == plan_id)) {
            continue;
        }
        let plan = crate::history::project_stored(store, plan_id)?;
        let sent = store.overdue_sent(plan_id)?;
        let mut marks = Vec::new();
        let mut events = Vec::new();
        for m in plan.milestones.iter().filter(|m| m.is_open()) {
            let Some(due) = m.due.filter(|d| *d < today) else {
                continue;
            };
            let due_text = mapline_plan::format_date(due);
            if sent.iter().any(|(id, d)| *id == m.id && *d == due_text) {
                continue;
            }
            let data = json!({ "milestoneId": m.id, "title": m.title, "due": due_text,
                "daysLate": (today - due).num_days(), "owner": m.owner.as_ref().map(|o| &o.name) });
            events.push((
                "milestone.overdue".to_owned(),
                event(
                    plan_id,
                    &format!("overdue.{}.{due_text}", m.id),
                    "milestone.overdue",
                    data,
                ),
            ));
            marks.push((m.id.clone(), due_text));
        }
        if !marks.is_empty() {
            store.queue_deliveries(
                plan_id,
                None,
                &marks,
                &deliveries(&hooks, plan_id, events, now_ms()),
            )?;
        }
    }
    Ok(())
}

/// Queues an event that does not come from history (`share.revoked`). Blocks.
pub(crate) fn queue_event(
    store: &Store,
    plan: PlanId,
    name: &str,
    key: &str,
    data: Value,
) -> Result<(), StoreError> {
    let hooks = store.webhooks()?;
    let events = vec![(name.to_owned(), event(plan, key, name, data))];
    store.queue_deliveries(plan, None, &[], &deliveries(&hooks, plan, events, now_ms()))
}

/// Requests take at most this long, the name lookup included.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The gate every delivery goes through (and every URL at subscription).
pub(crate) fn guard(config: &crate::ServerConfig) -> Guard {
    Guard::new(
        Policy {
            allow_private: config.webhooks_allow_private,
        },
        TIMEOUT,
    )
}

/// POSTs one delivery through the guard: `(status, error)` for the log. A 3xx is an answer (not
/// followed) and a failed delivery.
fn send(
    guard: Guard,
    url: &str,
    id: u128,
    delivery: &DeliveryRecord,
    secret: &str,
    timestamp: i64,
) -> (Option<u16>, Option<String>) {
    let connection = match guard.connect(url) {
        Ok(connection) => connection,
        // A name that does not resolve is a failure like any other, not a refusal.
        Err(unresolvable @ Refusal::Unresolvable { .. }) => {
            return (None, Some(unresolvable.to_string()));
        }
        Err(refusal) => return (None, Some(OutboundError::from(refusal).to_string())),
    };
    let result = connection
        .post()
        .header("content-type", "application/json")
        .header("mapline-event", &delivery.event)
        .header("mapline-delivery", &Uuid::from_u128(id).to_string())
        .header(
            "mapline-signature",
            &signature(secret, timestamp, &delivery.body),
        )
        .send(delivery.body.as_bytes());
    match result {
        Ok(response) if response.status().is_redirection() => {
            let to = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or("nowhere");
            let status = response.status().as_u16();
            (
                Some(status),
                Some(format!("redirect ({status} to {to}) not followed")),
            )
        }
        Ok(response) => (Some(response.status().as_u16()), None),
        Err(error) => (None, Some(OutboundError::from(error).to_string())),
    }
}

/// Sends one delivery and records the attempt. Blocks (HTTP with a 5 s timeout).
fn attempt(
    store: &Store,
    guard: Guard,
    id: u128,
    mut delivery: DeliveryRecord,
) -> Result<(), StoreError> {
    let Some(hook) = store
        .webhooks()?
        .into_iter()
        .find(|h| h.id == delivery.webhook)
    else {
        return Ok(());
    };
    let now = now_ms();
    let (status, error) = send(guard, &hook.url, id, &delivery, &hook.secret, now / 1000);
    delivery.attempts += 1;
    let delivered = status.is_some_and(|s| (200..300).contains(&s));
    let give_up = !delivered && delivery.attempts >= MAX_ATTEMPTS;
    let outcome = if delivered {
        "delivered"
    } else if give_up {
        "gave_up"
    } else {
        "retrying"
    };
    if !delivered {
        let backoff = 1000i64.saturating_mul(1 << delivery.attempts.min(8).saturating_sub(1));
        delivery.next_attempt_ms = now + backoff;
    }
    tracing::info!(webhook = %hook.id, event = %delivery.event, attempt = delivery.attempts, ?status, ?error, outcome, "webhook delivery");
    let record = AttemptRecord {
        event: delivery.event.clone(),
        at_ms: now,
        status,
        error,
        outcome: outcome.to_owned(),
    };
    store.record_attempt(id, &delivery, &record, !delivered && !give_up)
}

/// Sends due deliveries. On a cluster every node queues the same deliveries from the same
/// history, so before its first attempt a delivery is claimed in the cluster's KV bucket
/// (by subscription and event id): the node whose claim came first sends it (and retries
/// it); the others drop their copy, logged as `sent_by_another_node`. A claim the engine
/// cannot answer (no quorum) leaves the delivery due for the next tick.
async fn send_due(
    app: &Arc<App>,
    guard: Guard,
    due: Vec<(u128, DeliveryRecord)>,
) -> Result<Result<(), StoreError>, tokio::task::JoinError> {
    for (id, delivery) in due {
        let mine = match &app.cluster {
            Some(cluster) if delivery.attempts == 0 => {
                match cluster.claim(&claim_key(&delivery)).await {
                    Ok(mine) => mine,
                    Err(error) => {
                        tracing::warn!(%error, webhook = %delivery.webhook, "cannot claim a webhook delivery; tried again next tick");
                        continue;
                    }
                }
            }
            _ => true,
        };
        let store = app.store.clone();
        let done = tokio::task::spawn_blocking(move || {
            if mine {
                attempt(&store, guard, id, delivery)
            } else {
                let record = AttemptRecord {
                    event: delivery.event.clone(),
                    at_ms: now_ms(),
                    status: None,
                    error: None,
                    outcome: "sent_by_another_node".to_owned(),
                };
                store.record_attempt(id, &delivery, &record, false)
            }
        })
        .await?;
        if let Err(error) = done {
            return Ok(Err(error));
        }
    }
    Ok(Ok(()))
}

/// The KV key a delivery is claimed under: its subscription and its event's id (the same on
/// every node: derived from the same history), hashed into the characters keys allow.
fn claim_key(delivery: &DeliveryRecord) -> String {
    use sha2::Digest as _;
    let event_id = serde_json::from_str::<Value>(&delivery.body)
        .ok()
        .and_then(|body| body.get("id").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| delivery.body.clone());
    let digest = sha2::Sha256::digest(event_id.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("webhook.{}.{hex}", delivery.webhook.simple())
}

/// The worker: queues new events and sends due deliveries until the server stops.
pub(crate) async fn run(app: Arc<App>) {
    let mut ticks = tokio::time::interval(TICK);
    let mut last_overdue = tokio::time::Instant::now() - OVERDUE_EVERY;
    let guard = guard(&app.config);
    loop {
        ticks.tick().await;
        let store = app.store.clone();
        let overdue_due = last_overdue.elapsed() >= OVERDUE_EVERY;
        if overdue_due {
            last_overdue = tokio::time::Instant::now();
        }
        let due = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            queue_history_events(&store)?;
            if overdue_due {
                queue_overdue(&store, chrono::Utc::now().date_naive())?;
            }
            store.due_deliveries(now_ms(), 20)
        })
        .await;
        let worked = match due {
            Ok(Ok(due)) => send_due(&app, guard, due).await,
            Ok(Err(error)) => Ok(Err(error)),
            Err(panicked) => Err(panicked),
        };
        match worked {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "webhook worker: retrying next tick");
            }
            Err(error) => {
                // A panic may have left the plans it had taken unqueued: look at every plan.
                tracing::error!(%error, "webhook worker: the tick failed; every plan is looked at next tick");
                app.store.rescan_history();
            }
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateWebhookBody {
    /// Where deliveries are POSTed: http or https, to a public address (422 `url_not_allowed`
    /// for loopback, private, link-local and other special addresses; see docs/api.md).
    url: String,
    /// Only these events (default: all).
    #[serde(default)]
    events: Vec<String>,
    /// Only this plan's events (default: every plan).
    #[serde(default)]
    plan_id: Option<Uuid>,
}

fn view(hook: &WebhookRecord, with_secret: bool) -> Value {
    let mut value = json!({ "id": hook.id, "url": hook.url, "events": hook.events,
        "planId": hook.plan, "createdAt": time(hook.created_at_ms) });
    if with_secret {
        value["secret"] = json!(hook.secret);
    }
    value
}

/// `POST /api/webhooks` (admin): subscribe; the signing secret is in this answer only.
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", request_body = CreateWebhookBody, responses((status = 201, description = "`{ id, url, events, planId, secret }`"), (status = "4XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn create(
    State(app): State<Arc<App>>,
    _admin: Admin,
    body: Result<ApiJson<CreateWebhookBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let ApiJson(body) = body?;
    if let Some(unknown) = body.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(ApiError::invalid(format!(
            "unknown event {unknown:?}; events are {EVENTS:?}"
        )));
    }
    // Refuses what is certainly bad; a name that does not resolve now is checked at delivery.
    let guard = guard(&app.config);
    let raw = body.url;
    let url = tokio::task::spawn_blocking(move || guard.check(&raw))
        .await
        .map_err(ApiError::internal)?
        .map_err(url_refused)?;
    if let Some(plan) = body.plan_id {
        let store = app.store.clone();
        if blocking(&app, move |_| store.plan(plan)).await?.is_none() {
            return Err(ApiError::no_such_plan());
        }
    }
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let hook = WebhookRecord {
        id: Uuid::now_v7(),
        url,
        secret: format!(
            "whsec_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        ),
        plan: body.plan_id,
        events: body.events,
        created_at_ms: now_ms(),
    };
    let stored = hook.clone();
    blocking(&app, move |store| store.insert_webhook(&stored)).await?;
    Ok((StatusCode::CREATED, Json(view(&hook, true))))
}

/// `GET /api/webhooks` (admin).
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks", responses((status = 200, description = "`{ webhooks }` (without secrets)"), (status = "4XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn list(State(app): State<Arc<App>>, _admin: Admin) -> Result<Json<Value>, ApiError> {
    let hooks = blocking(&app, |store| store.webhooks()).await?;
    Ok(Json(
        json!({ "webhooks": hooks.iter().map(|h| view(h, false)).collect::<Vec<_>>() }),
    ))
}

fn url_refused(refusal: Refusal) -> ApiError {
    if refusal.is_malformed() {
        ApiError::invalid(format!("`url`: {refusal}"))
    } else {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "url_not_allowed",
            format!("`url`: {refusal}"),
        )
    }
}

fn hook_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| not_found())
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "webhook_not_found",
        "no webhook has this id",
    )
}

/// `DELETE /api/webhooks/{id}` (admin): unsubscribe; waiting deliveries are dropped.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)), responses((status = 204, description = "Removed"), (status = "4XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn delete(
    State(app): State<Arc<App>>,
    Path(raw): Path<String>,
    _admin: Admin,
) -> Result<StatusCode, ApiError> {
    let id = hook_id(&raw)?;
    if blocking(&app, move |store| store.delete_webhook(id)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

/// `GET /api/webhooks/{id}/deliveries` (admin): every attempt, oldest first.
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = String, Path)), responses((status = 200, description = "`{ deliveries }`"), (status = "4XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn deliveries_of(
    State(app): State<Arc<App>>,
    Path(raw): Path<String>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    let id = hook_id(&raw)?;
    let (exists, log) = blocking(&app, move |store| {
        let exists = store.webhooks()?.iter().any(|h| h.id == id);
        Ok((exists, store.delivery_log(id)?))
    })
    .await?;
    if !exists {
        return Err(not_found());
    }
    let log: Vec<_> = log
        .into_iter()
        .map(|(delivery, n, a)| {
            json!({ "delivery": delivery, "attempt": n, "event": a.event,
            "at": time(a.at_ms), "status": a.status, "error": a.error, "outcome": a.outcome })
        })
        .collect();
    Ok(Json(json!({ "deliveries": log })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(webhook: u128, body: Value) -> DeliveryRecord {
        DeliveryRecord {
            webhook: Uuid::from_u128(webhook),
            event: "milestone.slipped".to_owned(),
            body: body.to_string(),
            attempts: 0,
            next_attempt_ms: 0,
            created_at_ms: 0,
        }
    }

    #[test]
    fn a_delivery_is_claimed_by_its_subscription_and_event_id_alone() {
        let id = "0195f0a0-0000-7000-8000-000000000001.12.s0";
        // Two nodes may render the body differently (a member renamed in between): the claim
        // is the same.
        let a = delivery(1, json!({ "id": id, "data": { "who": "Dana" } }));
        let b = delivery(1, json!({ "id": id, "data": { "who": "Dana Seller" } }));
        assert_eq!(claim_key(&a), claim_key(&b));
        // Another event, or another subscription, is another claim.
        let other_event = delivery(1, json!({ "id": format!("{id}x") }));
        let other_hook = delivery(2, json!({ "id": id }));
        assert_ne!(claim_key(&a), claim_key(&other_event));
        assert_ne!(claim_key(&a), claim_key(&other_hook));
        // Only characters a KV key may hold, whatever the event id holds.
        let odd = delivery(1, json!({ "id": "overdue.m/1 é*>.2027-01-01" }));
        assert!(
            claim_key(&odd)
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-'),
            "{}",
            claim_key(&odd)
        );
    }
}
