//! The `grpc` span of each RPC, on both sides, seen by a capturing subscriber: its
//! fields (method, side, peer, status code, duration, messages each way), and that a
//! server's handler runs inside it. Its own test binary: the subscriber is the
//! thread's default while it runs, and no other test shares the process.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rgrpc_examples::routeguide::{Point, Rectangle, RouteGuideStub};
use rgrpc_runtime::{Channel, Code};
use rgrpc_tests::grpc_testing::{EchoStatus, SimpleRequest, TestServiceStub};
use rgrpc_tests::{start, wait_until, within};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// One span: its name, level, fields as text, and how often it was entered.
#[derive(Clone, Debug, Default)]
struct Captured {
    name: String,
    level: String,
    fields: BTreeMap<String, String>,
    entered: u64,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    next: AtomicU64,
    spans: Mutex<BTreeMap<u64, Captured>>,
}

/// The subscriber: shared, so the test reads what the runtime's spans recorded.
#[derive(Clone, Default)]
struct Capture(Arc<Shared>);

impl std::ops::Deref for Capture {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let mut captured = Captured {
            name: span.metadata().name().to_owned(),
            level: span.metadata().level().to_string(),
            ..Captured::default()
        };
        span.record(&mut Fields(&mut captured.fields));
        self.spans.lock().unwrap().insert(id, captured);
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(s) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Fields(&mut s.fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, span: &Id) {
        if let Some(s) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            s.entered += 1;
        }
    }
    fn exit(&self, _: &Id) {}
    fn try_close(&self, span: Id) -> bool {
        if let Some(s) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            s.closed = true;
        }
        true
    }
}

impl Capture {
    /// The closed `grpc` spans of `method` on `side`.
    fn grpc(&self, side: &str, method: &str) -> Vec<Captured> {
        self.spans
            .lock()
            .unwrap()
            .values()
            .filter(|s| {
                s.name == "grpc"
                    && s.closed
                    && s.fields.get("side").map(String::as_str) == Some(side)
                    && s.fields.get("rpc.method").map(String::as_str) == Some(method)
            })
            .cloned()
            .collect()
    }
}

fn field<'a>(span: &'a Captured, name: &str) -> &'a str {
    span.fields
        .get(name)
        .unwrap_or_else(|| panic!("no field {name} in {span:?}"))
}

#[tokio::test]
async fn each_rpc_has_a_span_with_its_fields_on_both_sides() {
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(capture.clone());
    let server = start(|s| s).await;
    let channel = Channel::connect(&server.target()).await.unwrap();
    let stub = TestServiceStub::new(channel.clone());
    within(10, stub.unary_call(SimpleRequest::default()))
        .await
        .unwrap();
    let failing = SimpleRequest {
        response_status: Some(EchoStatus {
            code: Code::Aborted as i32,
            message: "no".into(),
        }),
        ..Default::default()
    };
    within(10, stub.unary_call(failing)).await.unwrap_err();
    let routes = RouteGuideStub::new(channel);
    let all = Rectangle {
        lo: Some(Point {
            latitude: 0,
            longitude: -900_000_000,
        }),
        hi: Some(Point {
            latitude: 900_000_000,
            longitude: 0,
        }),
    };
    let mut listed = within(10, routes.list_features(all)).await.unwrap();
    while within(10, listed.message()).await.unwrap().is_some() {}
    drop(listed);
    let unary = "/grpc.testing.TestService/UnaryCall";
    let list = "/routeguide.RouteGuide/ListFeatures";
    wait_until(10, || {
        capture.grpc("server", unary).len() == 2
            && capture.grpc("server", list).len() == 1
            && capture.grpc("client", unary).len() == 2
            && capture.grpc("client", list).len() == 1
    })
    .await;

    for side in ["server", "client"] {
        let spans = capture.grpc(side, unary);
        let codes: Vec<&str> = spans.iter().map(|s| field(s, "grpc.status_code")).collect();
        assert_eq!(codes, ["0", &(Code::Aborted as i32).to_string()], "{side}");
        for span in &spans {
            assert_eq!(span.level, "DEBUG");
            assert_eq!(field(span, "rpc.system"), "grpc");
            assert!(
                field(span, "duration_us").parse::<u64>().is_ok(),
                "{span:?}"
            );
        }
        // OK: one message each way; Aborted: the request only.
        assert_eq!(field(&spans[0], "messages_received"), "1", "{side}");
        assert_eq!(field(&spans[0], "messages_sent"), "1", "{side}");
        let (recv, sent) = if side == "server" {
            ("1", "0")
        } else {
            ("0", "1")
        };
        assert_eq!(field(&spans[1], "messages_received"), recv, "{side}");
        assert_eq!(field(&spans[1], "messages_sent"), sent, "{side}");

        let listed = &capture.grpc(side, list)[0];
        assert_eq!(field(listed, "grpc.status_code"), "0");
        let features = rgrpc_examples::route_guide::features().len().to_string();
        let (recv, sent) = if side == "server" {
            ("1", features.as_str())
        } else {
            (features.as_str(), "1")
        };
        assert_eq!(field(listed, "messages_received"), recv, "{side}");
        assert_eq!(field(listed, "messages_sent"), sent, "{side}");
    }
    // The server's peer is the client's address; the client's is the target.
    let server_span = &capture.grpc("server", unary)[0];
    assert!(
        field(server_span, "peer").starts_with("127.0.0.1:"),
        "{server_span:?}"
    );
    assert_ne!(field(server_span, "peer"), server.addr.to_string());
    let client_span = &capture.grpc("client", unary)[0];
    assert_eq!(field(client_span, "peer"), server.addr.to_string());
    // The server's handler ran inside its span.
    assert!(server_span.entered > 0, "{server_span:?}");
}
