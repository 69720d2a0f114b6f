//! The runtime's API conventions end to end: `?` on metadata in a handler, the
//! `ServerContext` setters, `StreamExt` on the receiving halves (client and server),
//! `send_all` from a `Stream` on the sending halves, and a `Stream`-read call's
//! transparent retry and deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, stream};
use rgrpc_runtime::{
    Bytes, CallOptions, Channel, Code, Metadata, RecvStream, Request, SendStream, Server,
    ServerContext, Status,
};
use rgrpc_tests::grpc_testing::{
    EchoStatus, Payload, ResponseParameters, SimpleRequest, SimpleResponse,
    StreamingInputCallRequest, StreamingInputCallResponse, StreamingOutputCallRequest,
    StreamingOutputCallResponse, TestServiceServer, TestServiceStub, register_test_service_server,
};
use rgrpc_tests::within;

/// The largest request the test server takes, so that one test can exceed it.
const MAX_RECV: usize = 1024;

/// A TestService written the way the conventions allow:
/// - UnaryCall sets headers and trailers with `?`: a whole map, the one-value setters
///   and their `-bin` forms; a payload of "bad-key" or "bin-key" tries an invalid key
///   and fails through `From<MetadataError>`.
/// - StreamingOutputCall sends one response per parameter with `send_all`, then
///   reports (trailer `x-late`) what a header set after the headers went out gave,
///   and ends with `response_status` if there is one.
/// - StreamingInputCall sums the payload sizes with `StreamExt`; the first failed read
///   is its status.
/// - FullDuplexCall reads requests with `StreamExt::next` and answers each with
///   `send_all` of its parameters.
struct Conventions;

fn response(size: i32) -> StreamingOutputCallResponse {
    StreamingOutputCallResponse {
        payload: Some(Payload {
            body: vec![1; size as usize],
            ..Default::default()
        }),
    }
}

fn params(sizes: &[i32]) -> Vec<ResponseParameters> {
    sizes
        .iter()
        .map(|&size| ResponseParameters {
            size,
            ..Default::default()
        })
        .collect()
}

fn body_len(response: StreamingOutputCallResponse) -> usize {
    response.payload.map_or(0, |p| p.body.len())
}

impl TestServiceServer for Conventions {
    async fn unary_call(
        &self,
        ctx: &ServerContext,
        request: SimpleRequest,
    ) -> Result<SimpleResponse, Status> {
        let body = request.payload.map(|p| p.body).unwrap_or_default();
        if body == b"bad-key" {
            Metadata::new().insert("Bad Key", "x")?;
        }
        if body == b"bin-key" {
            ctx.set_header_value("x-raw-bin", "not binary")?;
        }
        let mut md = Metadata::new();
        md.insert("x-served-by", "conventions")?;
        ctx.set_header(md)?;
        ctx.set_header_value("x-value", "one")?;
        ctx.set_header_value("x-value", "two")?;
        ctx.set_header_bin("x-raw-bin", &[0, 1, 255])?;
        ctx.set_trailer_value("x-trailer", "t")?;
        ctx.set_trailer_bin("x-trailer-bin", &[7, 8])?;
        Ok(SimpleResponse::default())
    }

    async fn streaming_output_call(
        &self,
        ctx: &ServerContext,
        request: StreamingOutputCallRequest,
        mut responses: SendStream<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        let sizes = request.response_parameters.iter().map(|p| response(p.size));
        responses.send_all(stream::iter(sizes)).await?;
        let late = ctx.set_header_value("x-late", "v").map_err(|s| s.code());
        ctx.set_trailer_value("x-late", &format!("{late:?}"))?;
        match request.response_status {
            Some(status) => Err(Status::new(Code::from_i32(status.code), status.message)),
            None => Ok(()),
        }
    }

    async fn streaming_input_call(
        &self,
        _ctx: &ServerContext,
        requests: RecvStream<StreamingInputCallRequest>,
    ) -> Result<StreamingInputCallResponse, Status> {
        // At most 16 (the tests send fewer): a stream that went on after an error
        // would not hang the test.
        let sizes = requests
            .map(|request| request.map(|r| r.payload.map_or(0, |p| p.body.len())))
            .take(16)
            .collect::<Vec<_>>()
            .await;
        if let Some(at) = sizes.iter().position(Result::is_err) {
            if at + 1 != sizes.len() {
                return Err(Status::internal("the requests went on after an error"));
            }
        }
        let total = sizes.into_iter().sum::<Result<usize, Status>>()?;
        Ok(StreamingInputCallResponse {
            aggregated_payload_size: total as i32,
        })
    }

