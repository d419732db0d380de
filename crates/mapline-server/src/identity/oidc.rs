//! Signing in with the company's OpenID Connect provider: the authorization code flow with PKCE
//! (S256), `state` and `nonce`, through the `openidconnect` crate (discovery, the code exchange
//! with `client_secret_basic`, the ID token's signature, issuer, audience, expiry and nonce).
//!
//! - Discovery runs in the background from the start ([`discover`]): until it has succeeded once,
//!   `/auth/oidc/login` answers a 503 page, and the rest of the server serves as usual. It is
//!   repeated every hour so rotated signing keys are picked up.
//! - A login in progress (state → nonce, PKCE verifier, redirect URI, where to go after) lives
//!   in memory only ([`Pending`]): bounded, 10 minutes, removed when its callback comes — so a
//!   replayed callback finds no state. A restart forgets logins in progress; people start again.
//!   Logins started per client address are limited per minute, so one address cannot fill the
//!   map and push everyone else's logins out.
//! - A verified identity goes to [`crate::identity::session::sign_in_with_idp`], which decides who gets a
//!   session (members, allowed domains) and gives the cookie.
//!
//! Every failure is an HTML page for people that says why, links to `/`, and carries a stable
//! code in `<p id="error-code">` (docs/api.md, "Signing in").

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse as _,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _,
};
use serde::Deserialize;
use serde_json::json;

use crate::App;
use crate::identity::session::{IdpIdentity, sign_in_with_idp};

/// The IdP and Mapline's client registration with it (`--oidc-issuer`, `--oidc-client-id`,
/// `--oidc-client-secret`).
#[derive(Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

/// A configuration of OIDC that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OidcConfigError {
    #[error(
        "OIDC needs all three of --oidc-issuer, --oidc-client-id and --oidc-client-secret (MAPLINE_OIDC_CLIENT_SECRET); missing: {0}"
    )]
    Incomplete(String),
    #[error("--oidc-issuer {0:?} is not a URL: {1}")]
    NotAUrl(String, String),
    #[error(
        "--oidc-issuer {0:?} must be https (plain http only for an IdP on loopback, for tests)"
    )]
    NotHttps(String),
    #[error("--oidc-issuer {0:?} must not have a query or fragment")]
    QueryOrFragment(String),
}

impl OidcSettings {
    /// All three of issuer, client id and secret, or none (`Ok(None)`: OIDC off). The issuer is
    /// https, or plain http on loopback only.
    pub fn from_flags(
        issuer: Option<&str>,
        client_id: Option<&str>,
        client_secret: Option<&str>,
    ) -> Result<Option<Self>, OidcConfigError> {
        let (issuer, client_id, client_secret) =
            (given(issuer), given(client_id), given(client_secret));
        let (issuer, client_id, client_secret) = match (issuer, client_id, client_secret) {
            (None, None, None) => return Ok(None),
            (Some(issuer), Some(id), Some(secret)) => (issuer, id, secret),
            (issuer, id, secret) => {
                let missing: Vec<_> = [
                    (issuer, "--oidc-issuer"),
                    (id, "--oidc-client-id"),
                    (secret, "--oidc-client-secret"),
                ]
                .into_iter()
                .filter(|(value, _)| value.is_none())
                .map(|(_, flag)| flag)
                .collect();
                return Err(OidcConfigError::Incomplete(missing.join(", ")));
            }
        };
        let url = url::Url::parse(issuer)
            .map_err(|e| OidcConfigError::NotAUrl(issuer.to_owned(), e.to_string()))?;
        let loopback = url.host_str().is_some_and(is_loopback_host);
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(OidcConfigError::NotHttps(issuer.to_owned())),
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(OidcConfigError::QueryOrFragment(issuer.to_owned()));
        }
        Ok(Some(Self {
            // The issuer is compared exactly with the one the IdP names: keep it as given.
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
        }))
    }
}

/// A flag's value, unless it is absent or blank.
fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

impl std::fmt::Debug for OidcSettings {
    // The secret never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<hidden>")
            .finish()
    }
}

/// The cookie binding a login to the browser that started it: random, `HttpOnly`,
/// `SameSite=Lax` (sent on the IdP's top-level redirect back), only for `/auth/oidc`.
const BROWSER_COOKIE: &str = "mapline_oidc_browser";

