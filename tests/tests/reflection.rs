//! Server reflection end to end: a stock grpcurl 1.8.6 (which speaks
//! grpc.reflection.v1alpha) lists, describes and calls our services from the
//! descriptors alone, and our generated v1 client checks every request kind and the
//! error responses.

use prost::Message;
use prost_types::FileDescriptorProto;
use rgrpc_reflection::v1::server_reflection_request::MessageRequest;
use rgrpc_reflection::v1::server_reflection_response::MessageResponse;
use rgrpc_reflection::v1::{
    ExtensionRequest, ServerReflectionRequest, ServerReflectionResponse, ServerReflectionStub,
};
use rgrpc_runtime::{CallOptions, Channel, Code};
use rgrpc_tests::{peers, start, within};
use tokio::process::Command;

/// The test server (helloworld, routeguide, TestService) with health and reflection;
/// reflection is registered first, so it must see the services registered after it.
async fn server() -> rgrpc_tests::TestServer {
    start(|mut server| {
        rgrpc_reflection::register(&mut server);
        rgrpc_health::register(&mut server);
        server
    })
    .await
}

const SERVICES: &[&str] = &[
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.testing.TestService",
    "helloworld.Greeter",
    "routeguide.RouteGuide",
];

/// Runs grpcurl with `args` against `addr`; returns (success, stdout, stderr).
async fn grpcurl(bin: &std::path::Path, addr: &str, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(bin);
    command
        .args(["-plaintext", "-connect-timeout", "10", "-max-time", "20"])
        .args(args.iter().take_while(|a| !a.is_empty()))
        .arg(addr)
        .args(args.iter().skip_while(|a| !a.is_empty()).skip(1));
    let out = peers::output(&mut command, "grpcurl").await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// grpcurl's output for `args` (flags, "", then the arguments after the address),
/// asserting it succeeded.
async fn grpcurl_ok(bin: &std::path::Path, addr: &str, args: &[&str]) -> String {
    let (ok, stdout, stderr) = grpcurl(bin, addr, args).await;
    assert!(
        ok,
        "grpcurl {args:?} failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn grpcurl_lists_describes_and_calls_through_reflection() {
    rgrpc_tests::no_leaks(async {
    let Some(bin) = peers::grpcurl() else {
        return;
    };
    let server = server().await;
    let addr = server.addr.to_string();

    let list = grpcurl_ok(&bin, &addr, &["", "list"]).await;
    assert_eq!(list.lines().collect::<Vec<_>>(), SERVICES, "{list}");

    let methods = grpcurl_ok(&bin, &addr, &["", "list", "routeguide.RouteGuide"]).await;
    assert_eq!(
        methods.lines().collect::<Vec<_>>(),
        [
            "routeguide.RouteGuide.GetFeature",
            "routeguide.RouteGuide.ListFeatures",
            "routeguide.RouteGuide.RecordRoute",
            "routeguide.RouteGuide.RouteChat",
        ]
    );

    let service = squash(&grpcurl_ok(&bin, &addr, &["", "describe", "helloworld.Greeter"]).await);
    for expected in [
        "helloworld.Greeter is a service:",
        "service Greeter {",
        "rpc SayHello ( .helloworld.HelloRequest ) returns ( .helloworld.HelloReply );",
    ] {
        assert!(service.contains(expected), "{expected:?} not in {service}");
    }

    let method = squash(
        &grpcurl_ok(
            &bin,
            &addr,
            &["", "describe", "routeguide.RouteGuide.RouteChat"],
        )
        .await,
    );
    assert!(
        method.contains("routeguide.RouteGuide.RouteChat is a method:")
            && method.contains(
                "rpc RouteChat ( stream .routeguide.RouteNote ) returns ( stream .routeguide.RouteNote );"
            ),
        "{method}"
    );

    let message =
        squash(&grpcurl_ok(&bin, &addr, &["", "describe", "helloworld.HelloRequest"]).await);
    assert!(
        message.contains("helloworld.HelloRequest is a message:")
            && message.contains("message HelloRequest { string name = 1; }"),
        "{message}"
    );

    // A message of an imported file (test.proto imports messages.proto).
    let imported =
        squash(&grpcurl_ok(&bin, &addr, &["", "describe", "grpc.testing.SimpleRequest"]).await);
    assert!(
        imported.contains("grpc.testing.SimpleRequest is a message:")
            && imported.contains(".grpc.testing.Payload payload = 3;"),
        "{imported}"
    );

    let reply = grpcurl_ok(
        &bin,
        &addr,
        &[
            "-d",
            r#"{"name":"reflection"}"#,
            "",
            "helloworld.Greeter/SayHello",
        ],
    )
    .await;
    assert_eq!(
        squash(&reply),
        r#"{ "message": "Hello reflection" }"#,
        "{reply}"
    );

    // Through the imports: the request type lives in messages.proto.
    let reply = grpcurl_ok(
        &bin,
        &addr,
        &[
            "-d",
            r#"{"responseSize":3}"#,
            "",
            "grpc.testing.TestService/UnaryCall",
        ],
    )
    .await;
    assert!(squash(&reply).contains(r#""body": "AAAA""#), "{reply}");

    let (ok, stdout, stderr) = grpcurl(&bin, &addr, &["", "describe", "no.Such"]).await;
    assert!(!ok, "describe of an unknown symbol succeeded: {stdout}");
    assert!(stderr.contains("Symbol not found: no.Such"), "{stderr}");
    })
    .await;
}

async fn reflection(
    target: &str,
) -> rgrpc_runtime::BidiStreamingCall<ServerReflectionRequest, ServerReflectionResponse> {
    let channel = within(10, Channel::connect(target)).await.expect("connect");
    within(
        10,
        ServerReflectionStub::new(channel).server_reflection_info(CallOptions::default()),
    )
    .await
    .expect("ServerReflectionInfo")
}

async fn ask(
    call: &mut rgrpc_runtime::BidiStreamingCall<ServerReflectionRequest, ServerReflectionResponse>,
    request: MessageRequest,
) -> MessageResponse {
    let request = ServerReflectionRequest {
        host: "h".to_owned(),
        message_request: Some(request),
    };
    within(10, call.send(&request)).await.expect("send");
    let response = within(10, call.message())
        .await
        .expect("a response")
        .expect("not the end");
    assert_eq!(response.valid_host, "h");
    assert_eq!(response.original_request.as_ref(), Some(&request));
    response.message_response.expect("a message_response")
}

fn file_names(response: MessageResponse) -> Vec<String> {
    let MessageResponse::FileDescriptorResponse(files) = response else {
        panic!("not a file descriptor response: {response:?}");
    };
    files
        .file_descriptor_proto
        .iter()
        .map(|bytes| {
            let file = FileDescriptorProto::decode(bytes.as_slice()).expect("a descriptor");
            assert!(file.source_code_info.is_none(), "source info is stripped");
            file.name().to_owned()
        })
        .collect()
}

fn error_code(response: MessageResponse) -> (Code, String) {
    let MessageResponse::ErrorResponse(error) = response else {
        panic!("not an error response: {response:?}");
    };
    (Code::from_i32(error.error_code), error.error_message)
}

#[tokio::test]
async fn v1_answers_every_request_kind() {
    rgrpc_tests::no_leaks(async {
        let server = server().await;
        let mut call = reflection(&server.target()).await;

        let MessageResponse::ListServicesResponse(list) =
            ask(&mut call, MessageRequest::ListServices(String::new())).await
        else {
            panic!("not a list");
        };
        // Every service, those registered after reflection too.
        let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, SERVICES);

        // The file, then its imports; a second ask sends only what was not sent yet.
        let mut first = file_names(
            ask(
                &mut call,
                MessageRequest::FileContainingSymbol("grpc.testing.TestService.UnaryCall".into()),
            )
            .await,
        );
        assert_eq!(first.remove(0), "grpc/testing/test.proto");
        first.sort();
        assert_eq!(
            first,
            ["grpc/testing/empty.proto", "grpc/testing/messages.proto"]
        );
        assert_eq!(
            file_names(
                ask(
                    &mut call,
                    MessageRequest::FileByFilename("grpc/testing/messages.proto".into())
                )
                .await
            ),
            ["grpc/testing/messages.proto"]
        );
        for (symbol, file) in [
            ("helloworld.Greeter", "helloworld/helloworld.proto"),
            ("routeguide.RouteNote", "routeguide/route_guide.proto"),
            (
                "routeguide.RouteNote.location",
                "routeguide/route_guide.proto",
            ),
            ("grpc.testing.PayloadType", "grpc/testing/messages.proto"),
            (
                "grpc.health.v1.HealthCheckResponse.ServingStatus",
                "grpc/health/v1/health.proto",
            ),
            (
                "grpc.health.v1.HealthCheckResponse.SERVICE_UNKNOWN",
                "grpc/health/v1/health.proto",
            ),
            (
                "grpc.reflection.v1alpha.ServerReflection",
                "grpc/reflection/v1alpha/reflection.proto",
            ),
        ] {
            let names = file_names(
                ask(
                    &mut call,
                    MessageRequest::FileContainingSymbol(symbol.into()),
                )
                .await,
            );
            assert_eq!(names[0], file, "{symbol}");
        }

        // Not found: an error response, and the stream goes on.
        let (code, message) = error_code(
            ask(
                &mut call,
                MessageRequest::FileContainingSymbol("no.Such".into()),
            )
            .await,
        );
        assert_eq!(
            (code, message.as_str()),
            (Code::NotFound, "unknown symbol no.Such")
        );
        let (code, _) =
            error_code(ask(&mut call, MessageRequest::FileByFilename("no.proto".into())).await);
        assert_eq!(code, Code::NotFound);
        let (code, _) = error_code(
            ask(
                &mut call,
                MessageRequest::FileContainingExtension(ExtensionRequest {
                    containing_type: "helloworld.HelloRequest".into(),
                    extension_number: 100,
                }),
            )
            .await,
        );
        assert_eq!(code, Code::NotFound);
        let (code, _) = error_code(
            ask(
                &mut call,
                MessageRequest::AllExtensionNumbersOfType("no.Such".into()),
            )
            .await,
        );
        assert_eq!(code, Code::NotFound);
        let MessageResponse::AllExtensionNumbersResponse(numbers) = ask(
            &mut call,
            MessageRequest::AllExtensionNumbersOfType("helloworld.HelloRequest".into()),
        )
        .await
        else {
            panic!("not an extension number response");
        };
        assert_eq!(numbers.base_type_name, "helloworld.HelloRequest");
        assert!(numbers.extension_number.is_empty());

        // No message_request at all ends the stream with INVALID_ARGUMENT (grpc-go).
        within(10, call.send(&ServerReflectionRequest::default()))
            .await
            .expect("send");
        let status = within(10, call.message()).await.expect_err("stream ends");
        assert_eq!(status.code(), Code::InvalidArgument);
    })
    .await;
}

/// The helloworld example server as a user starts it: `grpcurl list` and a call work
/// with no .proto at hand.
#[tokio::test]
async fn the_example_server_serves_reflection_and_health() {
    rgrpc_tests::no_leaks(async {
        let Some(bin) = peers::grpcurl() else {
            return;
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_example-helloworld-server"))
            .args(["--addr", "127.0.0.1:0"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning helloworld-server");
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        within(
            10,
            tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut line),
        )
        .await
        .expect("the server's first line");
        let addr = line
            .trim_end()
            .strip_prefix("helloworld server listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        let list = grpcurl_ok(&bin, &addr, &["", "list"]).await;
        assert_eq!(
            list.lines().collect::<Vec<_>>(),
            [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
                "helloworld.Greeter",
            ]
        );
        let health = grpcurl_ok(
            &bin,
            &addr,
            &[
                "-d",
                r#"{"service":"helloworld.Greeter"}"#,
                "",
                "grpc.health.v1.Health/Check",
            ],
        )
        .await;
        assert_eq!(squash(&health), r#"{ "status": "SERVING" }"#);
    })
    .await;
}

/// proto/codegen/wkt: a service whose file imports six well-known types, which
/// prost-types provides, so their descriptors are copies in the generated file.
mod wkt {
    #![allow(dead_code)]
    rgrpc_runtime::include_proto!("codegen.wkt");
}

struct Clock;

impl wkt::ClockServer for Clock {
    async fn now(
        &self,
        _ctx: &rgrpc_runtime::ServerContext,
        _request: (),
    ) -> Result<prost_types::Timestamp, rgrpc_runtime::Status> {
        Ok(prost_types::Timestamp {
            seconds: 5,
            nanos: 0,
        })
    }

    async fn echo(
        &self,
        _ctx: &rgrpc_runtime::ServerContext,
        request: String,
    ) -> Result<String, rgrpc_runtime::Status> {
        Ok(request)
    }
}

#[tokio::test]
async fn well_known_type_imports_are_served() {
    rgrpc_tests::no_leaks(async {
        let server = start(|mut server| {
            rgrpc_reflection::register(&mut server);
            wkt::register_clock_server(&mut server, Clock);
            server
        })
        .await;

        let mut call = reflection(&server.target()).await;
        let mut names = file_names(
            ask(
                &mut call,
                MessageRequest::FileContainingSymbol("codegen.wkt.Clock.Now".into()),
            )
            .await,
        );
        assert_eq!(names.remove(0), "codegen/wkt/wkt.proto");
        names.sort();
        assert_eq!(
            names,
            [
                "google/protobuf/any.proto",
                "google/protobuf/duration.proto",
                "google/protobuf/empty.proto",
                "google/protobuf/struct.proto",
                "google/protobuf/timestamp.proto",
                "google/protobuf/wrappers.proto",
            ]
        );
        let names = file_names(
            ask(
                &mut call,
                MessageRequest::FileContainingSymbol("google.protobuf.Timestamp".into()),
            )
            .await,
        );
        assert_eq!(names, ["google/protobuf/timestamp.proto"]);

        let Some(bin) = peers::grpcurl() else {
            return;
        };
        let addr = server.addr.to_string();
        let described =
            squash(&grpcurl_ok(&bin, &addr, &["", "describe", "codegen.wkt.Clock"]).await);
        assert!(
            described.contains(
                "rpc Now ( .google.protobuf.Empty ) returns ( .google.protobuf.Timestamp );"
            ),
            "{described}"
        );
        let event = squash(&grpcurl_ok(&bin, &addr, &["", "describe", "codegen.wkt.Event"]).await);
        assert!(
            event.contains(".google.protobuf.Timestamp at = 1;"),
            "{event}"
        );
        let now = grpcurl_ok(&bin, &addr, &["-d", "{}", "", "codegen.wkt.Clock/Now"]).await;
        assert_eq!(squash(&now), r#""1970-01-01T00:00:05Z""#, "{now}");
        let echo = grpcurl_ok(
            &bin,
            &addr,
            &["-d", r#""hi""#, "", "codegen.wkt.Clock/Echo"],
        )
        .await;
        assert_eq!(squash(&echo), r#""hi""#, "{echo}");
    })
    .await;
}
