//! A raw h2 peer sends what a well-behaved gRPC client never would; every case gets the
//! HTTP or gRPC answer PROTOCOL-HTTP2.md prescribes, and the connection keeps serving.

use bytes::{BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderMap, Method, Request, StatusCode};
use rgrpc_tests::{start, within};

async fn raw_client(addr: std::net::SocketAddr) -> SendRequest<Bytes> {
    let io = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(io).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

struct Answer {
    http: StatusCode,
    grpc_status: Option<String>,
    grpc_message: Option<String>,
}

fn status_of(
    headers: &HeaderMap,
    trailers: Option<&HeaderMap>,
) -> (Option<String>, Option<String>) {
    let get = |k: &str| {
        headers
            .get(k)
            .or_else(|| trailers.and_then(|t| t.get(k)))
            .map(|v| v.to_str().unwrap().to_owned())
    };
    (get("grpc-status"), get("grpc-message"))
}

async fn send(
    client: &mut SendRequest<Bytes>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Answer {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"));
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(()).unwrap();
    let mut ready = client.clone().ready().await.unwrap();
    let (response, mut stream) = ready.send_request(request, body.is_empty()).unwrap();
    if !body.is_empty() {
        stream.send_data(body, true).unwrap();
    }
    let response = within(10, response).await.unwrap();
    let (parts, mut body) = response.into_parts();
    let mut trailers = None;
    if !body.is_end_stream() {
        while let Some(chunk) = within(10, body.data()).await {
            let _ = chunk;
        }
        trailers = within(10, body.trailers()).await.ok().flatten();
    }
    let (grpc_status, grpc_message) = status_of(&parts.headers, trailers.as_ref());
    Answer {
        http: parts.status,
        grpc_status,
        grpc_message,
    }
}

fn frame(flag: u8, declared_len: u32, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(flag);
    b.put_u32(declared_len);
    b.put_slice(payload);
    b.freeze()
}

const GRPC: (&str, &str) = ("content-type", "application/grpc");
const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";

#[tokio::test]
async fn malformed_requests_get_prescribed_answers_and_the_connection_survives() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s.max_recv_message_size(1024)).await;
        let mut client = raw_client(server.addr).await;
        // "name: x" as a HelloRequest.
        let hello = frame(0, 3, &[0x0a, 0x01, b'x']);

        // Not POST: 405.
        let a = send(&mut client, Method::GET, SAY_HELLO, &[GRPC], Bytes::new()).await;
        assert_eq!(a.http, StatusCode::METHOD_NOT_ALLOWED);

        // Not application/grpc: 415.
        let a = send(
            &mut client,
            Method::POST,
            SAY_HELLO,
            &[("content-type", "text/plain")],
            hello.clone(),
        )
        .await;
        assert_eq!(a.http, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let a = send(&mut client, Method::POST, SAY_HELLO, &[], hello.clone()).await;
        assert_eq!(a.http, StatusCode::UNSUPPORTED_MEDIA_TYPE);

        // A codec we do not speak.
        let a = send(
            &mut client,
            Method::POST,
            SAY_HELLO,
            &[("content-type", "application/grpc+json")],
            hello.clone(),
        )
        .await;
        assert_eq!(
            (a.http, a.grpc_status.as_deref()),
            (StatusCode::OK, Some("12"))
        );

        // Bad grpc-timeout: INTERNAL.
        for bad in ["1x", "123456789S", "S", "-5m"] {
            let a = send(
                &mut client,
                Method::POST,
                SAY_HELLO,
                &[GRPC, ("grpc-timeout", bad)],
                hello.clone(),
            )
            .await;
            assert_eq!(a.grpc_status.as_deref(), Some("13"), "grpc-timeout {bad}");
        }

        // Unsupported grpc-encoding: UNIMPLEMENTED.
        let a = send(
            &mut client,
            Method::POST,
            SAY_HELLO,
            &[GRPC, ("grpc-encoding", "snappy")],
            hello.clone(),
        )
        .await;
        assert_eq!(a.grpc_status.as_deref(), Some("12"));

        // Compressed flag without grpc-encoding: INTERNAL.
        let a = send(
            &mut client,
            Method::POST,
            SAY_HELLO,
            &[GRPC],
            frame(1, 3, &[0x0a, 0x01, b'x']),
        )
        .await;
        assert_eq!(a.grpc_status.as_deref(), Some("13"));

        // Invalid flag byte: INTERNAL.
        let a = send(
            &mut client,
            Method::POST,
            SAY_HELLO,
            &[GRPC],
            frame(7, 3, &[0x0a, 0x01, b'x']),
        )
        .await;
        assert_eq!(a.grpc_status.as_deref(), Some("13"));

        // Declared length past the limit: RESOURCE_EXHAUSTED before the payload arrives.
        let a = send(
            &mut client,
            Method::POST,
            SAY_HELLO,
            &[GRPC],
            frame(0, 1 << 30, b""),
        )
        .await;
        assert_eq!(a.grpc_status.as_deref(), Some("8"));

        // Stream ends mid-message: INTERNAL.
        let a = send(
            &mut client,
            Method::POST,
            SAY_HELLO,
            &[GRPC],
            frame(0, 10, b"abc"),
        )
        .await;
        assert_eq!(a.grpc_status.as_deref(), Some("13"));

        // Bytes that are not a HelloRequest: INTERNAL, with a message.
        let a = send(
            &mut client,
            Method::POST,
            SAY_HELLO,
            &[GRPC],
            frame(0, 2, &[0xff, 0xff]),
        )
        .await;
        assert_eq!(a.grpc_status.as_deref(), Some("13"));
        assert!(a.grpc_message.unwrap_or_default().contains("decode"));

        // No message at all for a unary method: statuscodes.md, request cardinality
        // violation, UNIMPLEMENTED.
        let a = send(&mut client, Method::POST, SAY_HELLO, &[GRPC], Bytes::new()).await;
        assert_eq!(a.grpc_status.as_deref(), Some("12"));

        // Unknown path shapes.
        let a = send(
            &mut client,
            Method::POST,
            "/nonsense",
            &[GRPC],
            hello.clone(),
        )
        .await;
        assert_eq!(a.grpc_status.as_deref(), Some("12"));

        // After all that, the same connection still answers a good call.
        let a = send(
            &mut client,
            Method::POST,
            SAY_HELLO,
            &[GRPC, ("te", "trailers")],
            hello,
        )
        .await;
        assert_eq!(
            (a.http, a.grpc_status.as_deref()),
            (StatusCode::OK, Some("0"))
        );
    })
    .await;
}

