//! The seller team over HTTP and for the CLI: inviting members (a member record and a
//! single-use sign-in link), new sign-in links for existing members, listing them and their
//! sessions, revoking sessions, disabling members (offboarding), and a plan's owner and seller
//! members (added and taken off).
//!
//! Members are managed by the admin credential and admin members. A plan's members are listed
//! by anyone on the seller side of it and added by its owner, managers and admins.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use mapline_store::{
    MemberId, MemberRecord, MemberRole, PlanMemberRecord, PlanMemberRole, SessionRecord,
    SessionVia, SignInLinkRecord, Store, StoreError, normalize_email,
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::App;
use crate::clock::now_ms;
use crate::http::error::{ApiError, blocking};
use crate::http::extract::{Admin, ApiJson, PlanReader, authenticate, require_admin};
use crate::identity::auth::{Principal, token_hash};
pub use crate::identity::session::SIGN_IN_LINK_MS;
pub use crate::identity::session::member_json;
use crate::identity::session::{self, time};

/// Longest accepted email (RFC 5321's path limit) and name.
const MAX_EMAIL_CHARS: usize = 254;
const MAX_NAME_CHARS: usize = 200;

/// An invitation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error("{0:?} is not an email address")]
    InvalidEmail(String),
    #[error("the name must be 1 to {MAX_NAME_CHARS} characters")]
    InvalidName,
    #[error("unknown role {0:?}: use rep, manager or admin")]
    UnknownRole(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A valid email, lowercased: one `@` between a non-empty local part and a dotted domain, no
/// spaces or control characters.
pub fn parse_email(raw: &str) -> Result<String, InviteError> {
    let email = normalize_email(raw);
    let valid = email.chars().count() <= MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split('@').count() == 2
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email)
    } else {
        Err(InviteError::InvalidEmail(raw.to_owned()))
    }
}

/// A member's name, trimmed.
pub fn parse_name(raw: &str) -> Result<String, InviteError> {
    let name = raw.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(InviteError::InvalidName);
    }
    Ok(name.to_owned())
}

/// `rep`, `manager` or `admin`.
pub fn parse_role(raw: &str) -> Result<MemberRole, InviteError> {
    MemberRole::parse(raw).ok_or_else(|| InviteError::UnknownRole(raw.to_owned()))
}

/// Where a sign-in link opens: the web client's `/signin`, the token in the fragment (never
/// sent to a server, kept out of logs and `Referer`).
pub fn sign_in_url(public_url: Option<&str>, token: &str) -> String {
    let origin = public_url.unwrap_or("").trim_end_matches('/');
    format!("{origin}/signin#token={token}")
}

/// A new member and their first sign-in link.
#[derive(Debug, Clone)]
pub struct Invited {
    pub member: MemberRecord,
    pub sign_in_url: String,
    /// When the sign-in link stops working (ms since the epoch).
    pub expires_at_ms: i64,
}

impl Invited {
    /// As the API and the CLI show it: `{ member, signInUrl, signInExpiresAt }`.
    pub fn to_json(&self) -> Value {
        json!({ "member": member_json(&self.member), "signInUrl": self.sign_in_url,
            "signInExpiresAt": time(self.expires_at_ms) })
    }
}

/// Adds a member and makes their sign-in link (single use, working for `link_valid_ms`:
/// [`SIGN_IN_LINK_MS`] unless the CLI is told otherwise). Blocks on the store.
pub fn invite_member(
    store: &Store,
    email: &str,
    name: &str,
    role: &str,
    public_url: Option<&str>,
    link_valid_ms: i64,
    now_ms: i64,
) -> Result<Invited, InviteError> {
    let member = MemberRecord {
        id: Uuid::now_v7(),
        email: parse_email(email)?,
        name: parse_name(name)?,
        role: parse_role(role)?,
        created_at_ms: now_ms,
        disabled_at_ms: None,
    };
    store.insert_member(&member)?;
    let sign_in_url = new_sign_in_link(store, member.id, public_url, link_valid_ms, now_ms)?;
    Ok(Invited {
        member,
        sign_in_url,
        expires_at_ms: now_ms + link_valid_ms,
    })
}

