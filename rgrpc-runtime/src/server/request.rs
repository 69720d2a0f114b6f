//! The request-head checks a gRPC server makes before it routes a call: pure, over
//! `http::request::Parts`, with the spec line that decides each one.

use std::time::Duration;

use http::{HeaderValue, Method, StatusCode};

use crate::codec::compression::Encoding;
use crate::codec::timeout;
use crate::status::Status;
use crate::transport::headers::{
    CONTENT_TYPE, GRPC_ACCEPT_ENCODING, GRPC_ENCODING, GRPC_TIMEOUT, TE,
};

/// What the head says about the call, once it passed the checks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// From `grpc-timeout`.
    pub timeout: Option<Duration>,
    /// The request messages' compression (`grpc-encoding`).
    pub encoding: Option<Encoding>,
    /// The client accepts gzip responses (`grpc-accept-encoding`).
    pub accepts_gzip: bool,
}

/// Why a request is not served.
#[derive(Debug)]
pub(crate) enum Reject {
    /// Not a gRPC request at all: a plain HTTP status, no gRPC status.
    Http(StatusCode),
    /// A gRPC request the server refuses: a Trailers-Only response with this status.
    /// `list_encodings`: add `grpc-accept-encoding` (compression.md, for an unknown
    /// `grpc-encoding`).
    Grpc {
        status: Status,
        list_encodings: bool,
    },
}

impl Reject {
    fn grpc(status: Status) -> Reject {
        Reject::Grpc {
            status,
            list_encodings: false,
        }
    }
}

/// The headers `check` reads, found in one pass over the header block (a lookup per
/// name hashed each name and probed the map: five lookups were ~1.3% of the server's
/// CPU on small unary calls). Each keeps the first value, as `HeaderMap::get` does.
#[derive(Default)]
struct Found<'a> {
    content_type: Option<&'a HeaderValue>,
    te: Option<&'a HeaderValue>,
    timeout: Option<&'a HeaderValue>,
    encoding: Option<&'a HeaderValue>,
    accepts_gzip: bool,
    /// The first `-bin` header whose value is not base64.
    bad_bin: Option<&'a http::HeaderName>,
}