/// How long a started login may take before its callback is refused.
const LOGIN_TTL: Duration = Duration::from_secs(10 * 60);
/// Logins in progress kept at most; beyond it the oldest is forgotten.
const MAX_PENDING: usize = 10_000;
/// Discovery is repeated this often once it has succeeded (the IdP's signing keys rotate).
const REDISCOVER_EVERY: Duration = Duration::from_secs(60 * 60);
/// Largest answer read from the IdP.
const MAX_IDP_RESPONSE_BYTES: u64 = 1024 * 1024;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The server's OIDC state: configured or not, discovered or not, logins in progress.
pub(crate) struct Oidc {
    settings: Option<OidcSettings>,
    client: RwLock<Option<Arc<Client>>>,
    pending: Mutex<Pending>,
    http: ureq::Agent,
    /// Logins started per client address per minute (the per-address window of
    /// [`crate::http::limits::AuthFailures`], one key for every login): `/auth/oidc/login` needs no
    /// credential, so without it one address could fill [`Pending`] and push everyone else's
    /// logins out.
    logins: crate::http::limits::AuthFailures,
}

/// The one key logins are counted under (per address only).
const LOGIN_KEY: crate::http::limits::TokenKey = [0; 32];

/// One started login, waiting for its callback.
struct PendingLogin {
    started: Instant,
    /// The value of the browser's [`BROWSER_COOKIE`] when it started: the callback must come
    /// with it, so a callback URL sent to someone else cannot sign them in (login CSRF).
    browser: String,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    redirect_uri: RedirectUrl,
    next: String,
}

/// Logins in progress by `state`, bounded, oldest first in `order`.
#[derive(Default)]
struct Pending {
    by_state: HashMap<String, PendingLogin>,
    order: VecDeque<String>,
}

impl Pending {
    fn insert(&mut self, state: String, login: PendingLogin, now: Instant) {
        self.forget_expired(now);
        while self.by_state.len() >= MAX_PENDING {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.by_state.remove(&oldest);
        }
        // States taken by their callback stay in `order` until they reach its front.
        if self.order.len() >= 2 * MAX_PENDING {
            let by_state = &self.by_state;
            self.order.retain(|state| by_state.contains_key(state));
        }
        self.order.push_back(state.clone());
        self.by_state.insert(state, login);
    }

    /// Removes and returns the login of `state` if it is still young enough.
    fn take(&mut self, state: &str, now: Instant) -> Option<PendingLogin> {
        self.forget_expired(now);
        let login = self.by_state.remove(state)?;
        // `order` keeps the state until it reaches the front: `forget_expired` skips it then.
        Some(login)
    }

    fn forget_expired(&mut self, now: Instant) {
        while let Some(state) = self.order.front() {
            match self.by_state.get(state) {
                Some(login) if now.duration_since(login.started) < LOGIN_TTL => break,
                _ => {
                    if let Some(state) = self.order.pop_front() {
                        self.by_state.remove(&state);
                    }
                }
            }
        }
    }
}

impl Oidc {
    /// `logins_per_minute`: logins one client address may start per minute (0: no limit).
    pub(crate) fn new(settings: Option<OidcSettings>, logins_per_minute: u32) -> Self {
        let config = ureq::config::Config::builder()
            .http_status_as_error(false)
            // Following redirects from the IdP's endpoints would open the server to SSRF.
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(15)))
            .build();
        Self {
            settings,
            client: RwLock::new(None),
            pending: Mutex::new(Pending::default()),
            http: config.new_agent(),
            logins: crate::http::limits::AuthFailures::new(0, logins_per_minute),
        }
    }

    pub(crate) fn configured(&self) -> bool {
        self.settings.is_some()
    }

    fn client(&self) -> Option<Arc<Client>> {
        self.client.read().ok().and_then(|client| client.clone())
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding it leaves a map that is still whole.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One request to the IdP, blocking: no redirects, a bounded answer, and plain `http://`
    /// only to loopback (the issuer's own rule, applied to every endpoint it names).
    fn send(
        &self,
        request: openidconnect::HttpRequest,
    ) -> Result<openidconnect::HttpResponse, IdpHttpError> {
        let uri = request.uri();
        if uri.scheme_str() != Some("https") && !uri.host().is_some_and(is_loopback_host) {
            return Err(IdpHttpError(format!(
                "refusing a plain-http request to {uri}: only loopback may be plain http"
            )));
        }
        let (parts, body) = request.into_parts();
        let response = if body.is_empty() {
            self.http.run(axum::http::Request::from_parts(parts, ()))
        } else {
            self.http.run(axum::http::Request::from_parts(parts, body))
        }
        .map_err(|e| IdpHttpError(e.to_string()))?;
        let (parts, mut body) = response.into_parts();
        let bytes = body
            .with_config()
            .limit(MAX_IDP_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| IdpHttpError(e.to_string()))?;
        Ok(openidconnect::HttpResponse::from_parts(parts, bytes))
    }
}