/// A new single-use sign-in link for an existing member. Blocks on the store.
pub fn new_sign_in_link(
    store: &Store,
    member: MemberId,
    public_url: Option<&str>,
    valid_ms: i64,
    now_ms: i64,
) -> Result<String, StoreError> {
    let token = session::new_sign_in_token();
    store.insert_sign_in_link(
        &token_hash(&token),
        &SignInLinkRecord {
            member,
            created_at_ms: now_ms,
            expires_at_ms: now_ms + valid_ms,
            used_at_ms: None,
        },
    )?;
    Ok(sign_in_url(public_url, &token))
}

/// A session as listed (never its id: only the id's hash is stored, shown as `id`).
pub fn session_json(hash: &[u8; 32], session: &SessionRecord, now_ms: i64) -> Value {
    let status = if session.revoked_at_ms.is_some() {
        "revoked"
    } else if session.expires_at_ms <= now_ms {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": hash.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "via": match session.via { SessionVia::Oidc => "oidc", SessionVia::Link => "link" },
        "userAgent": session.user_agent,
        "createdAt": time(session.created_at_ms),
        "expiresAt": time(session.expires_at_ms),
        "revokedAt": session.revoked_at_ms.and_then(time),
        "status": status,
    })
}

impl From<InviteError> for ApiError {
    fn from(error: InviteError) -> Self {
        match error {
            InviteError::Store(error) => error.into(),
            InviteError::InvalidEmail(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_email",
                error.to_string(),
            ),
            InviteError::InvalidName => ApiError::invalid(error.to_string()),
            InviteError::UnknownRole(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_role",
                error.to_string(),
            ),
        }
    }
}

/// `GET /api/members` (admin): every member.
#[utoipa::path(get, path = "/api/members", tag = "members", responses((status = 200, description = "`{ members }`"), (status = "4XX", description = "A JSON error: `{ error: { code, message } }` (docs/api.md lists the codes)", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    _admin: Admin,
) -> Result<impl IntoResponse, ApiError> {
    let members = blocking(&app, |store| store.members()).await?;
    let members: Vec<_> = members.iter().map(member_json).collect();
    Ok(Json(json!({ "members": members })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteBody {
    email: String,
    name: String,
    role: String,
    /// How long the sign-in link works, in seconds (1 to 604800; default 900).
    #[serde(default)]
    valid_secs: Option<i64>,
}

/// Longest a sign-in link may work: a week.
pub const MAX_LINK_VALID_SECS: i64 = 7 * 24 * 60 * 60;

/// A sign-in link's lifetime in ms from an optional `validSecs`.
fn link_valid_ms(valid_secs: Option<i64>) -> Result<i64, ApiError> {
    match valid_secs {
        None => Ok(SIGN_IN_LINK_MS),
        Some(secs) if (1..=MAX_LINK_VALID_SECS).contains(&secs) => Ok(secs * 1000),
        Some(_) => Err(ApiError::invalid(format!(
            "`validSecs` must be 1 to {MAX_LINK_VALID_SECS} seconds"
        ))),
    }
}

/// `POST /api/members` (admin): invites a member; the answer holds their sign-in link, shown
/// this once.
#[utoipa::path(post, path = "/api/members", tag = "members", request_body = InviteBody, responses((status = 201, description = "`{ member, signInUrl }`"), (status = "4XX", description = "A JSON error: `invalid_email`, `invalid_role`, `member_exists` …", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn invite(
    State(app): State<Arc<App>>,
    _admin: Admin,
    body: Result<ApiJson<InviteBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let ApiJson(body) = body?;
    let valid_ms = link_valid_ms(body.valid_secs)?;
    let public_url = app.config.public_url.clone();
    let store = app.store.clone();
    let invited = tokio::task::spawn_blocking(move || {
        invite_member(
            &store,
            &body.email,
            &body.name,
            &body.role,
            public_url.as_deref(),
            valid_ms,
            now_ms(),
        )
    })
    .await
    .map_err(ApiError::internal)??;
    tracing::info!(member_id = %invited.member.id, role = invited.member.role.name(), "member invited");
    Ok((StatusCode::CREATED, Json(invited.to_json())))
}

/// The member named in the path, for the admin or the member themself.
async fn member_for(
    app: &Arc<App>,
    headers: &HeaderMap,
    raw_id: &str,
) -> Result<MemberId, ApiError> {
    let principal = authenticate(app, headers, None).await?;
    let id = Uuid::parse_str(raw_id).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "member_not_found",
            "no member has this id",
        )
    })?;
    let own = principal.member().is_some_and(|m| m.member.id == id);
    if !own {
        require_admin(&principal)?;
    }
    if blocking(app, move |store| store.member(id))
        .await?
        .is_none()
    {
        return Err(StoreError::NoSuchMember(id).into());
    }
    Ok(id)
}

