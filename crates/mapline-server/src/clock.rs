//! The server's clock, in one place: everything that stamps a time asks here.

/// Milliseconds since the Unix epoch, by the server's clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
