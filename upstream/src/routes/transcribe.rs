//! `POST /api/transcribe`: stands in for speech-to-text. The audio body is streamed into a
//! SHA-256 hasher (never held whole) and answered `{"bytes": N, "sha256": "<hex>"}`;
//! `?delay_ms=N` holds the answer N ms, like model inference time would.

use std::time::Duration;

use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::body::{check_declared_length, consume};
use crate::error::ApiError;

/// Largest audio body accepted (413 above).
const MAX_AUDIO_BYTES: u64 = 64 * 1024 * 1024;
/// Longest `delay_ms` accepted (400 above).
const MAX_DELAY_MS: u64 = 600_000;

/// Hashes the body, waits `delay_ms`, answers its length and digest.
pub(crate) async fn transcribe(
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let delay = delay_ms(query.as_deref().unwrap_or(""))?;
    check_declared_length(&headers, MAX_AUDIO_BYTES)?;
    let mut hasher = Sha256::new();
    let bytes = consume(body, MAX_AUDIO_BYTES, |chunk| hasher.update(chunk)).await?;
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let sha256 = hex::encode(hasher.finalize());
    Ok(Json(json!({ "bytes": bytes, "sha256": sha256 })))
}

/// The `delay_ms` query parameter (0 if absent).
fn delay_ms(query: &str) -> Result<u64, ApiError> {
    let Some(value) = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(key, value)| (key == "delay_ms").then_some(value))
    else {
        return Ok(0);
    };
    match value.parse::<u64>() {
        Ok(ms) if ms <= MAX_DELAY_MS => Ok(ms),
        _ => Err(ApiError::bad_request(
            "invalid_query",
            format!("`delay_ms` must be a whole number from 0 to {MAX_DELAY_MS}, got {value:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_delay() {
        assert_eq!(delay_ms("").unwrap(), 0);
        assert_eq!(delay_ms("a=1&delay_ms=250").unwrap(), 250);
        assert!(delay_ms("delay_ms=abc").is_err());
        assert!(delay_ms("delay_ms=").is_err());
        assert!(delay_ms("delay_ms=600001").is_err());
    }
}