impl<'a> Found<'a> {
    fn scan(headers: &'a http::HeaderMap) -> Found<'a> {
        let mut found = Found::default();
        for (name, value) in headers {
            if *name == CONTENT_TYPE {
                found.content_type.get_or_insert(value);
            } else if *name == TE {
                found.te.get_or_insert(value);
            } else if *name == GRPC_TIMEOUT {
                found.timeout.get_or_insert(value);
            } else if *name == GRPC_ENCODING {
                found.encoding.get_or_insert(value);
            } else if *name == GRPC_ACCEPT_ENCODING {
                found.accepts_gzip |= Encoding::Gzip.accepted_by(value.as_bytes());
            } else if found.bad_bin.is_none()
                && name.as_str().ends_with("-bin")
                && !crate::metadata::is_valid_bin(value.as_bytes())
            {
                found.bad_bin = Some(name);
            }
        }
        found
    }
}

/// Checks a request head (PROTOCOL-HTTP2.md, "Requests").
pub(crate) fn check(parts: &http::request::Parts) -> Result<Head, Reject> {
    // ":method → POST"; anything else is not a gRPC request.
    if parts.method != Method::POST {
        return Err(Reject::Http(StatusCode::METHOD_NOT_ALLOWED));
    }
    let found = Found::scan(&parts.headers);
    // "If Content-Type does not begin with "application/grpc", gRPC servers SHOULD
    // respond with HTTP status of 415 (Unsupported Media Type)."
    let content_type = found.content_type.map(HeaderValue::as_bytes);
    let Some(subtype) = content_type.and_then(|ct| ct.strip_prefix(b"application/grpc")) else {
        return Err(Reject::Http(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    };
    if !(matches!(subtype, b"" | b"+proto") || subtype.starts_with(b";")) {
        return Err(Reject::grpc(Status::unimplemented(
            "unsupported content-type: only application/grpc+proto is served",
        )));
    }
    // "TE → "te" "trailers"": a client that sends another value sits behind a proxy
    // that will drop the trailers (RFC 9113 section 8.2.2 allows no other value). A
    // missing te is tolerated, as grpc-go does.
    if let Some(te) = found.te {
        if te.as_bytes() != b"trailers" {
            return Err(Reject::grpc(Status::internal(format!(
                "invalid te header {:?}: only \"trailers\" is allowed",
                String::from_utf8_lossy(te.as_bytes())
            ))));
        }
    }
    // ":path → "/" Service-Name "/" {method name}".
    check_path(parts.uri.path())?;
    let timeout = match found.timeout {
        None => None,
        Some(value) => match timeout::parse(value.as_bytes()) {
            Some(d) => Some(d),
            None => {
                return Err(Reject::grpc(Status::internal(format!(
                    "malformed grpc-timeout {:?}",
                    String::from_utf8_lossy(value.as_bytes())
                ))));
            }
        },
    };
    let encoding = match found.encoding {
        None => None,
        Some(value) => match Encoding::parse(value.as_bytes()) {
            Some(encoding) => Some(encoding),
            // compression.md: an unsupported encoding is UNIMPLEMENTED, and the
            // response lists what the server accepts.
            None => {
                return Err(Reject::Grpc {
                    status: Status::unimplemented(format!(
                        "grpc: Decompressor is not installed for grpc-encoding {:?}",
                        String::from_utf8_lossy(value.as_bytes())
                    )),
                    list_encodings: true,
                });
            }
        },
    };
    // PROTOCOL-HTTP2.md: binary header values are base64. grpc-go answers INTERNAL
    // ("malformed binary metadata") before the handler runs; a handler reading it later
    // would otherwise see the value silently skipped.
    if let Some(name) = found.bad_bin {
        return Err(Reject::grpc(Status::internal(format!(
            "malformed binary metadata in header {name:?}"
        ))));
    }
    Ok(Head {
        timeout,
        encoding,
        accepts_gzip: found.accepts_gzip,
    })
}

/// `/service/method`, both non-empty; the message is grpc-go's.
fn check_path(path: &str) -> Result<(), Reject> {
    let well_formed = path
        .strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(service, method)| {
            !service.is_empty() && !method.is_empty() && !method.contains('/')
        });
    if well_formed {
        Ok(())
    } else {
        Err(Reject::grpc(Status::unimplemented(format!(
            "malformed method name: {path:?}"
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Code;

    fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    const GRPC: (&str, &str) = ("content-type", "application/grpc");

    fn http_code(result: Result<Head, Reject>) -> StatusCode {
        match result {
            Err(Reject::Http(code)) => code,
            other => panic!("expected an HTTP rejection, got {other:?}"),
        }
    }

    fn grpc_code(result: Result<Head, Reject>) -> Code {
        match result {
            Err(Reject::Grpc { status, .. }) => status.code(),
            other => panic!("expected a gRPC rejection, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_grpc_request_passes() {
        let parts = head("POST", "/pkg.Svc/Method", &[GRPC, ("te", "trailers")]);
        assert_eq!(
            check(&parts).unwrap(),
            Head {
                timeout: None,
                encoding: None,
                accepts_gzip: false
            }
        );
        let parts = head(
            "POST",
            "/pkg.Svc/Method",
            &[
                ("content-type", "application/grpc+proto"),
                ("grpc-timeout", "150m"),
                ("grpc-encoding", "gzip"),
                ("grpc-accept-encoding", "identity,gzip"),
            ],
        );
        assert_eq!(
            check(&parts).unwrap(),
            Head {
                timeout: Some(Duration::from_millis(150)),
                encoding: Some(Encoding::Gzip),
                accepts_gzip: true
            }
        );
    }

    #[test]
    fn not_grpc_is_an_http_error() {
        let get = head("GET", "/pkg.Svc/Method", &[GRPC]);
        assert_eq!(http_code(check(&get)), StatusCode::METHOD_NOT_ALLOWED);
        let json = head(
            "POST",
            "/pkg.Svc/Method",
            &[("content-type", "application/json")],
        );
        assert_eq!(http_code(check(&json)), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let none = head("POST", "/pkg.Svc/Method", &[]);
        assert_eq!(http_code(check(&none)), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn grpc_requests_we_cannot_serve_get_a_status() {
        let json = head(
            "POST",
            "/pkg.Svc/M",
            &[("content-type", "application/grpc+json")],
        );
        assert_eq!(grpc_code(check(&json)), Code::Unimplemented);
        let te = head("POST", "/pkg.Svc/M", &[GRPC, ("te", "gzip")]);
        assert_eq!(grpc_code(check(&te)), Code::Internal);
        let timeout = head("POST", "/pkg.Svc/M", &[GRPC, ("grpc-timeout", "1x")]);
        assert_eq!(grpc_code(check(&timeout)), Code::Internal);
        let too_long = head(
            "POST",
            "/pkg.Svc/M",
            &[GRPC, ("grpc-timeout", "123456789S")],
        );
        assert_eq!(grpc_code(check(&too_long)), Code::Internal);
        let bin = head("POST", "/pkg.Svc/M", &[GRPC, ("x-data-bin", "!!")]);
        assert_eq!(grpc_code(check(&bin)), Code::Internal);
        let bin = head("POST", "/pkg.Svc/M", &[GRPC, ("x-data-bin", "AQID")]);
        assert!(check(&bin).is_ok());
        let encoding = head("POST", "/pkg.Svc/M", &[GRPC, ("grpc-encoding", "br")]);
        match check(&encoding) {
            Err(Reject::Grpc {
                status,
                list_encodings: true,
            }) => {
                assert_eq!(status.code(), Code::Unimplemented);
                assert!(status.message().contains("\"br\""), "{status:?}");
            }
            other => panic!("expected UNIMPLEMENTED listing encodings, got {other:?}"),
        }
    }

    #[test]
    fn the_first_of_repeated_headers_decides_and_every_accept_encoding_counts() {
        let parts = head(
            "POST",
            "/pkg.Svc/M",
            &[
                GRPC,
                ("content-type", "application/json"),
                ("grpc-timeout", "2S"),
                ("grpc-timeout", "1x"),
                ("grpc-accept-encoding", "identity"),
                ("grpc-accept-encoding", "gzip"),
            ],
        );
        assert_eq!(
            check(&parts).unwrap(),
            Head {
                timeout: Some(Duration::from_secs(2)),
                encoding: None,
                accepts_gzip: true
            }
        );
    }

    #[test]
    fn with_several_faults_the_first_check_in_spec_order_answers() {
        // A bad te and bad binary metadata: te is checked first.
        let parts = head(
            "POST",
            "/pkg.Svc/M",
            &[("x-data-bin", "!!"), GRPC, ("te", "gzip")],
        );
        match check(&parts) {
            Err(Reject::Grpc { status, .. }) => {
                assert!(status.message().contains("te header"), "{status:?}")
            }
            other => panic!("expected INTERNAL for te, got {other:?}"),
        }
        // Missing content-type beats everything after it.
        let parts = head("POST", "/", &[("grpc-timeout", "1x")]);
        assert_eq!(http_code(check(&parts)), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn paths_must_name_a_service_and_a_method() {
        for bad in ["/", "/Svc", "/Svc/", "//M", "/a/b/c"] {
            let parts = head("POST", bad, &[GRPC]);
            assert_eq!(grpc_code(check(&parts)), Code::Unimplemented, "{bad}");
        }
        let ok = head("POST", "/a.b.C/D", &[GRPC]);
        assert!(check(&ok).is_ok());
    }
}