/// A request to the IdP that failed before it had an answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct IdpHttpError(String);

pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Discovers the IdP, retrying until it answers, then again every hour. Runs for the server's
/// life when OIDC is configured.
pub(crate) async fn discover(app: Arc<App>) {
    let Some(settings) = app.oidc.settings.clone() else {
        return;
    };
    let mut wait = Duration::from_secs(1);
    loop {
        let app_for_task = app.clone();
        let settings_for_task = settings.clone();
        let found = tokio::task::spawn_blocking(move || {
            discover_once(&app_for_task.oidc, &settings_for_task)
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match found {
            Ok(client) => {
                let first = app.oidc.client().is_none();
                if let Ok(mut slot) = app.oidc.client.write() {
                    *slot = Some(Arc::new(client));
                }
                if first {
                    tracing::info!(issuer = %settings.issuer, "OIDC provider discovered; sign-in with it is open");
                }
                wait = Duration::from_secs(1);
                tokio::time::sleep(REDISCOVER_EVERY).await;
            }
            Err(error) => {
                tracing::warn!(
                    issuer = %settings.issuer,
                    %error,
                    retry_in_secs = wait.as_secs(),
                    "OIDC discovery failed; sign-in with the IdP waits for it (the rest of the server serves)"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn discover_once(oidc: &Oidc, settings: &OidcSettings) -> Result<Client, String> {
    let issuer = IssuerUrl::new(settings.issuer.clone()).map_err(|e| e.to_string())?;
    let send = |request| oidc.send(request);
    let metadata = CoreProviderMetadata::discover(&issuer, &send).map_err(|e| {
        let mut words = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            words.push_str(": ");
            words.push_str(&cause.to_string());
            source = cause.source();
        }
        words
    })?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        Some(ClientSecret::new(settings.client_secret.clone())),
    ))
}

/// Why a sign-in did not happen: a status, a stable code and words for people.
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    code: &'static str,
    words: String,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str, words: impl Into<String>) -> Self {
        Self {
            status,
            code,
            words: words.into(),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        tracing::info!(code = self.code, reason = %self.words, "OIDC sign-in refused");
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Sign-in did not work · Mapline</title></head>\
             <body style=\"font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem\">\
             <h1>Sign-in did not work</h1>\
             <p id=\"error-message\">{}</p>\
             <p id=\"error-code\">{}</p>\
             <p><a href=\"/\">Back to Mapline</a></p></body></html>\n",
            escape_html(&self.words),
            self.code,
        );
        (
            self.status,
            [(
                header::CONTENT_SECURITY_POLICY,
                crate::http::headers::NO_CLIENT_CSP,
            )],
            Html(page),
        )
            .into_response()
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `next` if it is a path on this server (`/x`), else `/`: never `//host`, `/\host`, a scheme
/// or anything with control characters, so the redirect after sign-in cannot leave the site.
pub(crate) fn local_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.contains('\\')
                && !next.chars().any(char::is_control) =>
        {
            next.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The browser's [`BROWSER_COOKIE`], if it has a well-formed one.
fn browser_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == BROWSER_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| {
            value.len() == 43
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn new_browser_value() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The origin the browser reached this server at: `--public-url`'s, else `http://<Host>`.
fn origin(app: &App, headers: &HeaderMap) -> Result<String, Failure> {
    if let Some(public) = app.config.public_url.as_deref() {
        return Ok(public.trim_end_matches('/').to_owned());
    }
    headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(|host| host.parse::<axum::http::uri::Authority>().ok())
        .map(|host| format!("http://{host}"))
        .ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request has no usable Host header",
            )
        })
}

fn unavailable(app: &App) -> Failure {
    if app.oidc.configured() {
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "oidc_unavailable",
            "Mapline cannot reach your company's identity provider yet. Try again in a minute.",
        )
    } else {
        Failure::new(
            StatusCode::NOT_FOUND,
            "oidc_unavailable",
            "Signing in with a company account is not set up on this server. Open the sign-in link you were sent.",
        )
    }
}

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

/// `GET /auth/oidc/login[?next=/path]`: starts a sign-in and sends the browser to the IdP.
#[utoipa::path(get, path = "/auth/oidc/login", tag = "auth", security(()), params(("next" = Option<String>, Query, description = "A local path to land on after signing in (`/` otherwise)")), responses((status = 303, description = "To the IdP's authorization endpoint"), (status = 503, description = "An HTML page: the IdP is not reachable yet (`oidc_unavailable`)", content_type = "text/html"), (status = 404, description = "An HTML page: OIDC is not configured (`oidc_unavailable`)", content_type = "text/html")))]
pub(crate) async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let client = app.oidc.client().ok_or_else(|| unavailable(&app))?;
    if let Some(ConnectInfo(peer)) = extensions.get::<ConnectInfo<SocketAddr>>() {
        let now = Instant::now();
        if let Some(blocked) = app.oidc.logins.blocked_for(peer.ip(), &LOGIN_KEY, now) {
            let seconds = blocked.wait().as_secs().max(1);
            tracing::warn!(address = %peer.ip(), "too many sign-ins started from one address; refused");
            return Err(Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_sign_ins",
                format!(
                    "Too many sign-ins were started from your network in the last minute. Try again in {seconds} seconds."
                ),
            ));
        }
        app.oidc.logins.record(peer.ip(), &LOGIN_KEY, now);
    }
    let next = local_next(query.ok().and_then(|Query(q)| q.next).as_deref());
    let redirect_uri = RedirectUrl::new(format!("{}/auth/oidc/callback", origin(&app, &headers)?))
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    // One value per browser, kept across logins so two tabs signing in at once both work.
    let browser = browser_cookie(&headers).unwrap_or_else(new_browser_value);
    let secure = if app
        .config
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"))
    {
        "; Secure"
    } else {
        ""
    };
    let cookie = HeaderValue::from_str(&format!(
        "{BROWSER_COOKIE}={browser}; HttpOnly; SameSite=Lax; Path=/auth/oidc; Max-Age={}{secure}",
        LOGIN_TTL.as_secs()
    ))
    .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .set_redirect_uri(std::borrow::Cow::Owned(redirect_uri.clone()))
        .url();
    app.oidc.pending().insert(
        state.secret().clone(),
        PendingLogin {
            started: Instant::now(),
            browser,
            nonce,
            verifier,
            redirect_uri,
            next,
        },
        Instant::now(),
    );
    let location = HeaderValue::from_str(url.as_str())
        .map_err(|e| Failure::new(StatusCode::BAD_GATEWAY, "oidc_unavailable", e.to_string()))?;
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
    )
        .into_response())
}

