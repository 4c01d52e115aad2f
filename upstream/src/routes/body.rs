//! Reading request bodies as streams, with a size cap and JSON errors, for the handlers that
//! need the body.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use futures_util::StreamExt;

use crate::error::ApiError;

/// Refuses at once a body whose `Content-Length` already exceeds `limit`.
pub(crate) fn check_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => Err(ApiError::too_large(limit)),
        _ => Ok(()),
    }
}

/// Streams `body` into `sink` chunk by chunk and returns its length: 413 once more than
/// `limit` bytes arrived, 400 if the body broke off.
pub(crate) async fn consume(
    body: Body,
    limit: u64,
    mut sink: impl FnMut(&[u8]),
) -> Result<u64, ApiError> {
    let mut chunks = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(ApiError::body)?;
        total = total.saturating_add(chunk.len() as u64);
        if total > limit {
            return Err(ApiError::too_large(limit));
        }
        sink(&chunk);
    }
    Ok(total)
}
