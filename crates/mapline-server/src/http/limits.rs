//! Rate limit on failed token attempts: share tokens are 256-bit secrets, so guessing is hopeless
//! anyway, but a client hammering the server with bad tokens is refused cheaply (429) instead of
//! costing a store read each time.
//!
//! A request counts as an attempt when it carries a credential (`Authorization` or a `token`
//! query parameter); it fails when it is answered 401. Failures are counted twice, per minute:
//!
//! - per **(address, presented token)**: after `per_token` failures, further requests from that
//!   address with *that* token are answered 429. A browser tab left open on a revoked link keeps
//!   retrying its own token, so it blocks only itself, never the colleagues behind the same NAT
//!   whose links still work.
//! - per **address**: after `per_address` failures with any tokens, every request with a
//!   credential from that address is answered 429. This stops a sweep of many distinct guesses,
//!   which the per-token count never would.
//!
//! A blocked request is answered 429, not 401, so it is not counted again: a stale tab adds at
//! most `per_token` failures a minute to its address's count. Only a SHA-256 of the token is kept,
//! never the token. Requests without a credential (the web client's files, health) are never
//! limited. Memory is bounded: at most [`MAX_ADDRESSES`] addresses and [`MAX_TOKENS`] (address,
//! token) pairs are tracked; when full, finished windows are dropped first, then the oldest.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::App;
use crate::http::error::ApiError;
use crate::http::extract::bearer;
use crate::identity::auth::token_hash;

/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// At most this many addresses are tracked.
pub const MAX_ADDRESSES: usize = 10_000;
/// At most this many (address, token) pairs are tracked (about 80 bytes each).
pub const MAX_TOKENS: usize = 50_000;

#[derive(Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
}

impl Failures {
    fn current(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) < WINDOW
    }

    /// How long is left of the window, if `limit` (non-zero) is reached in it.
    fn blocked_for(&self, limit: u32, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.since);
        (limit > 0 && self.count >= limit && elapsed < WINDOW).then(|| WINDOW - elapsed)
    }
}

/// What a request is refused for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// This token failed too often from this address; other tokens from it are fine.
    Token(Duration),
    /// The address failed too often with any tokens.
    Address(Duration),
}

impl Blocked {
    /// How long is left until the request would be accepted.
    pub fn wait(self) -> Duration {
        match self {
            Blocked::Token(wait) | Blocked::Address(wait) => wait,
        }
    }
}

/// SHA-256 of a presented token: the only form in which the limiter remembers it.
pub type TokenKey = [u8; 32];

#[derive(Default)]
struct Tracked {
    by_token: HashMap<(IpAddr, TokenKey), Failures>,
    by_address: HashMap<IpAddr, Failures>,
}

/// Failed attempts per (address, token) and per address in the current window.
pub struct AuthFailures {
    per_token: u32,
    per_address: u32,
    max_addresses: usize,
    max_tokens: usize,
    tracked: Mutex<Tracked>,
}

impl AuthFailures {
    /// A limiter allowing `per_token` failed attempts per (address, token) and `per_address` per
    /// address, per minute (0: that limit is off).
    pub fn new(per_token: u32, per_address: u32) -> Self {
        Self {
            per_token,
            per_address,
            max_addresses: MAX_ADDRESSES,
            max_tokens: MAX_TOKENS,
            tracked: Mutex::default(),
        }
    }

    fn enabled(&self) -> bool {
        self.per_token > 0 || self.per_address > 0
    }

    /// Whether a request from `address` presenting `token` must wait, and how long.
    pub fn blocked_for(&self, address: IpAddr, token: &TokenKey, now: Instant) -> Option<Blocked> {
        if !self.enabled() {
            return None;
        }
        let tracked = self.tracked.lock().unwrap_or_else(PoisonError::into_inner);
        let by_address = tracked
            .by_address
            .get(&address)
            .and_then(|f| f.blocked_for(self.per_address, now))
            .map(Blocked::Address);
        by_address.or_else(|| {
            tracked
                .by_token
                .get(&(address, *token))
                .and_then(|f| f.blocked_for(self.per_token, now))
                .map(Blocked::Token)
        })
    }