/// Whether the request comes from the browser that started `login` (its [`BROWSER_COOKIE`]).
fn same_browser(headers: &HeaderMap, login: &PendingLogin) -> bool {
    browser_cookie(headers).is_some_and(|value| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            value.as_bytes(),
            login.browser.as_bytes(),
        ))
    })
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    /// The IdP that answered (RFC 9207), when it says.
    #[serde(default)]
    iss: Option<String>,
}

/// `GET /auth/oidc/callback?code&state`: where the IdP sends the browser back.
#[utoipa::path(get, path = "/auth/oidc/callback", tag = "auth", security(()), params(("code" = Option<String>, Query, description = "The authorization code"), ("state" = Option<String>, Query, description = "The state sent with the login")), responses((status = 303, description = "Signed in: `Set-Cookie: mapline_session=…`, to `next` or `/`"), (status = 400, description = "An HTML page with the reason and `<p id=\"error-code\">` (state_missing, state_unknown, idp_error)", content_type = "text/html"), (status = 403, description = "An HTML page (id_token_invalid, email_not_verified, domain_not_allowed, not_a_member)", content_type = "text/html"), (status = 502, description = "An HTML page (code_exchange_failed)", content_type = "text/html")))]
pub(crate) async fn callback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let Query(query) =
        query.map_err(|e| Failure::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let client = app.oidc.client().ok_or_else(|| unavailable(&app))?;
    // A login is used once, whatever its outcome: take it before anything else.
    let login = query
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|state| app.oidc.pending().take(state, Instant::now()));
    // An answer naming another issuer is another IdP's (a mix-up): nothing in it is used.
    if let (Some(iss), Some(settings)) = (query.iss.as_deref(), app.oidc.settings.as_ref())
        && iss != settings.issuer
    {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "idp_error",
            format!(
                "The answer came from another identity provider ({iss}) than the one this sign-in was sent to. Start again."
            ),
        ));
    }
    if let Some(error) = query.error.as_deref() {
        // The IdP's words are shown only for a sign-in this browser started: anyone can send a
        // callback URL with made-up words ("call this number") on this site's page.
        let ours = matches!(&login, Some(Some(login)) if same_browser(&headers, login));
        let words = if ours {
            let detail = query
                .error_description
                .as_deref()
                .map_or(String::new(), |d| format!(" ({d})"));
            format!("Your identity provider did not sign you in: {error}{detail}.")
        } else {
            "Your identity provider did not sign you in. Start again.".to_owned()
        };
        return Err(Failure::new(StatusCode::BAD_REQUEST, "idp_error", words));
    }
    let login = match login {
        None => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "state_missing",
                "The answer from your identity provider carries no state, so it cannot be matched to a sign-in started here. Start again.",
            ));
        }
        Some(None) => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "state_unknown",
                "This sign-in is unknown, was already used, or took longer than 10 minutes. Start again.",
            ));
        }
        Some(Some(login)) => login,
    };
    if !same_browser(&headers, &login) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "state_other_browser",
            "This sign-in was started in another browser (or this browser refused Mapline's cookie), so it cannot finish here. Start again from this browser.",
        ));
    }
    let code = query.code.filter(|c| !c.is_empty()).ok_or_else(|| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "idp_error",
            "Your identity provider sent neither a code nor an error.",
        )
    })?;

    let nonce = login.nonce.clone();
    let app_for_task = app.clone();
    let identity = tokio::task::spawn_blocking(move || {
        exchange_and_verify(
            &app_for_task.oidc,
            &client,
            code,
            login.verifier,
            login.redirect_uri,
            &nonce,
        )
    })
    .await
    .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;

    if !identity.email_verified {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "email_not_verified",
            format!(
                "Your identity provider has not verified the email address {}, so it cannot sign you in here.",
                identity.email
            ),
        ));
    }
    let email = identity.email.clone();
    match sign_in_with_idp(&app, identity, &headers).await {
        Ok(cookie) => {
            tracing::info!(%email, "signed in with the IdP");
            let location = HeaderValue::from_str(&login.next)
                .unwrap_or_else(|_| HeaderValue::from_static("/"));
            Ok((
                StatusCode::SEE_OTHER,
                [(header::SET_COOKIE, cookie), (header::LOCATION, location)],
            )
                .into_response())
        }
        Err(refusal) => Err(Failure::new(
            StatusCode::FORBIDDEN,
            refusal.code(),
            format!("{} ({email}).", capitalize(&refusal.message())),
        )),
    }
}

