//! Member sessions: the `mapline_session` cookie, its CSRF token, the same-origin checks on
//! cookie-authenticated writes and WebSocket upgrades, sign-in links, and signing in with an
//! identity provider's verified identity (`oidc.rs` calls [`sign_in_with_idp`]).
//!
//! A session id is 256 random bits (`ms_` + base64url); only its SHA-256 is stored. Its CSRF
//! token is HMAC-SHA256(session id, label): the same for the session's whole life, derivable
//! only with the id (which the browser keeps in an `HttpOnly` cookie), and never stored.
//!
//! The decisions (is this request cookie-authenticated, is its origin ours, does its CSRF token
//! match) are pure functions of the request's parts, tested below; the middleware and the
//! upgrade check only gather the parts.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use mapline_store::{
    MemberRecord, MemberRole, SessionRecord, SessionVia, SignInLinkRefusal, Store, normalize_email,
};
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use crate::App;
use crate::clock::now_ms;
use crate::http::error::{ApiError, blocking};
use crate::http::extract::{ApiJson, bearer};
use crate::identity::auth::{
    AuthError, COOKIE, MemberSession, Principal, authenticate_session, cookie_session, token_hash,
};
use crate::sync::outbox::CloseReason;

/// The header a cookie-authenticated write carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub const SESSION_MS: i64 = 14 * 24 * 60 * 60 * 1000;
/// How long a sign-in link works.
pub const SIGN_IN_LINK_MS: i64 = 15 * 60 * 1000;
/// The reason given to sockets closed by a sign-out or a revocation.
pub const SIGNED_OUT_REASON: &str = "this session was signed out";

const SESSION_PREFIX: &str = "ms_";
const LINK_PREFIX: &str = "l_";
const CSRF_LABEL: &[u8] = b"mapline csrf v1";

fn random_token(prefix: &str) -> String {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(secret))
}

/// A new session id (what the cookie holds).
pub fn new_session_id() -> String {
    random_token(SESSION_PREFIX)
}

/// A new sign-in link token.
pub fn new_sign_in_token() -> String {
    random_token(LINK_PREFIX)
}

/// The CSRF token of a session: derived from its id, never stored.
pub fn csrf_token(session_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(session_id.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(CSRF_LABEL);
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The `Set-Cookie` value that starts a session.
pub fn session_cookie(session_id: &str, max_age_ms: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={session_id}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
        max_age_ms / 1000
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    session_cookie("", 0, secure)
}

/// Whether cookies must be `Secure`: the server is reached over https.
fn secure(app: &App) -> bool {
    app.config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

/// Whether the request carries a token (bearer or `?token=`): then the cookie is ignored.
pub fn has_token(headers: &HeaderMap, query: Option<&str>) -> bool {
    bearer(headers).is_some_and(|t| !t.is_empty())
        || query.is_some_and(|q| {
            q.split('&')
                .filter_map(|p| p.split_once('='))
                .any(|(k, v)| k == "token" && !v.is_empty())
        })
}

/// The origins this server answers as: `--public-url`'s when set, else `http(s)://<Host>`.
pub fn server_origins(public_url: Option<&str>, host: Option<&str>) -> Vec<String> {
    match (public_url, host) {
        (Some(url), _) => url::Url::parse(url)
            .map(|u| vec![u.origin().ascii_serialization()])
            .unwrap_or_default(),
        (None, Some(host)) => vec![format!("http://{host}"), format!("https://{host}")],
        (None, None) => Vec::new(),
    }
}

/// The origin a request came from: its `Origin`, or if absent its `Referer`'s origin.
pub fn request_origin(headers: &HeaderMap) -> Option<String> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        return origin.to_str().ok().map(str::to_owned);
    }
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let url = url::Url::parse(referer).ok()?;
    Some(url.origin().ascii_serialization())
}

/// Whether a request's origin is one of the server's (case-insensitive; `null` never is).
pub fn same_origin(request_origin: Option<&str>, ours: &[String]) -> bool {
    request_origin.is_some_and(|o| ours.iter().any(|ours| ours.eq_ignore_ascii_case(o)))
}

/// Why a cookie-authenticated write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfRefusal {
    CrossOrigin,
    MissingToken,
    WrongToken,
}

