//! Rate limit on failed token attempts, per client address: share tokens are 256-bit secrets, so
//! guessing is hopeless anyway, but a client hammering the server with bad tokens is refused
//! cheaply (429) instead of costing a store read each time.
//!
//! A request counts as an attempt when it carries a credential (`Authorization` or a `token`
//! query parameter); it fails when it is answered 401. After `limit` failures within a minute,
//! every further request with a credential from that address is answered 429 until the minute
//! is over. Requests without a credential (the web client's files, health) are never limited.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::App;
use crate::api::ApiError;

/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Beyond this many tracked addresses, stale ones are dropped before a new one is added.
const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
}

/// Failed attempts per client address in the current window.
pub struct AuthFailures {
    limit: u32,
    by_address: Mutex<HashMap<IpAddr, Failures>>,
}

impl AuthFailures {
    /// A limiter allowing `limit` failed attempts per address per minute (0: no limit).
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            by_address: Mutex::default(),
        }
    }

    /// How long the address must wait, if it is over the limit.
    pub fn blocked_for(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let map = self
            .by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let failures = map.get(&address)?;
        let elapsed = now.saturating_duration_since(failures.since);
        (failures.count >= self.limit && elapsed < WINDOW).then(|| WINDOW - elapsed)
    }

    /// Records one failed attempt.
    pub fn record(&self, address: IpAddr, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let mut map = self
            .by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_TRACKED && !map.contains_key(&address) {
            map.retain(|_, f| now.saturating_duration_since(f.since) < WINDOW);
        }
        let entry = map.entry(address).or_insert(Failures {
            since: now,
            count: 0,
        });
        if now.saturating_duration_since(entry.since) >= WINDOW {
            *entry = Failures {
                since: now,
                count: 0,
            };
        }
        entry.count = entry.count.saturating_add(1);
    }
}

fn carries_credential(request: &Request) -> bool {
    request.headers().contains_key(header::AUTHORIZATION)
        || request.uri().query().is_some_and(|query| {
            query
                .split('&')
                .any(|pair| pair == "token" || pair.starts_with("token="))
        })
}

/// The middleware: refuses limited addresses, and counts 401 answers to credentialed requests.
pub async fn limit_failed_tokens(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let Some(address) = address.filter(|_| carries_credential(&request)) else {
        return next.run(request).await;
    };
    if let Some(wait) = app.auth_failures.blocked_for(address, Instant::now()) {
        app.metrics.auth_refused.inc();
        tracing::warn!(%address, "too many failed token attempts; refused");
        let seconds = wait.as_secs().max(1);
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed token attempts from this address; try again in {seconds} s"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        app.auth_failures.record(address, Instant::now());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_the_limit_until_the_window_ends() {
        let limiter = AuthFailures::new(3);
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let start = Instant::now();
        for _ in 0..2 {
            limiter.record(a, start);
        }
        assert_eq!(limiter.blocked_for(a, start), None, "under the limit");
        limiter.record(a, start);
        let wait = limiter.blocked_for(a, start + Duration::from_secs(10));
        assert_eq!(wait, Some(Duration::from_secs(50)));
        assert_eq!(
            limiter.blocked_for(b, start),
            None,
            "other addresses are free"
        );
        assert_eq!(
            limiter.blocked_for(a, start + WINDOW),
            None,
            "the window ended"
        );
        limiter.record(a, start + WINDOW);
        assert_eq!(
            limiter.blocked_for(a, start + WINDOW),
            None,
            "a new window starts from zero"
        );
    }

    #[test]
    fn zero_means_no_limit() {
        let limiter = AuthFailures::new(0);
        let a = "10.0.0.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..1000 {
            limiter.record(a, now);
        }
        assert_eq!(limiter.blocked_for(a, now), None);
    }
}