fn capitalize(words: &str) -> String {
    let mut chars = words.chars();
    chars.next().map_or(String::new(), |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// The code exchange, the ID token's checks and, when the ID token names no email, the userinfo
/// endpoint (checked against the token's subject). Blocking.
fn exchange_and_verify(
    oidc: &Oidc,
    client: &Client,
    code: String,
    verifier: PkceCodeVerifier,
    redirect_uri: RedirectUrl,
    nonce: &Nonce,
) -> Result<IdpIdentity, Failure> {
    let send = |request| oidc.send(request);
    let exchange_failed = |why: String| {
        Failure::new(
            StatusCode::BAD_GATEWAY,
            "code_exchange_failed",
            format!(
                "Mapline could not redeem the sign-in with your identity provider: {why}. Start again."
            ),
        )
    };
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| exchange_failed(e.to_string()))?
        .set_pkce_verifier(verifier)
        .set_redirect_uri(std::borrow::Cow::Owned(redirect_uri))
        .request(&send)
        .map_err(|e| exchange_failed(token_error_words(&e)))?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| invalid_token("missing", "the identity provider sent no ID token"))?;
    let id_verifier = client.id_token_verifier();
    let claims: &CoreIdTokenClaims = id_token
        .claims(&id_verifier, nonce)
        .map_err(|e| invalid_token(claims_reason(&e), e.to_string()))?;
    if let Some(expected) = claims.access_token_hash() {
        let algorithm = id_token
            .signing_alg()
            .map_err(|e| invalid_token("signature", e.to_string()))?;
        let key = id_token
            .signing_key(&id_verifier)
            .map_err(|e| invalid_token("signature", e.to_string()))?;
        let actual = AccessTokenHash::from_token(tokens.access_token(), algorithm, key)
            .map_err(|e| invalid_token("signature", e.to_string()))?;
        if actual != *expected {
            return Err(invalid_token(
                "access_token_hash",
                "the access token does not match the ID token's at_hash",
            ));
        }
    }
    let subject = claims.subject().to_string();
    let name = |n: Option<&openidconnect::LocalizedClaim<openidconnect::EndUserName>>| {
        n.and_then(|n| n.get(None)).map(|n| n.to_string())
    };
    if let Some(email) = claims.email() {
        return Ok(IdpIdentity {
            subject,
            // Not lowercased here: `sign_in_with_idp` refuses non-ASCII before folding case.
            email: email.to_string(),
            email_verified: claims.email_verified().unwrap_or(false),
            name: name(claims.name()),
        });
    }
    // Many IdPs put the email only in userinfo when an access token is issued with the ID token.
    let info: CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .map_err(|e| exchange_failed(e.to_string()))?
        .request(&send)
        .map_err(|e| exchange_failed(format!("reading userinfo: {e}")))?;
    let email = info.email().ok_or_else(|| {
        Failure::new(
            StatusCode::FORBIDDEN,
            "email_not_verified",
            "Your identity provider did not give Mapline your email address (the `email` scope).",
        )
    })?;
    Ok(IdpIdentity {
        subject,
        // Not lowercased here: `sign_in_with_idp` refuses non-ASCII before folding case.
        email: email.to_string(),
        email_verified: info.email_verified().unwrap_or(false),
        name: name(info.name()).or_else(|| name(claims.name())),
    })
}