/// `GET /api/members/{id}/sessions` (admin or the member): their sessions.
#[utoipa::path(get, path = "/api/members/{member_id}/sessions", tag = "members", params(("member_id" = String, Path, description = "The member's id")), responses((status = 200, description = "`{ sessions }`"), (status = "4XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn sessions(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let id = member_for(&app, &headers, &member_id).await?;
    let sessions = blocking(&app, move |store| store.sessions_of(id)).await?;
    let now = now_ms();
    let sessions: Vec<_> = sessions
        .iter()
        .map(|(hash, s)| session_json(hash, s, now))
        .collect();
    Ok(Json(json!({ "sessions": sessions })))
}

/// `DELETE /api/members/{id}/sessions` (admin or the member): ends every session; their open
/// sockets close with 4401.
#[utoipa::path(delete, path = "/api/members/{member_id}/sessions", tag = "members", params(("member_id" = String, Path, description = "The member's id")), responses((status = 200, description = "`{ revoked }`"), (status = "4XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn revoke_sessions(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let id = member_for(&app, &headers, &member_id).await?;
    let revoked = blocking(&app, move |store| store.revoke_sessions_of(id, now_ms())).await?;
    session::close_sockets(&app, &revoked);
    tracing::info!(member_id = %id, sessions = revoked.len(), "sessions revoked");
    Ok(Json(json!({ "revoked": revoked.len() })))
}

/// The member named in the path (for the admin only: the handler takes [`Admin`]).
async fn member_for_admin(app: &Arc<App>, raw_id: &str) -> Result<MemberRecord, ApiError> {
    let id = parse_member_id(raw_id)?;
    blocking(app, move |store| store.member(id))
        .await?
        .ok_or_else(|| StoreError::NoSuchMember(id).into())
}

fn parse_member_id(raw: &str) -> Result<MemberId, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "member_not_found",
            "no member has this id",
        )
    })
}

fn member_disabled() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "member_disabled",
        "this member is disabled",
    )
}

/// `POST /api/members/{id}/sign-in-link` body: optional.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInLinkRequest {
    /// How long the link works, in seconds (1 to 604800; default 900).
    #[serde(default)]
    valid_secs: Option<i64>,
}

/// `POST /api/members/{id}/sign-in-link` (admin): a new single-use sign-in link for an existing
/// member (an expired link or an ended session otherwise locks a link-only member out: inviting
/// the email again is 409). The body (`{ validSecs }`) is optional.
#[utoipa::path(post, path = "/api/members/{member_id}/sign-in-link", tag = "members", params(("member_id" = String, Path, description = "The member's id")), request_body(content = SignInLinkRequest, description = "Optional"), responses((status = 201, description = "`{ member, signInUrl, signInExpiresAt }`"), (status = "4XX", description = "A JSON error: `member_not_found`, `member_disabled`, `invalid_body` …", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn sign_in_link(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _admin: Admin,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let member = member_for_admin(&app, &member_id).await?;
    let request: SignInLinkRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SignInLinkRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("the body does not have the expected fields: {e}"),
            )
        })?
    };
    let valid_ms = link_valid_ms(request.valid_secs)?;
    if member.disabled_at_ms.is_some() {
        return Err(member_disabled());
    }
    let public_url = app.config.public_url.clone();
    let id = member.id;
    let now = now_ms();
    let sign_in_url = blocking(&app, move |store| {
        new_sign_in_link(store, id, public_url.as_deref(), valid_ms, now)
    })
    .await?;
    tracing::info!(member_id = %id, "sign-in link made");
    let made = Invited {
        member,
        sign_in_url,
        expires_at_ms: now + valid_ms,
    };
    Ok((StatusCode::CREATED, Json(made.to_json())))
}