impl CsrfRefusal {
    fn message(self) -> &'static str {
        match self {
            Self::CrossOrigin => {
                "a request signed in with the session cookie must come from this site (Origin)"
            }
            Self::MissingToken => "send the session's CSRF token as `X-CSRF-Token`",
            Self::WrongToken => "the `X-CSRF-Token` does not match this session",
        }
    }
}

/// What a request brings that the CSRF decision needs.
#[derive(Debug, Clone, Copy)]
pub struct CsrfInput<'a> {
    pub method: &'a Method,
    /// A bearer credential (the cookie is then ignored).
    pub has_token: bool,
    pub session_id: Option<&'a str>,
    pub csrf_header: Option<&'a str>,
    pub origin: Option<&'a str>,
    /// A route that needs no session (signing in): only its origin is checked, when given.
    pub sessionless: bool,
}

/// The CSRF decision: only cookie-authenticated requests that may change something are
/// checked; they need an origin of ours and the session's token.
pub fn check_csrf(input: CsrfInput<'_>, ours: &[String]) -> Result<(), CsrfRefusal> {
    let safe = matches!(*input.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if input.sessionless && !safe {
        // Signing in needs no session, with or without a cookie: refuse only a page of another
        // site doing it (login CSRF: signing the browser in as someone else).
        return match input.origin {
            Some(origin) if !same_origin(Some(origin), ours) => Err(CsrfRefusal::CrossOrigin),
            _ => Ok(()),
        };
    }
    let Some(session_id) = input.session_id else {
        return Ok(());
    };
    if safe || input.has_token {
        return Ok(());
    }
    if !same_origin(input.origin, ours) {
        return Err(CsrfRefusal::CrossOrigin);
    }
    let sent = input.csrf_header.ok_or(CsrfRefusal::MissingToken)?;
    let expected = csrf_token(session_id);
    if bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(CsrfRefusal::WrongToken)
    }
}

/// The origins of this request's server.
fn origins_for(app: &App, headers: &HeaderMap) -> Vec<String> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    server_origins(app.config.public_url.as_deref(), host)
}

/// Middleware: refuses cookie-authenticated writes from another origin or without the CSRF
/// token (403 `csrf`) before any handler runs.
pub async fn csrf_guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let origin = request_origin(headers);
    let input = CsrfInput {
        method: request.method(),
        // Only a bearer counts: a `?token=` is read by the sync upgrades alone (GETs), so on a
        // write it would not replace the cookie and must not excuse it from the check.
        has_token: has_token(headers, None),
        session_id: cookie_session(headers),
        csrf_header: headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()),
        origin: origin.as_deref(),
        sessionless: request.uri().path() == "/api/auth/sign-in-link",
    };
    if let Err(refusal) = check_csrf(input, &origins_for(&app, headers)) {
        tracing::warn!(?refusal, origin = ?input.origin, path = %request.uri().path(), "cookie request refused (CSRF)");
        return ApiError::new(StatusCode::FORBIDDEN, "csrf", refusal.message()).into_response();
    }
    next.run(request).await
}

/// For a WebSocket upgrade signed in with the cookie: its `Origin` must be ours (403
/// `cross_origin` otherwise). Upgrades with a token are not affected.
pub fn check_upgrade_origin(
    app: &App,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<(), ApiError> {
    let token = bearer(headers)
        .or(query_token)
        .is_some_and(|t| !t.is_empty());
    if token || cookie_session(headers).is_none() {
        return Ok(());
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if same_origin(origin, &origins_for(app, headers)) {
        Ok(())
    } else {
        tracing::warn!(?origin, "cookie WebSocket from another origin refused");
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "a WebSocket signed in with the session cookie must be opened by this site",
        ))
    }
}