    async fn full_duplex_call(
        &self,
        _ctx: &ServerContext,
        mut requests: RecvStream<StreamingOutputCallRequest>,
        mut responses: SendStream<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        while let Some(request) = requests.next().await {
            let sizes = request?.response_parameters.into_iter();
            responses
                .send_all(stream::iter(sizes.map(|p| response(p.size))))
                .await?;
        }
        Ok(())
    }
}

/// A server with only `Conventions`; stops when dropped.
struct Served {
    target: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve() -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}", listener.local_addr().unwrap());
    let mut server = Server::new().max_recv_message_size(MAX_RECV);
    register_test_service_server(&mut server, Conventions);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve_with_shutdown(listener, async {
        let _ = stopped.await;
    }));
    Served {
        target,
        _stop: stop,
    }
}

async fn client(served: &Served) -> TestServiceStub {
    TestServiceStub::new(within(10, Channel::connect(&served.target)).await.unwrap())
}

#[tokio::test]
async fn a_handler_sets_metadata_with_question_mark_and_the_client_reads_it() {
    rgrpc_tests::no_leaks(async {
        let served = serve().await;
        let client = client(&served).await;
        let response = within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap();
        let headers = response.headers();
        assert_eq!(headers.get("x-served-by"), Some("conventions"));
        assert_eq!(headers.get_all("x-value"), vec!["one", "two"]);
        assert_eq!(headers.get_bin("x-raw-bin"), Some(vec![0, 1, 255]));
        assert_eq!(response.trailers().get("x-trailer"), Some("t"));
        assert_eq!(
            response.trailers().get_bin("x-trailer-bin"),
            Some(vec![7, 8])
        );

        // An invalid key, through `?` on Metadata and on the ServerContext setters: INTERNAL,
        // naming the key.
        for (body, named) in [("bad-key", "\"Bad Key\""), ("bin-key", "\"x-raw-bin\"")] {
            let request = SimpleRequest {
                payload: Some(Payload {
                    body: body.into(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let err = within(10, client.unary_call(request)).await.unwrap_err();
            assert_eq!(err.code(), Code::Internal, "{err:?}");
            assert!(err.message().contains(named), "{err:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn stream_ext_reads_a_server_streaming_response_sent_with_send_all() {
    rgrpc_tests::no_leaks(async {
        let served = serve().await;
        let client = client(&served).await;
        let request = StreamingOutputCallRequest {
            response_parameters: params(&[1, 2, 3, 4, 5]),
            ..Default::default()
        };
        let mut responses = within(10, client.streaming_output_call(request))
            .await
            .unwrap();
        // Headers first, then the same call as a Stream: the two mix.
        within(10, responses.headers()).await.unwrap();
        let sizes = within(
            10,
            responses
                .by_ref()
                .map(|r| r.map(body_len))
                .collect::<Vec<_>>(),
        )
        .await;
        let sizes: Vec<usize> = sizes.into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(sizes, vec![1, 2, 3, 4, 5]);
        assert!(futures_util::stream::FusedStream::is_terminated(&responses));
        assert!(within(10, responses.next()).await.is_none());
        assert!(within(10, responses.message()).await.unwrap().is_none());
        // A header set after the first message went out is an error for the handler.
        assert_eq!(
            responses.trailers().get("x-late"),
            Some(format!("{:?}", Err::<(), _>(Code::Internal)).as_str())
        );
    })
    .await;
}

#[tokio::test]
async fn a_failed_stream_yields_its_status_once_then_ends() {
    rgrpc_tests::no_leaks(async {
        let served = serve().await;
        let client = client(&served).await;
        let request = StreamingOutputCallRequest {
            response_parameters: params(&[3, 4]),
            response_status: Some(EchoStatus {
                code: Code::FailedPrecondition as i32,
                message: "no more".into(),
            }),
            ..Default::default()
        };
        let mut responses = within(10, client.streaming_output_call(request))
            .await
            .unwrap();
        // `take`: a stream that went on after its error would fail here, not hang.
        let items = within(10, responses.by_ref().take(8).collect::<Vec<_>>()).await;
        assert_eq!(items.len(), 3, "{items:?}");
        assert_eq!(body_len(items[0].clone().unwrap()), 3);
        assert_eq!(body_len(items[1].clone().unwrap()), 4);
        let err = items[2].clone().unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert_eq!(err.message(), "no more");
        assert!(within(10, responses.next()).await.is_none());
        // `message()` still tells how the call ended.
        let again = within(10, responses.message()).await.unwrap_err();
        assert_eq!(again.code(), Code::FailedPrecondition);
    })
    .await;
}

#[tokio::test]
async fn send_all_on_a_client_streaming_call_and_stream_ext_in_the_handler() {
    rgrpc_tests::no_leaks(async {
        let served = serve().await;
        let client = client(&served).await;
        let mut call = within(10, client.streaming_input_call(CallOptions::default()))
            .await
            .unwrap();
        let sizes = [10usize, 20, 30, 40];
        let requests = sizes.map(|size| StreamingInputCallRequest {
            payload: Some(Payload {
                body: vec![0; size],
                ..Default::default()
            }),
            ..Default::default()
        });
        within(10, call.send_all(stream::iter(requests)))
            .await
            .unwrap();
        let response = within(10, call.close_and_recv()).await.unwrap();
        assert_eq!(response.into_inner().aggregated_payload_size, 100);
    })
    .await;
}

#[tokio::test]
async fn a_failed_read_ends_the_server_recv_stream() {
    rgrpc_tests::no_leaks(async {
        let served = serve().await;
        let client = client(&served).await;
        let mut call = within(10, client.streaming_input_call(CallOptions::default()))
            .await
            .unwrap();
        let small = StreamingInputCallRequest {
            payload: Some(Payload {
                body: vec![0; 10],
                ..Default::default()
            }),
            ..Default::default()
        };
        let too_big = StreamingInputCallRequest {
            payload: Some(Payload {
                body: vec![0; 2 * MAX_RECV],
                ..Default::default()
            }),
            ..Default::default()
        };
        // The handler's collect ends after the oversized message's error, with the client's
        // side still open: its status is the error.
        let sent = within(10, call.send_all(stream::iter([small, too_big]))).await;
        assert!(sent.is_ok(), "{sent:?}");
        let err = within(10, call.close_and_recv()).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn a_bidi_call_sends_all_and_reads_as_a_stream() {
    rgrpc_tests::no_leaks(async {
        let served = serve().await;
        let client = client(&served).await;
        let mut call = within(10, client.full_duplex_call(CallOptions::default()))
            .await
            .unwrap();
        let requests = [&[1, 2][..], &[3][..], &[][..], &[4, 5, 6][..]].map(|sizes| {
            StreamingOutputCallRequest {
                response_parameters: params(sizes),
                ..Default::default()
            }
        });
        within(10, call.send_all(stream::iter(requests)))
            .await
            .unwrap();
        within(10, call.close_send()).await.unwrap();
        let sizes = within(10, call.map(|r| r.map(body_len)).collect::<Vec<_>>()).await;
        let sizes: Vec<usize> = sizes.into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(sizes, vec![1, 2, 3, 4, 5, 6]);

        // Split, the receive half is the Stream.
        let call = within(10, client.full_duplex_call(CallOptions::default()))
            .await
            .unwrap();
        let (mut tx, rx) = call.split();
        let request = StreamingOutputCallRequest {
            response_parameters: params(&[7, 8]),
            ..Default::default()
        };
        within(10, tx.send_all(stream::iter([request])))
            .await
            .unwrap();
        within(10, tx.close_send()).await.unwrap();
        let sizes = within(
            10,
            rx.map(|r| r.unwrap().payload.unwrap().body.len())
                .collect::<Vec<_>>(),
        )
        .await;
        assert_eq!(sizes, vec![7, 8]);
    })
    .await;
}

/// A server on h2 directly that refuses its first stream (REFUSED_STREAM: the client
/// retries it transparently), answers the next with headers and one empty message,
/// and then never ends it; counts the streams it saw.
async fn refusing_then_stalling_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        let (io, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(io).await.unwrap();
        // Kept, so the answered streams stay open.
        let mut open = Vec::new();
        while let Some(Ok((_request, mut respond))) = conn.accept().await {
            if count.fetch_add(1, Ordering::SeqCst) == 0 {
                respond.send_reset(h2::Reason::REFUSED_STREAM);
                continue;
            }
            let head = http::Response::builder()
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let mut send = respond.send_response(head, false).unwrap();
            send.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), false)
                .unwrap();
            open.push(send);
        }
    });
    (target, seen)
}

/// Read as a Stream, a call goes through the transparent retry (the head is reached
/// from `poll_next`) and its deadline still applies: the message, then one
/// DEADLINE_EXCEEDED, then the end.
#[tokio::test]
async fn a_stream_read_call_is_retried_and_meets_its_deadline() {
    rgrpc_tests::no_leaks(async {
        let (target, seen) = refusing_then_stalling_server().await;
        let client = TestServiceStub::new(within(10, Channel::connect(&target)).await.unwrap());
        let request =
            Request::new(StreamingOutputCallRequest::default()).timeout(Duration::from_millis(300));
        let responses = within(10, client.streaming_output_call(request))
            .await
            .unwrap();
        let items = within(10, responses.take(8).collect::<Vec<_>>()).await;
        assert_eq!(seen.load(Ordering::SeqCst), 2);
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(
            items[0].clone().unwrap(),
            StreamingOutputCallResponse::default()
        );
        assert_eq!(items[1].clone().unwrap_err().code(), Code::DeadlineExceeded);
    })
    .await;
}