#[tokio::test]
async fn garbage_instead_of_a_preface_closes_only_that_connection() {
    rgrpc_tests::no_leaks(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let server = start(|s| s).await;
        let mut io = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        io.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        // The server must close the connection (EOF or RST), not hang.
        match within(10, io.read_to_end(&mut buf)).await {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
        // Others are unaffected.
        let mut client = raw_client(server.addr).await;
        let a = send(
            &mut client,
            Method::POST,
            SAY_HELLO,
            &[GRPC],
            frame(0, 3, &[0x0a, 0x01, b'x']),
        )
        .await;
        assert_eq!(a.grpc_status.as_deref(), Some("0"));
    })
    .await;
}

/// The server ends a call at its `grpc-timeout` on its own: this raw client sends the
/// header but keeps no timer and never resets, so only the server's deadline can end
/// the handler, which would sleep 10 s (PROTOCOL-HTTP2.md: grpc-timeout; the status is
/// DEADLINE_EXCEEDED).
#[tokio::test]
async fn the_server_ends_a_call_at_its_grpc_timeout_without_the_client() {
    rgrpc_tests::no_leaks(async {
        let server = start(|s| s).await;
        let mut client = raw_client(server.addr).await;
        let request = prost::Message::encode_to_vec(&rgrpc_tests::sleeping_request());
        let len = u32::try_from(request.len()).unwrap();
        let started = std::time::Instant::now();
        let a = send(
            &mut client,
            Method::POST,
            "/grpc.testing.TestService/UnaryCall",
            &[GRPC, ("te", "trailers"), ("grpc-timeout", "200m")],
            frame(0, len, &request),
        )
        .await;
        let took = started.elapsed();
        assert_eq!(a.http, StatusCode::OK);
        assert_eq!(a.grpc_status.as_deref(), Some("4"), "{:?}", a.grpc_message);
        assert!(
            took >= std::time::Duration::from_millis(200)
                && took < std::time::Duration::from_secs(5),
            "answered after {took:?}"
        );
    })
    .await;
}