    /// Records one failed attempt from `address` with `token`.
    pub fn record(&self, address: IpAddr, token: &TokenKey, now: Instant) {
        if !self.enabled() {
            return;
        }
        let mut tracked = self.tracked.lock().unwrap_or_else(PoisonError::into_inner);
        count(&mut tracked.by_address, address, self.max_addresses, now);
        count(
            &mut tracked.by_token,
            (address, *token),
            self.max_tokens,
            now,
        );
    }

    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        let tracked = self.tracked.lock().unwrap_or_else(PoisonError::into_inner);
        (tracked.by_address.len(), tracked.by_token.len())
    }
}

/// Adds one failure to `key`'s window, keeping `map` at most `max` entries.
fn count<K: Eq + Hash + Copy>(map: &mut HashMap<K, Failures>, key: K, max: usize, now: Instant) {
    if map.len() >= max && !map.contains_key(&key) {
        map.retain(|_, f| f.current(now));
        if map.len() >= max {
            // Every window is current: forget the one that ends first.
            let oldest = map.iter().min_by_key(|(_, f)| f.since).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
    }
    let entry = map.entry(key).or_insert(Failures {
        since: now,
        count: 0,
    });
    if !entry.current(now) {
        *entry = Failures {
            since: now,
            count: 0,
        };
    }
    entry.count = entry.count.saturating_add(1);
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The credential a request presents, as `api::authenticate` reads it (bearer first, then the
/// `token` query parameter), or `None` when it presents none.
fn presented_token(request: &Request) -> Option<TokenKey> {
    let query = request.uri().query().filter(|query| {
        query
            .split('&')
            .any(|pair| pair == "token" || pair.starts_with("token="))
    });
    if !request.headers().contains_key(header::AUTHORIZATION) && query.is_none() {
        return None;
    }
    let from_query = query.map(|raw| {
        Query::<TokenQuery>::try_from_uri(request.uri())
            .ok()
            .and_then(|Query(q)| q.token)
            // A query the handler cannot read either: key it by its raw text.
            .unwrap_or_else(|| raw.to_owned())
    });
    let token = bearer(request.headers())
        .map(str::to_owned)
        .or(from_query)
        .unwrap_or_default();
    Some(token_hash(&token))
}

/// The middleware: refuses blocked (address, token) pairs and addresses, and counts 401 answers
/// to credentialed requests.
pub async fn limit_failed_tokens(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let (Some(address), Some(token)) = (address, presented_token(&request)) else {
        return next.run(request).await;
    };
    if let Some(blocked) = app
        .auth_failures
        .blocked_for(address, &token, Instant::now())
    {
        app.metrics.auth_refused.inc();
        let seconds = blocked.wait().as_secs().max(1);
        let message = match blocked {
            Blocked::Token(_) => {
                tracing::warn!(%address, "too many failed attempts with one token; refused");
                format!("too many failed attempts with this token; try again in {seconds} s")
            }
            Blocked::Address(_) => {
                tracing::warn!(%address, "too many failed token attempts from the address; refused");
                format!(
                    "too many failed token attempts from this address; try again in {seconds} s"
                )
            }
        };
        let mut response =
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
                .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        app.auth_failures.record(address, &token, Instant::now());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn key(token: &str) -> TokenKey {
        token_hash(token)
    }

    #[test]
    fn a_token_is_blocked_after_the_limit_until_the_window_ends() {
        let limiter = AuthFailures::new(3, 30);
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let stale = key("s_revoked");
        let start = Instant::now();
        for _ in 0..2 {
            limiter.record(a, &stale, start);
        }
        assert_eq!(
            limiter.blocked_for(a, &stale, start),
            None,
            "under the limit"
        );
        limiter.record(a, &stale, start);
        let later = start + Duration::from_secs(10);
        assert_eq!(
            limiter.blocked_for(a, &stale, later),
            Some(Blocked::Token(Duration::from_secs(50)))
        );
        assert_eq!(
            limiter.blocked_for(b, &stale, start),
            None,
            "other addresses are free"
        );
        assert_eq!(
            limiter.blocked_for(a, &stale, start + WINDOW),
            None,
            "the window ended"
        );
        limiter.record(a, &stale, start + WINDOW);
        assert_eq!(
            limiter.blocked_for(a, &stale, start + WINDOW),
            None,
            "a new window starts from zero"
        );
    }

    #[test]
    fn a_stale_token_does_not_block_other_tokens_from_its_address() {
        let limiter = AuthFailures::new(30, 300);
        let office = ip("203.0.113.7");
        let (stale, colleague) = (key("s_revoked"), key("s_valid"));
        let now = Instant::now();
        // Two tabs on a revoked link, retrying about 14 times a minute each.
        for _ in 0..28 {
            limiter.record(office, &stale, now);
        }
        assert_eq!(limiter.blocked_for(office, &stale, now), None);
        for _ in 0..2 {
            limiter.record(office, &stale, now);
        }
        assert!(matches!(
            limiter.blocked_for(office, &stale, now),
            Some(Blocked::Token(_))
        ));
        assert_eq!(
            limiter.blocked_for(office, &colleague, now),
            None,
            "the colleague's link still works"
        );
    }

    #[test]
    fn a_sweep_of_distinct_tokens_blocks_the_address() {
        let limiter = AuthFailures::new(30, 300);
        let sweeper = ip("198.51.100.9");
        let now = Instant::now();
        for i in 0..299 {
            limiter.record(sweeper, &key(&format!("s_guess{i}")), now);
        }
        let next = key("s_guess299");
        assert_eq!(limiter.blocked_for(sweeper, &next, now), None);
        limiter.record(sweeper, &next, now);
        assert!(matches!(
            limiter.blocked_for(sweeper, &key("s_anything"), now),
            Some(Blocked::Address(_))
        ));
        assert_eq!(
            limiter.blocked_for(ip("198.51.100.10"), &next, now),
            None,
            "other addresses are free"
        );
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let now = Instant::now();
        let a = ip("10.0.0.1");
        let none = AuthFailures::new(0, 0);
        let only_address = AuthFailures::new(0, 5);
        let only_token = AuthFailures::new(5, 0);
        for i in 0..1000 {
            none.record(a, &key("s_x"), now);
            only_token.record(a, &key(&format!("s_{i}")), now);
        }
        for _ in 0..1000 {
            only_address.record(a, &key("s_x"), now);
        }
        assert_eq!(none.blocked_for(a, &key("s_x"), now), None);
        assert_eq!(none.tracked(), (0, 0), "nothing is kept when both are off");
        assert_eq!(only_token.blocked_for(a, &key("s_new"), now), None);
        assert!(matches!(
            only_address.blocked_for(a, &key("s_new"), now),
            Some(Blocked::Address(_))
        ));
    }

    #[test]
    fn memory_stays_bounded_under_a_distributed_sweep() {
        let limiter = AuthFailures {
            max_addresses: 50,
            max_tokens: 200,
            ..AuthFailures::new(30, 300)
        };
        let start = Instant::now();
        for i in 0..1000u32 {
            let address = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i / 10));
            limiter.record(
                address,
                &key(&i.to_string()),
                start + Duration::from_millis(i.into()),
            );
        }
        assert_eq!(limiter.tracked(), (50, 200), "full, never over");
        // The oldest were forgotten, so the newest are still tracked: counting them again evicts
        // nobody.
        let last = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + 99));
        limiter.record(last, &key("999"), start + Duration::from_secs(1));
        assert_eq!(limiter.tracked(), (50, 200));
        // Once the windows are over, a newcomer makes room by dropping them, not current ones.
        limiter.record(
            ip("192.0.2.1"),
            &key("s_late"),
            start + WINDOW + Duration::from_secs(2),
        );
        assert_eq!(limiter.tracked(), (1, 1));
    }
}
