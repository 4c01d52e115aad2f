//! The one place a reason code becomes a response: status, `application/json` body
//! `{"error","message","request_id"}` and the extra headers the reason calls for.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
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

/// Finishes the upstream's answer: `X-Request-Id`, then the route's CORS policy (the
/// upstream's own `Access-Control-*` headers never reach the client unless the route says
/// `cors: upstream`).
///
/// Works on the answer's plain `http` parts, without Pingora's header-case map (each insert
/// through `ResponseHeader` re-parses the name and grows two maps sized exactly for the
/// upstream's headers): the client receives standard names in their usual capitalization and
/// others in lower case, as over HTTP/2.
pub fn finish_upstream_answer(
    resp: &mut ResponseHeader,
    request_id: &str,
    cors: &ResponseCors,
) -> Result<()> {
    // The placeholder allocates nothing (an empty header map).
    let placeholder = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts: http::response::Parts = std::mem::replace(resp, placeholder).into();
    let headers = &mut parts.headers;
    // One growth of the map (sized by Pingora for the upstream's headers), not one per insert.
    headers.reserve(match cors {
        ResponseCors::Allow(allow) => 2 + allow.len(),
        _ => 2,
    });
    let id = HeaderValue::from_str(request_id)
        .map_err(|e| Error::explain(ErrorType::InternalError, format!("invalid request id: {e}")));
    let result = id.map(|id| {
        headers.insert(X_REQUEST_ID, id);
        apply_cors(headers, cors);
    });
    *resp = ResponseHeader::from(parts);
    result
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn apply_cors(headers: &mut http::HeaderMap, cors: &ResponseCors) {
    if *cors == ResponseCors::Upstream {
        return;
    }
    let upstream_cors: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in upstream_cors {
        headers.remove(&name);
    }
    let vary_origin = |headers: &mut http::HeaderMap| {
        let listed = headers
            .get_all(http::header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("origin") || t.trim() == "*");
        if !listed {
            headers.append(http::header::VARY, HeaderValue::from_static("Origin"));
        }
    };
    match cors {
        ResponseCors::Strip | ResponseCors::Upstream => {}
        ResponseCors::StripVary => vary_origin(headers),
        ResponseCors::Allow(allow) => {
            for (name, value) in allow {
                if name == http::header::VARY {
                    continue;
                }
                headers.insert(name.clone(), value.clone());
            }
            vary_origin(headers);
        }
    }
}
