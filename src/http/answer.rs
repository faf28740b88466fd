//! What a server answers when a request's scope ends the work: in the request's own
//! protocol, so that the client's library reports the right error.
//!
//! | protocol | deadline | service stopping | other cancel |
//! |---|---|---|---|
//! | gRPC: trailers-only, `grpc-message` the percent-encoded sentence | `grpc-status` 4 DEADLINE_EXCEEDED | 14 UNAVAILABLE | 1 CANCELLED |
//! | Connect unary: HTTP status and a JSON error body | 504 `deadline_exceeded` | 503 `unavailable` | 499 `canceled` |
//! | plain HTTP: the sentence as a text body | 504 | 503 | 503 |
//!
//! A response stream cut by the scope ends the same way where the protocol can say it:
//! gRPC with trailers, Connect streaming with an end-of-stream message.

use std::fmt::Write as _;

use bytes::{BufMut as _, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
const CONNECT_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("connect-protocol-version");

/// The wire protocol of a request, as far as the answer to an interrupted one depends on
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// `content-type: application/grpc…` (gRPC, gRPC-Web).
    Grpc,
    /// A Connect unary call: a `connect-protocol-version` header.
    ConnectUnary,
    /// A Connect streaming call: `content-type: application/connect+…`.
    ConnectStreaming,
    /// Anything else.
    Http,
}

impl Protocol {
    /// Whether an answer in this protocol repeats the request's `content-type` (gRPC's
    /// `application/grpc+proto`, Connect streaming's `application/connect+json`).
    pub(crate) fn echoes_content_type(self) -> bool {
        matches!(self, Protocol::Grpc | Protocol::ConnectStreaming)
    }

    /// The protocol of a request with these headers, whose `content-type` the caller
    /// looked up already.
    pub(crate) fn from(content_type: Option<&HeaderValue>, headers: &HeaderMap) -> Protocol {
        let content_type = content_type.map(HeaderValue::as_bytes).unwrap_or_default();
        if content_type.starts_with(b"application/grpc") {
            Protocol::Grpc
        } else if content_type.starts_with(b"application/connect+") {
            Protocol::ConnectStreaming
        } else if headers.contains_key(CONNECT_PROTOCOL_VERSION) {
            Protocol::ConnectUnary
        } else {
            Protocol::Http
        }
    }
}

/// Why the request's scope ended the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The request's deadline passed (its own budget or an enclosing one).
    Deadline,
    /// The service is stopping: the layer's root scope was cancelled.
    Stopping,
    /// The request's scope was cancelled otherwise.
    Cancelled,
}

impl Ending {
    fn grpc_status(self) -> &'static str {
        match self {
            Ending::Deadline => "4",
            Ending::Stopping => "14",
            Ending::Cancelled => "1",
        }
    }

    fn connect(self) -> (StatusCode, &'static str) {
        match self {
            Ending::Deadline => (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
            Ending::Stopping => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            // 499, "client closed request": the Connect protocol's mapping of `canceled`.
            Ending::Cancelled => (
                StatusCode::from_u16(499).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                "canceled",
            ),
        }
    }

    fn http_status(self) -> StatusCode {
        match self {
            Ending::Deadline => StatusCode::GATEWAY_TIMEOUT,
            Ending::Stopping | Ending::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An answer's body, before it is wrapped into the layer's body type: its one data frame
/// and its trailers, either of which may be absent.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub(crate) data: Option<Bytes>,
    pub(crate) trailers: Option<HeaderMap>,
}

/// The whole response to a request whose scope ended it before the inner service
/// answered.
pub(crate) fn response(
    protocol: Protocol,
    ending: Ending,
    sentence: &str,
    request_headers: &HeaderMap,
) -> Response<Answer> {
    let mut response = Response::new(Answer::default());
    match protocol {
        Protocol::Grpc => {
            // Trailers-only: status and message in the headers, no body at all.
            let content_type = request_headers
                .get(CONTENT_TYPE)
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("application/grpc"));
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, content_type);
            grpc_status(headers, ending, sentence);
        }
        Protocol::ConnectUnary => {
            let (status, code) = ending.connect();
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response.body_mut().data = Some(connect_error_json(code, sentence).into());
        }
        Protocol::ConnectStreaming => {
            // Streaming calls answer 200 and carry the error in the end-of-stream message.
            let content_type = request_headers
                .get(CONTENT_TYPE)
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("application/connect+json"));
            response.headers_mut().insert(CONTENT_TYPE, content_type);
            response.body_mut().data = Some(connect_end_stream(ending, sentence));
        }
        Protocol::Http => {
            *response.status_mut() = ending.http_status();
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response.body_mut().data = Some(Bytes::from(format!("{sentence}\n")));
        }
    }
    response
}

/// The trailers that end a gRPC response stream cut by the scope.
pub(crate) fn grpc_trailers(ending: Ending, sentence: &str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    grpc_status(&mut trailers, ending, sentence);
    trailers
}

fn grpc_status(headers: &mut HeaderMap, ending: Ending, sentence: &str) {
    headers.insert(GRPC_STATUS, HeaderValue::from_static(ending.grpc_status()));
    if let Ok(message) = HeaderValue::try_from(percent_encode(sentence)) {
        headers.insert(GRPC_MESSAGE, message);
    }
}