/// A member as the API shows them.
pub fn member_json(member: &MemberRecord) -> serde_json::Value {
    json!({
        "id": member.id, "email": member.email, "name": member.name,
        "role": member.role.name(),
        "disabledAt": member.disabled_at_ms.and_then(time),
    })
}

pub(crate) fn time(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339())
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect())
}

fn new_session(member: Uuid, via: SessionVia, user_agent: Option<String>) -> SessionRecord {
    let now = now_ms();
    SessionRecord {
        member,
        created_at_ms: now,
        expires_at_ms: now + SESSION_MS,
        revoked_at_ms: None,
        via,
        user_agent,
    }
}

fn not_signed_in() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "not_signed_in",
        "not signed in: open your sign-in link or sign in with your company account",
    )
}

/// The routes about the browser's own session read the cookie alone: a request that also
/// carries a bearer or `?token=` is refused rather than answered for the cookie behind it.
fn refuse_token(headers: &HeaderMap, query: Option<&str>) -> Result<(), ApiError> {
    if has_token(headers, query) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bearer_not_accepted",
            "this route is about the browser's session cookie; send no Authorization or ?token=",
        ));
    }
    Ok(())
}

/// The member signed in with this request's cookie, with the cookie's session id.
async fn signed_in(
    app: &Arc<App>,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(MemberSession, String), ApiError> {
    refuse_token(headers, query)?;
    let session_id = cookie_session(headers)
        .ok_or_else(not_signed_in)?
        .to_owned();
    let id = session_id.clone();
    let principal =
        blocking_auth(app, move |store| authenticate_session(store, &id, now_ms())).await?;
    match principal {
        Principal::Member(m) => Ok((*m, session_id)),
        _ => Err(not_signed_in()),
    }
}

async fn blocking_auth<T: Send + 'static>(
    app: &Arc<App>,
    call: impl FnOnce(&Store) -> Result<T, AuthError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    Ok(tokio::task::spawn_blocking(move || call(&store))
        .await
        .map_err(ApiError::internal)??)
}

/// `GET /api/session`: the signed-in member, the session's CSRF token and when it ends.
#[utoipa::path(get, path = "/api/session", tag = "members", security(()), responses((status = 200, description = "`{ member, csrfToken, expiresAt }`"), (status = "4XX", description = "401 `not_signed_in`, `session_expired`, `session_revoked`", body = crate::http::openapi::ErrorBody)))]
pub async fn get_session(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let (session, session_id) = signed_in(&app, &headers, query.as_deref()).await?;
    Ok(Json(json!({
        "member": member_json(&session.member),
        "csrfToken": csrf_token(&session_id),
        "expiresAt": time(session.expires_at_ms),
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignInLinkBody {
    token: String,
}

/// `POST /api/auth/sign-in-link`: uses a single-use sign-in link and starts a session.
#[utoipa::path(post, path = "/api/auth/sign-in-link", tag = "members", security(()), request_body = SignInLinkBody, responses((status = 200, description = "`{ member, csrfToken }` and the session cookie"), (status = "4XX", description = "401 `sign_in_link_invalid`, `sign_in_link_used`, `sign_in_link_expired`", body = crate::http::openapi::ErrorBody)))]
pub async fn sign_in_with_link(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<ApiJson<SignInLinkBody>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiJson(body) = body?;
    let link_hash = token_hash(body.token.trim());
    let session_id = new_session_id();
    let session_hash = token_hash(&session_id);
    let session = new_session(Uuid::nil(), SessionVia::Link, user_agent(&headers));
    let now = now_ms();
    let outcome = blocking(&app, move |store| {
        store.consume_sign_in_link(&link_hash, &session_hash, &session, now)
    })
    .await?;
    let member = outcome.map_err(|refusal| {
        let code = match refusal {
            SignInLinkRefusal::Invalid => "sign_in_link_invalid",
            SignInLinkRefusal::Used => "sign_in_link_used",
            SignInLinkRefusal::Expired => "sign_in_link_expired",
            SignInLinkRefusal::Disabled => "member_disabled",
        };
        ApiError::new(StatusCode::UNAUTHORIZED, code, refusal.to_string())
    })?;
    tracing::info!(member_id = %member.id, "signed in with a sign-in link");
    end_previous_session(&app, &headers).await?;
    let cookie = session_cookie(&session_id, SESSION_MS, secure(&app));
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "member": member_json(&member), "csrfToken": csrf_token(&session_id) })),
    )
        .into_response())
}

