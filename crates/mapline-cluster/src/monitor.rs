//! Reads `/varz` from an engine node's monitoring port: the only place a client can see
//! whether the node fsyncs before acknowledging. Plain HTTP/1.0 GET over a TCP stream (the
//! monitoring port speaks nothing else here), bounded in time and size.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::CheckError;

const MAX_BODY: u64 = 1 << 20;

pub(crate) async fn varz(url: &str, timeout: Duration) -> Result<serde_json::Value, CheckError> {
    let fail = |reason: String| CheckError::Monitor {
        url: url.to_owned(),
        reason,
    };
    let authority = url
        .strip_prefix("http://")
        .ok_or_else(|| fail("only http:// monitoring URLs are read".to_owned()))?
        .trim_end_matches('/');
    if authority.contains('/') || authority.is_empty() {
        return Err(fail(
            "give the monitoring port as http://host:port".to_owned(),
        ));
    }
    let request = async {
        let mut socket = tokio::net::TcpStream::connect(authority).await?;
        socket
            .write_all(format!("GET /varz HTTP/1.0\r\nHost: {authority}\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        socket.take(MAX_BODY).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| fail(format!("no answer within {timeout:?}")))?
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("not an HTTP response".to_owned()))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(fail(format!("answered {status:?}")));
    }
    serde_json::from_str(body).map_err(|e| fail(format!("/varz is not JSON: {e}")))
}