/// `POST /api/members/{id}/disable` (admin): offboarding. The member can no longer sign in;
/// their sessions end (open sockets close with 4401) and their unused sign-in links stop
/// working. Disabling again answers the same.
#[utoipa::path(post, path = "/api/members/{member_id}/disable", tag = "members", params(("member_id" = String, Path, description = "The member's id")), responses((status = 200, description = "`{ member, revoked }`"), (status = "4XX", description = "A JSON error: `member_not_found`, `admin_only`", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn disable(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _admin: Admin,
) -> Result<impl IntoResponse, ApiError> {
    let member = member_for_admin(&app, &member_id).await?;
    let id = member.id;
    let (member, revoked) = blocking(&app, move |store| store.disable_member(id, now_ms())).await?;
    session::close_sockets(&app, &revoked);
    tracing::info!(member_id = %id, sessions = revoked.len(), "member disabled");
    Ok(Json(
        json!({ "member": member_json(&member), "revoked": revoked.len() }),
    ))
}

fn plan_role_name(role: PlanMemberRole) -> &'static str {
    match role {
        PlanMemberRole::Owner => "owner",
        PlanMemberRole::Seller => "seller",
    }
}

/// Only the seller side sees a plan's members.
fn require_seller_side(principal: &Principal) -> Result<(), ApiError> {
    match principal {
        Principal::Share(share) if share.side != mapline_store::Side::Seller => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "sellers_only",
            "only the seller's team sees this plan's members",
        )),
        _ => Ok(()),
    }
}

/// `GET /api/plans/{id}/members`: the plan's owner and seller members.
#[utoipa::path(get, path = "/api/plans/{plan_id}/members", tag = "members", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), responses((status = 200, description = "`{ members: [{ member, role, addedAt }] }`"), (status = "4XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn plan_members(
    State(app): State<Arc<App>>,
    PlanReader { principal, plan_id }: PlanReader,
) -> Result<impl IntoResponse, ApiError> {
    require_seller_side(&principal)?;
    let members = blocking(&app, move |store| store.plan_members(plan_id)).await?;
    let members: Vec<_> = members
        .iter()
        .map(|(m, p)| {
            json!({ "member": member_json(m), "role": plan_role_name(p.role),
                "addedAt": time(p.added_at_ms) })
        })
        .collect();
    Ok(Json(json!({ "members": members })))
}

/// The plan's owner, managers, admins and the admin credential manage its members.
async fn require_plan_manager(
    app: &Arc<App>,
    principal: &Principal,
    plan_id: mapline_store::PlanId,
) -> Result<(), ApiError> {
    let allowed = match principal {
        Principal::Admin => true,
        Principal::Share(_) => false,
        Principal::Member(m) if m.member.role.reads_every_plan() => true,
        Principal::Member(m) => {
            let me = m.member.id;
            blocking(app, move |store| store.plan_membership(plan_id, me))
                .await?
                .is_some_and(|p| p.role == PlanMemberRole::Owner)
        }
    };
    if !allowed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "owner_only",
            "only the plan's owner, managers and admins manage its members",
        ));
    }
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AddMemberBody {
    email: String,
}