/// Signing in again from a browser that still has a session: that session ends (and its
/// sockets close) as the new one starts, so a browser has one live session at a time.
async fn end_previous_session(app: &Arc<App>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(previous) = cookie_session(headers) else {
        return Ok(());
    };
    let hash = token_hash(previous);
    if blocking(app, move |store| store.revoke_session(&hash, now_ms())).await? {
        close_sockets(app, &[hash]);
        tracing::info!("the browser's previous session ended as it signed in again");
    }
    Ok(())
}

/// Closes every open socket of these sessions with 4401.
pub(crate) fn close_sockets(app: &App, sessions: &[[u8; 32]]) {
    for session in sessions {
        app.session_sockets.close_all(*session, SIGNED_OUT_REASON);
    }
}

/// `POST /api/auth/logout` (cookie + CSRF): ends this session and clears the cookie.
#[utoipa::path(post, path = "/api/auth/logout", tag = "members", security(()), responses((status = 204, description = "Signed out; the cookie is cleared"), (status = "4XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn logout(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    refuse_token(&headers, query.as_deref())?;
    let session = match signed_in(&app, &headers, None).await {
        Ok((session, _)) => session,
        // A revoked or expired session: still 401, but the dead cookie goes too.
        Err(error) => {
            let mut response = error.into_response();
            if cookie_session(&headers).is_some()
                && let Ok(value) = HeaderValue::from_str(&clear_cookie(secure(&app)))
            {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            return Ok(response);
        }
    };
    let hash = session.session;
    blocking(&app, move |store| store.revoke_session(&hash, now_ms())).await?;
    close_sockets(&app, &[hash]);
    tracing::info!(member_id = %session.member.id, "signed out");
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, clear_cookie(secure(&app)))],
    )
        .into_response())
}

/// `POST /api/auth/logout-everywhere` (cookie + CSRF): ends every session of the member.
#[utoipa::path(post, path = "/api/auth/logout-everywhere", tag = "members", security(()), responses((status = 200, description = "`{ revoked }`: how many sessions ended"), (status = "4XX", description = "A JSON error", body = crate::http::openapi::ErrorBody)))]
pub async fn logout_everywhere(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (session, _) = signed_in(&app, &headers, query.as_deref()).await?;
    let member = session.member.id;
    let revoked = blocking(&app, move |store| {
        store.revoke_sessions_of(member, now_ms())
    })
    .await?;
    close_sockets(&app, &revoked);
    tracing::info!(member_id = %member, sessions = revoked.len(), "signed out everywhere");
    Ok((
        [(header::SET_COOKIE, clear_cookie(secure(&app)))],
        Json(json!({ "revoked": revoked.len() })),
    )
        .into_response())
}

/// A verified identity from the company's identity provider.
pub(crate) struct IdpIdentity {
    pub subject: String,
    pub email: String,
    pub email_verified: bool,
    pub name: Option<String>,
}

/// Why an identity was not signed in.
#[derive(Debug)]
pub(crate) enum SignInRefusal {
    EmailNotVerified,
    /// Not a plain ASCII email address: Unicode case folding could make it another member's
    /// (the Kelvin sign `K` lowercases to `k`).
    EmailInvalid,
    DomainNotAllowed,
    NotAMember,
    Disabled,
    Failed(String),
}