/// The end-of-stream message of a Connect streaming response: flag `0x02`, a length, and
/// a JSON object with the error.
pub(crate) fn connect_end_stream(ending: Ending, sentence: &str) -> Bytes {
    let (_, code) = ending.connect();
    let json = format!("{{\"error\":{}}}", connect_error_json(code, sentence));
    let mut message = BytesMut::with_capacity(5 + json.len());
    message.put_u8(0x02);
    message.put_u32(u32::try_from(json.len()).unwrap_or(u32::MAX));
    message.put_slice(json.as_bytes());
    message.freeze()
}

fn connect_error_json(code: &str, message: &str) -> String {
    let mut json = format!("{{\"code\":\"{code}\",\"message\":\"");
    for c in message.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            '\n' => json.push_str("\\n"),
            '\r' => json.push_str("\\r"),
            '\t' => json.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(json, "\\u{:04x}", u32::from(c));
            }
            c => json.push(c),
        }
    }
    json.push_str("\"}");
    json
}

/// gRPC's `grpc-message` encoding: printable ASCII as is, except `%`; every other byte of
/// the UTF-8 text as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for &(name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    #[test]
    fn the_protocol_is_told_by_content_type_and_connects_version_header() {
        let of = |pairs: &[(&'static str, &'static str)]| {
            let headers = headers(pairs);
            Protocol::from(headers.get(CONTENT_TYPE), &headers)
        };
        assert_eq!(of(&[("content-type", "application/grpc")]), Protocol::Grpc);
        assert_eq!(
            of(&[("content-type", "application/grpc+proto")]),
            Protocol::Grpc
        );
        assert_eq!(
            of(&[("content-type", "application/connect+json")]),
            Protocol::ConnectStreaming
        );
        assert_eq!(
            of(&[
                ("content-type", "application/json"),
                ("connect-protocol-version", "1")
            ]),
            Protocol::ConnectUnary
        );
        assert_eq!(of(&[("content-type", "application/json")]), Protocol::Http);
        assert_eq!(of(&[]), Protocol::Http);
    }

    const SENTENCE: &str = "deadline of 2s of 'GET /export' exceeded: 100% used";

    #[test]
    fn grpc_is_answered_trailers_only_with_the_status_of_each_ending() {
        let request = headers(&[("content-type", "application/grpc+proto")]);
        for (ending, status) in [
            (Ending::Deadline, "4"),
            (Ending::Stopping, "14"),
            (Ending::Cancelled, "1"),
        ] {
            let response = response(Protocol::Grpc, ending, SENTENCE, &request);
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["content-type"], "application/grpc+proto");
            assert_eq!(response.headers()["grpc-status"], status);
            assert_eq!(
                response.headers()["grpc-message"],
                "deadline of 2s of 'GET /export' exceeded: 100%25 used"
            );
            assert!(response.body().data.is_none() && response.body().trailers.is_none());
        }
    }

    #[test]
    fn grpc_message_percent_encodes_everything_but_printable_ascii() {
        assert_eq!(percent_encode("a b~"), "a b~");
        assert_eq!(percent_encode("50%"), "50%25");
        assert_eq!(percent_encode("é\n"), "%C3%A9%0A");
    }

    #[test]
    fn connect_unary_is_answered_with_its_http_status_and_a_json_error() {
        let request = headers(&[("connect-protocol-version", "1")]);
        for (ending, status, code) in [
            (Ending::Deadline, 504, "deadline_exceeded"),
            (Ending::Stopping, 503, "unavailable"),
            (Ending::Cancelled, 499, "canceled"),
        ] {
            let response = response(
                Protocol::ConnectUnary,
                ending,
                "a \"quoted\"\nline",
                &request,
            );
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()["content-type"], "application/json");
            let body = response.body().data.clone().unwrap();
            assert_eq!(
                std::str::from_utf8(&body).unwrap(),
                format!(r#"{{"code":"{code}","message":"a \"quoted\"\nline"}}"#)
            );
        }
    }

    #[test]
    fn connect_streaming_ends_with_an_end_of_stream_message() {
        let message = connect_end_stream(Ending::Deadline, "late");
        let json = br#"{"error":{"code":"deadline_exceeded","message":"late"}}"#;
        assert_eq!(message[0], 0x02);
        assert_eq!(
            u32::from_be_bytes(message[1..5].try_into().unwrap()) as usize,
            json.len()
        );
        assert_eq!(&message[5..], json);
    }

    #[test]
    fn plain_http_gets_504_for_a_deadline_and_503_otherwise() {
        let request = HeaderMap::new();
        for (ending, status) in [
            (Ending::Deadline, 504),
            (Ending::Stopping, 503),
            (Ending::Cancelled, 503),
        ] {
            let response = response(Protocol::Http, ending, SENTENCE, &request);
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(
                response.body().data.as_deref(),
                Some(format!("{SENTENCE}\n").as_bytes())
            );
        }
    }

    #[test]
    fn a_cut_grpc_stream_ends_with_trailers() {
        let trailers = grpc_trailers(Ending::Deadline, "deadline of 2s exceeded");
        assert_eq!(trailers["grpc-status"], "4");
        assert_eq!(trailers["grpc-message"], "deadline of 2s exceeded");
    }
}
