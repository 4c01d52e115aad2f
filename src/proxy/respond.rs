//! The one place a reason code becomes a response: status, `application/json` body
//! `{"error","message","request_id"}` and the extra headers the reason calls for.

use bytes::Bytes;
use http::HeaderName;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use crate::policy::{Reason, ResponseCors};

/// The JSON body of a denial.
pub fn body(reason: Reason, message: &str, request_id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "error": reason.as_str(),
        "message": message,
        "request_id": request_id,
    }))
    .unwrap_or_default()
}

/// Writes a denial to the client. When the request still has an unread body, the connection
/// is closed afterwards instead of draining what may be a huge upload.
pub async fn deny(
    session: &mut Session,
    reason: Reason,
    message: &str,
    request_id: &str,
    extra: &[(HeaderName, String)],
) -> Result<()> {
    let body = body(reason, message, request_id);
    let mut resp = ResponseHeader::build(reason.status(), Some(4 + extra.len()))?;
    resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header("x-request-id", request_id)?;
    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    for (name, value) in extra {
        resp.insert_header(name.clone(), value.as_str())?;
    }
    if !session.is_body_empty() && !session.is_body_done() {
        session.set_keepalive(None);
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from(body)), true)
            .await?;
    }
    Ok(())
}

/// Answers a CORS preflight: 204 with the allow headers, no body.
pub async fn preflight(
    session: &mut Session,
    request_id: &str,
    headers: &[(HeaderName, String)],
) -> Result<()> {
    let mut resp = ResponseHeader::build(204, Some(2 + headers.len()))?;
    resp.insert_header("x-request-id", request_id)?;
    resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
    for (name, value) in headers {
        resp.insert_header(name.clone(), value.as_str())?;
    }
    session.write_response_header(Box::new(resp), true).await
}

/// Applies the route's CORS policy to the upstream's answer: its own `Access-Control-*`
/// headers never reach the client unless the route says `cors: upstream`.
pub fn apply_cors(resp: &mut ResponseHeader, cors: &ResponseCors) -> Result<()> {
    if *cors == ResponseCors::Upstream {
        return Ok(());
    }
    let upstream_cors: Vec<HeaderName> = resp
        .headers
        .keys()
        .filter(|n| n.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in upstream_cors {
        resp.remove_header(&name);
    }
    let vary_origin = |resp: &mut ResponseHeader| -> Result<()> {
        let listed = resp
            .headers
            .get_all(http::header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("origin") || t.trim() == "*");
        if !listed {
            resp.append_header(http::header::VARY, "Origin")?;
        }
        Ok(())
    };
    match cors {
        ResponseCors::Strip | ResponseCors::Upstream => {}
        ResponseCors::StripVary => vary_origin(resp)?,
        ResponseCors::Allow(headers) => {
            for (name, value) in headers {
                if name == http::header::VARY {
                    continue;
                }
                resp.insert_header(name.clone(), value.as_str())?;
            }
            vary_origin(resp)?;
        }
    }
    Ok(())
}