impl SignInRefusal {
    /// A stable machine code.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::EmailNotVerified => "email_not_verified",
            Self::EmailInvalid => "email_invalid",
            Self::DomainNotAllowed => "domain_not_allowed",
            Self::NotAMember => "not_a_member",
            Self::Disabled => "member_disabled",
            Self::Failed(_) => "sign_in_failed",
        }
    }

    /// Why, in words.
    pub(crate) fn message(&self) -> String {
        match self {
            Self::EmailNotVerified => {
                "your identity provider has not verified your email address".into()
            }
            Self::EmailInvalid => {
                "your identity provider gave an email address Mapline cannot use (only plain ASCII addresses are accepted)"
                    .into()
            }
            Self::DomainNotAllowed => {
                "your email's domain is not allowed to sign in here; ask an admin to invite you"
                    .into()
            }
            Self::NotAMember => {
                "you are not a member of this workspace; ask an admin to invite you".into()
            }
            Self::Disabled => "your membership has been disabled".into(),
            Self::Failed(why) => format!("signing in failed: {why}"),
        }
    }
}

/// The domain of an email, lowercased.
fn email_domain(email: &str) -> Option<&str> {
    email
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
}

/// The identity's email, if it is one Mapline can key a member by: plain ASCII (so lowercasing
/// cannot fold it into another address) and well-formed. Checked before any lookup.
fn idp_email(identity: &IdpIdentity) -> Result<String, SignInRefusal> {
    if !identity.email.is_ascii() {
        return Err(SignInRefusal::EmailInvalid);
    }
    crate::identity::members::parse_email(&identity.email).map_err(|_| SignInRefusal::EmailInvalid)
}

/// The name a new member gets from the IdP's profile: checked like an invitation's name; else
/// cut to 200 characters without control characters; else (nothing left, or no name) the
/// email's local part.
fn idp_name(name: Option<&str>, email: &str) -> String {
    let local = || email.split('@').next().unwrap_or(email).to_owned();
    let Some(name) = name else {
        return local();
    };
    if let Ok(name) = crate::identity::members::parse_name(name) {
        return name;
    }
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(200)
        .collect();
    match crate::identity::members::parse_name(&cleaned) {
        Ok(name) => name,
        Err(_) => local(),
    }
}

/// What to do with an identity: an existing member by email, else a new rep when the domain is
/// allowed. Pure: the caller looked the member up.
fn idp_decision(
    identity: &IdpIdentity,
    existing: Option<&MemberRecord>,
    allowed_domains: &[String],
) -> Result<Option<()>, SignInRefusal> {
    if !identity.email_verified {
        return Err(SignInRefusal::EmailNotVerified);
    }
    idp_email(identity)?;
    match existing {
        Some(member) if member.disabled_at_ms.is_some() => Err(SignInRefusal::Disabled),
        Some(_) => Ok(None),
        None if allowed_domains.is_empty() => Err(SignInRefusal::NotAMember),
        None => {
            let email = normalize_email(&identity.email);
            let domain = email_domain(&email).unwrap_or("");
            if allowed_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
            {
                Ok(Some(()))
            } else {
                Err(SignInRefusal::DomainNotAllowed)
            }
        }
    }
}