/// `POST /api/plans/{id}/members` `{ email }`: adds an existing member as a seller member (the
/// plan's owner, managers and admins).
#[utoipa::path(post, path = "/api/plans/{plan_id}/members", tag = "members", params(("plan_id" = String, Path, description = "The plan's id (UUID)")), request_body = AddMemberBody, responses((status = 201, description = "`{ member, role }`"), (status = "4XX", description = "A JSON error: `member_not_found`, `owner_only` …", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn add_plan_member(
    State(app): State<Arc<App>>,
    PlanReader { principal, plan_id }: PlanReader,
    body: Result<ApiJson<AddMemberBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    require_plan_manager(&app, &principal, plan_id).await?;
    let ApiJson(body) = body?;
    let email = parse_email(&body.email)?;
    let member = blocking(&app, move |store| store.member_by_email(&email))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "member_not_found",
                "no member has this email; invite them first",
            )
        })?;
    let id = member.id;
    blocking(&app, move |store| {
        store.add_plan_member(
            plan_id,
            id,
            PlanMemberRecord {
                role: PlanMemberRole::Seller,
                added_at_ms: now_ms(),
            },
        )
    })
    .await?;
    let role = blocking(&app, move |store| store.plan_membership(plan_id, id))
        .await?
        .map_or(PlanMemberRole::Seller, |p| p.role);
    tracing::info!(plan_id = %plan_id, member_id = %id, "plan member added");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "member": member_json(&member), "role": plan_role_name(role) })),
    ))
}

/// `DELETE /api/plans/{id}/members/{memberId}`: takes a seller member off the plan (the plan's
/// owner, managers and admins). The owner stays (409 `owner_not_removable`).
#[utoipa::path(delete, path = "/api/plans/{plan_id}/members/{member_id}", tag = "members", params(("plan_id" = String, Path, description = "The plan's id (UUID)"), ("member_id" = String, Path, description = "The member's id")), responses((status = 200, description = "`{ removed: true, memberId }`"), (status = "4XX", description = "A JSON error: `member_not_found`, `owner_only`, `owner_not_removable`", body = crate::http::openapi::ErrorBody)))]
pub(crate) async fn remove_plan_member(
    State(app): State<Arc<App>>,
    Path((_, member_id)): Path<(String, String)>,
    PlanReader { principal, plan_id }: PlanReader,
) -> Result<impl IntoResponse, ApiError> {
    require_plan_manager(&app, &principal, plan_id).await?;
    let id = parse_member_id(&member_id)?;
    let not_on_plan = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "member_not_found",
            "this member is not on this plan",
        )
    };
    let membership = blocking(&app, move |store| store.plan_membership(plan_id, id))
        .await?
        .ok_or_else(not_on_plan)?;
    if membership.role == PlanMemberRole::Owner {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "owner_not_removable",
            "the plan's owner cannot be taken off it",
        ));
    }
    if !blocking(&app, move |store| store.remove_plan_member(plan_id, id)).await? {
        return Err(not_on_plan());
    }
    tracing::info!(plan_id = %plan_id, member_id = %id, "plan member removed");
    Ok(Json(json!({ "removed": true, "memberId": id })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_checked() {
        let check = |raw: &str, expected: Option<&str>| {
            assert_eq!(parse_email(raw).ok().as_deref(), expected, "{raw:?}");
        };
        check(" Dana@Example.COM ", Some("dana@example.com"));
        check("a.b+c@sub.example.org", Some("a.b+c@sub.example.org"));
        check("no-at.example.com", None);
        check("two@@example.com", None);
        check("a@b@example.com", None);
        check("@example.com", None);
        check("a@localhost", None);
        check("a@.com", None);
        check("a b@example.com", None);
        check("", None);
    }

    #[test]
    fn roles_and_names_are_checked() {
        assert_eq!(parse_role("rep").unwrap(), MemberRole::Rep);
        assert_eq!(parse_role("admin").unwrap(), MemberRole::Admin);
        assert!(matches!(
            parse_role("Admin"),
            Err(InviteError::UnknownRole(_))
        ));
        assert!(matches!(
            parse_role("owner"),
            Err(InviteError::UnknownRole(_))
        ));
        assert_eq!(parse_name("  Dana Seller ").unwrap(), "Dana Seller");
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(201)).is_err());
    }

    #[test]
    fn a_sign_in_url_keeps_the_token_in_the_fragment() {
        assert_eq!(
            sign_in_url(Some("https://plans.example.com/"), "l_x"),
            "https://plans.example.com/signin#token=l_x"
        );
        assert_eq!(sign_in_url(None, "l_x"), "/signin#token=l_x");
    }
}
