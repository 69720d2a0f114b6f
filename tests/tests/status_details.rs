//! gRPC's rich error model (rgrpc-types) against grpcio's `grpc_status` package, in
//! both directions (tests/interop/status_details.py):
//! - grpcio's `rpc_status.from_call` reads every standard `google.rpc` detail, and one
//!   of another type, from our server, and checks the status proto's code and message
//!   against the call's;
//! - we read the same details from a grpcio server that sends them with
//!   `context.abort_with_status(rpc_status.to_status(...))`, and report a grpcio
//!   server's mismatched or undecodable details as errors.

use std::process::Stdio;

use prost::Message as _;
use rgrpc_runtime::{Channel, Code, Server, ServerContext, Status};
use rgrpc_tests::grpc_testing::{
    Payload, SimpleRequest, SimpleResponse, TestServiceServer, TestServiceStub,
    register_test_service_server,
};
use rgrpc_tests::{peers, within};
use rgrpc_types::{
    Any, BadRequest, DebugInfo, ErrorDetail, ErrorInfo, Help, LocalizedMessage,
    PreconditionFailure, QuotaFailure, RequestInfo, ResourceInfo, RetryInfo, StatusExt,
    bad_request, help, precondition_failure, quota_failure,
};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The details both directions carry: `expected_details()` in status_details.py.
fn expected_details() -> Vec<ErrorDetail> {
    vec![
        ErrorInfo {
            reason: "STOCKOUT".into(),
            domain: "example.com".into(),
            metadata: [("region".to_owned(), "eu-1".to_owned())].into(),
        }
        .into(),
        RetryInfo {
            retry_delay: Some(rgrpc_types::Duration {
                seconds: 3,
                nanos: 5,
            }),
        }
        .into(),
        DebugInfo {
            stack_entries: vec!["a.rs:1".into(), "b.rs:2".into()],
            detail: "boom".into(),
        }
        .into(),
        QuotaFailure {
            violations: vec![quota_failure::Violation {
                subject: "project:1".into(),
                description: "daily limit".into(),
                ..Default::default()
            }],
        }
        .into(),
        PreconditionFailure {
            violations: vec![precondition_failure::Violation {
                r#type: "TOS".into(),
                subject: "user:1".into(),
                description: "terms not accepted".into(),
            }],
        }
        .into(),
        BadRequest {
            field_violations: vec![bad_request::FieldViolation {
                field: "name".into(),
                description: "empty".into(),
                ..Default::default()
            }],
        }
        .into(),
        RequestInfo {
            request_id: "req-1".into(),
            serving_data: "shard 7".into(),
        }
        .into(),
        ResourceInfo {
            resource_type: "book".into(),
            resource_name: "shelves/1/books/2".into(),
            owner: "user:1".into(),
            description: "gone".into(),
        }
        .into(),
        Help {
            links: vec![help::Link {
                description: "docs".into(),
                url: "https://example.com/help".into(),
            }],
        }
        .into(),
        LocalizedMessage {
            locale: "fr-FR".into(),
            message: "introuvable".into(),
        }
        .into(),
        // A type rgrpc-types does not know: kept as the Any it is.
        ErrorDetail::Other(Any {
            type_url: "type.googleapis.com/grpc.testing.Payload".into(),
            value: Payload {
                body: b"custom".to_vec(),
                ..Default::default()
            }
            .encode_to_vec(),
        }),
    ]
}

/// UnaryCall fails NOT_FOUND with [`expected_details`].
struct RichErrors;

impl TestServiceServer for RichErrors {
    async fn unary_call(
        &self,
        _ctx: &ServerContext,
        _request: SimpleRequest,
    ) -> Result<SimpleResponse, Status> {
        Err(Status::with_error_details(
            Code::NotFound,
            "rich details from rgrpc",
            expected_details(),
        ))
    }
}

/// grpcio's `rpc_status.from_call` reads every detail from our server and compares it,
/// unpacked, with the same list built in Python (status_details.py `client`).
#[tokio::test]
async fn grpcio_reads_the_details_of_our_server() {
    rgrpc_tests::no_leaks(async {
        let Some(python) = peers::grpcio_python() else {
            return;
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut server = Server::new();
        register_test_service_server(&mut server, RichErrors);
        let handle = server.handle();
        let serving = tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
        let output = peers::output(
            tokio::process::Command::new(python)
                .arg(peers::repo_root().join("tests/interop/status_details.py"))
                .args(["client", "--target", &addr.to_string()]),
            "status_details.py client",
        )
        .await;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        println!("{text}");
        handle.stop();
        let _ = within(5, serving).await;
        assert!(
            output.status.success(),
            "grpcio did not read our details:\n{text}"
        );
        assert!(
            text.contains("PASS 11 details read by grpc_status"),
            "{text}"
        );
    })
    .await;
}

fn request(body: &[u8]) -> SimpleRequest {
    SimpleRequest {
        payload: Some(Payload {
            body: body.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// We read the details a grpcio server sends with `abort_with_status(to_status(..))`,
/// and report its mismatched and undecodable ones (status_details.py `server`).
#[tokio::test]
async fn we_read_the_details_of_a_grpcio_server() {
    rgrpc_tests::no_leaks(async {
        let Some(python) = peers::grpcio_python() else {
            return;
        };
        let mut child = tokio::process::Command::new(python)
            .arg(peers::repo_root().join("tests/interop/status_details.py"))
            .arg("server")
            // The server runs until its stdin closes: when `child` is dropped.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning status_details.py server");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let line = tokio::time::timeout(peers::CHILD_TIMEOUT, lines.next_line())
            .await
            .expect("status_details.py server starts in time")
            .expect("reading status_details.py")
            .expect("status_details.py ended early");
        let (_, addr) = line
            .split_once("listening on ")
            .unwrap_or_else(|| panic!("not a listening line: {line}"));
        let channel = within(10, Channel::connect(addr)).await.unwrap();
        let client = TestServiceStub::new(channel);

        let status = within(10, client.unary_call(request(b"details")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status}");
        assert_eq!(status.message(), "rich details from grpcio");
        let rpc = status.rpc_status().unwrap().expect("details were sent");
        assert_eq!(rpc.code, Code::NotFound as i32);
        assert_eq!(rpc.message, "rich details from grpcio");
        assert_eq!(status.error_details().unwrap(), expected_details());
        let retry = status.detail::<RetryInfo>().unwrap().expect("a RetryInfo");
        assert_eq!(
            retry.retry_delay,
            Some(rgrpc_types::Duration {
                seconds: 3,
                nanos: 5
            })
        );

        // A grpcio server can send details that disagree with its status: reported.
        let status = within(10, client.unary_call(request(b"mismatch")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status}");
        let error = status.rpc_status().unwrap_err();
        assert!(error.is_mismatch(), "{error}");
        assert!(status.error_details().unwrap_err().is_mismatch());

        // Details that are not a google.rpc.Status: an error, not a panic.
        let status = within(10, client.unary_call(request(b"garbage")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{status}");
        assert!(!status.details().is_empty());
        let error = status.error_details().unwrap_err();
        assert!(error.is_decode(), "{error}");

        drop(client);
        drop(child.stdin.take());
        let exited = tokio::time::timeout(peers::CHILD_TIMEOUT, child.wait())
            .await
            .expect("status_details.py server exits when its stdin closes")
            .expect("wait");
        assert!(exited.success(), "status_details.py server: {exited}");
    })
    .await;
}