/// A member for a verified identity (an existing member by email, else — when the email's
/// domain is in `--oidc-allowed-domains` — a new `rep`), and a new session for them: the
/// `Set-Cookie` header value to send.
pub(crate) async fn sign_in_with_idp(
    app: &Arc<App>,
    identity: IdpIdentity,
    headers: &HeaderMap,
) -> Result<HeaderValue, SignInRefusal> {
    let store = app.store.clone();
    let allowed = app.config.oidc_allowed_domains.clone();
    let session_id = new_session_id();
    let session_hash = token_hash(&session_id);
    let previous = cookie_session(headers).map(token_hash);
    let result = tokio::task::spawn_blocking(move || {
        let failed = |e: mapline_store::StoreError| SignInRefusal::Failed(e.to_string());
        if !identity.email_verified {
            return Err(SignInRefusal::EmailNotVerified);
        }
        // Before any lookup: a non-ASCII address must not be folded into a member's.
        let email = idp_email(&identity)?;
        let existing = store.member_by_email(&email).map_err(failed)?;
        let member = match idp_decision(&identity, existing.as_ref(), &allowed)? {
            None => existing.ok_or_else(|| SignInRefusal::Failed("member vanished".into()))?,
            Some(()) => {
                let name = idp_name(identity.name.as_deref(), &email);
                let member = MemberRecord {
                    id: Uuid::now_v7(),
                    email,
                    name,
                    role: MemberRole::Rep,
                    created_at_ms: now_ms(),
                    disabled_at_ms: None,
                };
                match store.insert_member(&member) {
                    Ok(()) => member,
                    // Signed in twice at once: the other request made the member.
                    Err(mapline_store::StoreError::EmailTaken(_)) => store
                        .member_by_email(&member.email)
                        .map_err(failed)?
                        .ok_or_else(|| SignInRefusal::Failed("member vanished".into()))?,
                    Err(e) => return Err(failed(e)),
                }
            }
        };
        let session = new_session(member.id, SessionVia::Oidc, None);
        store
            .insert_session(&session_hash, &session)
            .map_err(failed)?;
        tracing::info!(member_id = %member.id, subject = %identity.subject, "signed in with the identity provider");
        // The browser's previous session ends as this one starts.
        let ended = match previous {
            Some(previous) => store.revoke_session(&previous, now_ms()).map_err(failed)?,
            None => false,
        };
        Ok(previous.filter(|_| ended))
    })
    .await
    .map_err(|e| SignInRefusal::Failed(e.to_string()))?;
    if let Some(previous) = result? {
        close_sockets(app, &[previous]);
    }
    HeaderValue::from_str(&session_cookie(&session_id, SESSION_MS, secure(app)))
        .map_err(|e| SignInRefusal::Failed(e.to_string()))
}