fn invalid_token(reason: &str, detail: impl std::fmt::Display) -> Failure {
    Failure::new(
        StatusCode::FORBIDDEN,
        "id_token_invalid",
        format!("The ID token from your identity provider was refused ({reason}): {detail}."),
    )
}

/// The check an ID token failed, in one word: signature, issuer, audience, expired, nonce.
fn claims_reason(error: &ClaimsVerificationError) -> &'static str {
    match error {
        ClaimsVerificationError::SignatureVerification(_) => "signature",
        ClaimsVerificationError::InvalidIssuer(_) => "issuer",
        ClaimsVerificationError::InvalidAudience(_) => "audience",
        ClaimsVerificationError::Expired(_) => "expired",
        ClaimsVerificationError::InvalidNonce(_) => "nonce",
        ClaimsVerificationError::InvalidSubject(_) => "subject",
        _ => "unsupported",
    }
}

fn token_error_words<RE, T>(error: &openidconnect::RequestTokenError<RE, T>) -> String
where
    RE: std::error::Error + 'static,
    T: openidconnect::ErrorResponse + 'static,
{
    match error {
        openidconnect::RequestTokenError::ServerResponse(response) => {
            format!("the identity provider answered {response}")
        }
        other => other.to_string(),
    }
}

/// `GET /api/auth/config` (no credential): which ways of signing in this server offers.
#[utoipa::path(get, path = "/api/auth/config", tag = "auth", security(()), responses((status = 200, description = "`{ \"oidc\": bool, \"signInLinks\": true }`")))]
pub(crate) async fn auth_config(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(json!({ "oidc": app.oidc.configured(), "signInLinks": true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        for (next, expected) in [
            (None, "/"),
            (Some("/p/123?x=1#y"), "/p/123?x=1#y"),
            (Some("/"), "/"),
            (Some("//evil.example"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("evil"), "/"),
            (Some(""), "/"),
            (Some("/a\r\nSet-Cookie: x=1"), "/"),
        ] {
            assert_eq!(local_next(next), expected, "{next:?}");
        }
    }

    #[test]
    fn oidc_flags_are_all_or_none_and_https_unless_loopback() {
        let check = |issuer, id, secret| {
            OidcSettings::from_flags(issuer, id, secret).map(|s| s.map(|s| s.issuer))
        };
        assert_eq!(check(None, None, None), Ok(None));
        assert_eq!(check(Some(""), None, Some(" ")), Ok(None));
        let https = Some("https://idp.example.com/realms/x");
        assert_eq!(
            check(https, Some("id"), Some("secret")),
            Ok(https.map(str::to_owned))
        );
        assert_eq!(
            check(https, None, Some("secret")),
            Err(OidcConfigError::Incomplete("--oidc-client-id".into()))
        );
        assert_eq!(
            check(None, Some("id"), None),
            Err(OidcConfigError::Incomplete(
                "--oidc-issuer, --oidc-client-secret".into()
            ))
        );
        for loopback in [
            "http://127.0.0.1:9000",
            "http://localhost:1",
            "http://[::1]:2",
        ] {
            assert!(
                check(Some(loopback), Some("i"), Some("s")).is_ok(),
                "{loopback}"
            );
        }
        for bad in [
            "http://idp.example.com",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "https://idp.example.com/?x=1",
        ] {
            assert!(check(Some(bad), Some("i"), Some("s")).is_err(), "{bad}");
        }
        assert!(matches!(
            check(Some("not a url"), Some("i"), Some("s")),
            Err(OidcConfigError::NotAUrl(..))
        ));
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        let settings = OidcSettings::from_flags(
            Some("https://idp.example.com"),
            Some("id"),
            Some("s3cr3t-value"),
        )
        .ok()
        .flatten()
        .expect("valid settings");
        assert!(!format!("{settings:?}").contains("s3cr3t"));
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for (host, expected) in [
            ("127.0.0.1", true),
            ("127.8.9.10", true),
            ("localhost", true),
            ("[::1]", true),
            ("::1", true),
            ("10.0.0.1", false),
            ("idp.example.com", false),
            ("localhost.example.com", false),
        ] {
            assert_eq!(is_loopback_host(host), expected, "{host}");
        }
    }

    fn login(started: Instant) -> PendingLogin {
        PendingLogin {
            started,
            browser: String::new(),
            nonce: Nonce::new("n".into()),
            verifier: PkceCodeVerifier::new("v".into()),
            redirect_uri: RedirectUrl::new("http://127.0.0.1/auth/oidc/callback".into())
                .expect("a valid URL"),
            next: "/".into(),
        }
    }

    #[test]
    fn a_pending_login_is_used_once_and_expires() {
        let start = Instant::now();
        let mut pending = Pending::default();
        pending.insert("a".into(), login(start), start);
        pending.insert("b".into(), login(start), start);
        assert!(pending.take("a", start).is_some());
        assert!(pending.take("a", start).is_none(), "used once");
        let late = start + LOGIN_TTL;
        assert!(
            pending.take("b", late).is_none(),
            "expired after 10 minutes"
        );
        assert!(pending.by_state.is_empty() && pending.order.is_empty());
    }

    #[test]
    fn pending_logins_are_bounded_oldest_first() {
        let start = Instant::now();
        let mut pending = Pending::default();
        for i in 0..=MAX_PENDING {
            pending.insert(i.to_string(), login(start), start);
        }
        assert_eq!(pending.by_state.len(), MAX_PENDING);
        assert!(
            pending.take("0", start).is_none(),
            "the oldest was forgotten"
        );
        assert!(pending.take(&MAX_PENDING.to_string(), start).is_some());
    }

    #[test]
    fn the_browser_cookie_is_read_only_when_well_formed() {
        let value = new_browser_value();
        let check = |cookie: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::COOKIE,
                HeaderValue::from_str(cookie).expect("ascii"),
            );
            browser_cookie(&headers)
        };
        assert_eq!(
            check(&format!("a=b; {BROWSER_COOKIE}={value}; c=d")),
            Some(value.clone())
        );
        assert_eq!(check(&format!("{BROWSER_COOKIE}=short")), None);
        assert_eq!(check(&format!("x{BROWSER_COOKIE}={value}")), None);
        assert_eq!(check("a=b"), None);
        assert_ne!(new_browser_value(), value);
    }

    #[test]
    fn failure_pages_escape_what_the_idp_sent() {
        assert_eq!(
            escape_html("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