/// Closes a member socket whose session ended between the check and the registration.
pub(crate) async fn recheck_session(
    app: &App,
    session: [u8; 32],
    closer: &crate::sync::outbox::Closer,
) {
    let store = app.store.clone();
    let checked = tokio::task::spawn_blocking(move || store.session(&session)).await;
    if let Ok(Ok(found)) = checked
        && !found.is_some_and(|(s, m)| s.is_live(now_ms()) && m.disabled_at_ms.is_none())
    {
        closer.close(CloseReason::new(
            crate::sync::outbox::CloseCode::AccessRevoked,
            SIGNED_OUT_REASON,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    #[test]
    fn the_cookie_is_found_among_others_and_empty_counts_as_none() {
        let check = |value: &str, expected: Option<&str>| {
            let h = headers(&[("cookie", value)]);
            assert_eq!(cookie_session(&h), expected, "{value}");
        };
        check("mapline_session=ms_abc", Some("ms_abc"));
        check("a=1; mapline_session=ms_abc; b=2", Some("ms_abc"));
        check("a=1", None);
        check("mapline_session=", None);
        check("xmapline_session=ms_abc", None);
    }

    #[test]
    fn the_server_origin_is_the_public_urls_or_the_hosts() {
        let check = |public: Option<&str>, host: Option<&str>, expected: &[&str]| {
            assert_eq!(
                server_origins(public, host),
                expected,
                "{public:?} {host:?}"
            );
        };
        check(
            Some("https://plans.example.com"),
            Some("evil.test"),
            &["https://plans.example.com"],
        );
        check(
            Some("http://127.0.0.1:8080"),
            None,
            &["http://127.0.0.1:8080"],
        );
        check(
            None,
            Some("127.0.0.1:9"),
            &["http://127.0.0.1:9", "https://127.0.0.1:9"],
        );
        check(None, None, &[]);
    }

    #[test]
    fn the_request_origin_is_origin_else_the_referers() {
        let check = |pairs: &[(&'static str, &str)], expected: Option<&str>| {
            assert_eq!(request_origin(&headers(pairs)).as_deref(), expected);
        };
        check(&[("origin", "http://a.test")], Some("http://a.test"));
        check(
            &[("referer", "http://a.test:81/p/x?y=1")],
            Some("http://a.test:81"),
        );
        check(
            &[("origin", "http://b.test"), ("referer", "http://a.test/")],
            Some("http://b.test"),
        );
        check(&[], None);
    }

    #[test]
    fn csrf_checks_only_cookie_writes_and_needs_our_origin_and_the_sessions_token() {
        let ours = vec!["http://site.test".to_owned()];
        let token = csrf_token("ms_session");
        let check = |method: Method,
                     has_token: bool,
                     session: Option<&str>,
                     csrf: Option<&str>,
                     origin: Option<&str>,
                     expected: Result<(), CsrfRefusal>| {
            let input = CsrfInput {
                method: &method,
                has_token,
                session_id: session,
                csrf_header: csrf,
                origin,
                sessionless: false,
            };
            assert_eq!(check_csrf(input, &ours), expected, "{input:?}");
        };
        let s = Some("ms_session");
        let site = Some("http://site.test");
        let evil = Some("http://evil.test");
        check(Method::POST, false, s, Some(&token), site, Ok(()));
        check(Method::DELETE, false, s, Some(&token), site, Ok(()));
        check(
            Method::POST,
            false,
            s,
            Some(&token),
            evil,
            Err(CsrfRefusal::CrossOrigin),
        );
        check(
            Method::POST,
            false,
            s,
            Some(&token),
            None,
            Err(CsrfRefusal::CrossOrigin),
        );
        check(
            Method::POST,
            false,
            s,
            Some(&token),
            Some("null"),
            Err(CsrfRefusal::CrossOrigin),
        );
        check(
            Method::POST,
            false,
            s,
            None,
            site,
            Err(CsrfRefusal::MissingToken),
        );
        check(
            Method::POST,
            false,
            s,
            Some("nope"),
            site,
            Err(CsrfRefusal::WrongToken),
        );
        let other = csrf_token("ms_other");
        check(
            Method::POST,
            false,
            s,
            Some(&other),
            site,
            Err(CsrfRefusal::WrongToken),
        );
        // Reads, token-authenticated requests and requests without the cookie are not checked.
        check(Method::GET, false, s, None, evil, Ok(()));
        check(Method::HEAD, false, s, None, evil, Ok(()));
        check(Method::POST, true, s, None, evil, Ok(()));
        check(Method::POST, false, None, None, evil, Ok(()));
    }

    #[test]
    fn signing_in_needs_no_token_but_refuses_another_sites_page() {
        let ours = vec!["http://site.test".to_owned()];
        let check = |origin: Option<&str>, expected| {
            let input = CsrfInput {
                method: &Method::POST,
                has_token: false,
                session_id: Some("ms_old"),
                csrf_header: None,
                origin,
                sessionless: true,
            };
            assert_eq!(check_csrf(input, &ours), expected);
        };
        check(Some("http://site.test"), Ok(()));
        check(None, Ok(()));
        check(Some("http://evil.test"), Err(CsrfRefusal::CrossOrigin));
        // Without a cookie too: another site's page must not sign the browser in.
        let input = CsrfInput {
            method: &Method::POST,
            has_token: false,
            session_id: None,
            csrf_header: None,
            origin: Some("http://evil.test"),
            sessionless: true,
        };
        assert_eq!(check_csrf(input, &ours), Err(CsrfRefusal::CrossOrigin));
    }

    #[test]
    fn a_csrf_token_is_stable_per_session_and_differs_between_sessions() {
        let (a, b) = (new_session_id(), new_session_id());
        assert_ne!(a, b);
        assert_eq!(csrf_token(&a), csrf_token(&a));
        assert_ne!(csrf_token(&a), csrf_token(&b));
        assert!(!csrf_token(&a).contains(&a[3..]));
    }

    #[test]
    fn query_tokens_and_bearers_win_over_the_cookie() {
        let none = HeaderMap::new();
        assert!(has_token(&none, Some("token=s_x&acks=1")));
        assert!(!has_token(&none, Some("token=&acks=1")));
        assert!(!has_token(&none, Some("tokens=s_x")));
        assert!(!has_token(&none, None));
        assert!(has_token(
            &headers(&[("authorization", "Bearer a_x")]),
            None
        ));
    }

    #[test]
    fn an_identity_is_a_member_by_email_or_a_new_rep_of_an_allowed_domain() {
        let identity = |email: &str, verified| IdpIdentity {
            subject: "sub".into(),
            email: email.into(),
            email_verified: verified,
            name: None,
        };
        let member = MemberRecord {
            id: Uuid::nil(),
            email: "dana@corp.test".into(),
            name: "Dana".into(),
            role: MemberRole::Admin,
            created_at_ms: 0,
            disabled_at_ms: None,
        };
        let allowed = vec!["corp.test".to_owned()];
        let check = |id: &IdpIdentity, existing: Option<&MemberRecord>, allowed: &[String]| {
            idp_decision(id, existing, allowed).map_err(|e| e.code())
        };
        assert_eq!(
            check(&identity("dana@corp.test", true), Some(&member), &[]),
            Ok(None)
        );
        assert_eq!(
            check(&identity("dana@corp.test", false), Some(&member), &[]),
            Err("email_not_verified")
        );
        assert_eq!(
            check(&identity("new@CORP.test", true), None, &allowed),
            Ok(Some(()))
        );
        assert_eq!(
            check(&identity("new@other.test", true), None, &allowed),
            Err("domain_not_allowed")
        );
        assert_eq!(
            check(&identity("new@corp.test", true), None, &[]),
            Err("not_a_member")
        );
        let disabled = MemberRecord {
            disabled_at_ms: Some(1),
            ..member.clone()
        };
        assert_eq!(
            check(&identity("dana@corp.test", true), Some(&disabled), &allowed),
            Err("member_disabled")
        );
        // The Kelvin sign lowercases to `k`: refused before it could match kim@corp.test.
        assert_eq!(
            check(&identity("\u{212A}im@corp.test", true), None, &allowed),
            Err("email_invalid")
        );
        assert_eq!(
            idp_email(&identity("\u{212A}im@corp.test", true)).map_err(|e| e.code()),
            Err("email_invalid")
        );
        assert_eq!(
            check(&identity("not-an-email", true), None, &allowed),
            Err("email_invalid")
        );
        assert_eq!(
            idp_email(&identity("Kim@Corp.test", true)).ok().as_deref(),
            Some("kim@corp.test")
        );
    }

    #[test]
    fn an_idps_name_is_checked_cut_or_replaced_by_the_emails_local_part() {
        assert_eq!(
            idp_name(Some("  Ana Seller "), "ana@corp.test"),
            "Ana Seller"
        );
        assert_eq!(idp_name(None, "ana@corp.test"), "ana");
        assert_eq!(idp_name(Some("   "), "ana@corp.test"), "ana");
        assert_eq!(idp_name(Some("\u{7}\u{1b}[31m"), "ana@corp.test"), "[31m");
        assert_eq!(idp_name(Some("Ana\nEvil"), "ana@corp.test"), "AnaEvil");
        assert_eq!(idp_name(Some("\u{0}\u{1}"), "ana@corp.test"), "ana");
        let long = "x".repeat(5000);
        assert_eq!(idp_name(Some(&long), "ana@corp.test").chars().count(), 200);
    }
}
