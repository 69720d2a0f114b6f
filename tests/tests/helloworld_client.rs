//! The helloworld-client example binary (built from the example's source as this
//! package's `example-helloworld-client`) against in-process servers: round_robin over
//! three servers on 127.0.0.2..127.0.0.4 as its doc shows, and its exit status and
//! output when calls fail.

use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rgrpc_examples::helloworld::{
    GreeterServer, HelloReply, HelloRequest, register_greeter_server,
};
use rgrpc_runtime::{Server, ServerContext, ServerHandle, Status};
use rgrpc_tests::within;
use tokio::process::Command;

/// Bounds one run of the client.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// A Greeter that counts its calls. Each takes 20 ms, so that every subchannel of a
/// round_robin client is Ready well before its ninth call, however loaded the machine.
struct Counting(Arc<AtomicUsize>);

impl GreeterServer for Counting {
    async fn say_hello(
        &self,
        _ctx: &ServerContext,
        request: HelloRequest,
    ) -> Result<HelloReply, Status> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(HelloReply {
            message: format!("Hello {}", request.name),
        })
    }
}

struct Greeter {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    handle: ServerHandle,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn greeter_on(host: &str) -> Greeter {
    let listener = tokio::net::TcpListener::bind(format!("{host}:0"))
        .await
        .unwrap_or_else(|e| panic!("bind {host}:0: {e}"));
    let addr = listener.local_addr().expect("local addr");
    let calls = Arc::new(AtomicUsize::new(0));
    let mut server = Server::new();
    register_greeter_server(&mut server, Counting(calls.clone()));
    let handle = server.handle();
    let serving = tokio::spawn(server.serve_with_incoming(listener));
    Greeter {
        addr,
        calls,
        handle,
        serving,
    }
}

impl Greeter {
    async fn stop(self) {
        self.handle.graceful_stop();
        within(10, self.serving)
            .await
            .expect("server task panicked")
            .expect("server failed");
    }
}

/// Runs the client with `args`, bounded by [`CHILD_TIMEOUT`].
async fn client(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_example-helloworld-client"));
    command
        .args(args)
        .env_remove("RGRPC_FRAME_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().expect("spawning helloworld-client");
    tokio::time::timeout(CHILD_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("helloworld-client did not finish within {CHILD_TIMEOUT:?}"))
        .expect("waiting for helloworld-client")
}

fn show(out: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The example's own doc line, on ephemeral ports: nine calls, round_robin over three
/// servers; exit 0 and every server served.
#[tokio::test]
async fn round_robin_over_three_servers() {
    let mut servers = Vec::new();
    for host in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        servers.push(greeter_on(host).await);
    }
    let list: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let target = format!("ipv4:{}", list.join(","));
    let out = client(&[
        "--target",
        &target,
        "--lb",
        "round_robin",
        "--count",
        "9",
        "--name",
        "rr",
    ])
    .await;
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        out.stdout,
        "Hello rr\n".repeat(9).as_bytes(),
        "{}",
        show(&out)
    );
    let calls: Vec<usize> = servers
        .iter()
        .map(|s| s.calls.load(Ordering::SeqCst))
        .collect();
    assert_eq!(calls.iter().sum::<usize>(), 9, "{calls:?}");
    assert!(
        calls.iter().all(|&n| n > 0),
        "a server got no call: {calls:?}"
    );
    for server in servers {
        server.stop().await;
    }
}

/// Nothing listening: the first call fails fast; the client says UNAVAILABLE and exits
/// non-zero without printing a reply.
#[tokio::test]
async fn nothing_listening_is_unavailable_and_a_failure_exit() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let target = format!("ipv4:{closed}");
    let out = client(&["--target", &target, "--count", "3"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(out.stdout.is_empty(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("UNAVAILABLE: "), "{}", show(&out));
}

/// A bad service config is the builder's INVALID_ARGUMENT naming the field; a bad
/// flag is clap's usage error (exit 2).
#[tokio::test]
async fn bad_service_config_and_bad_flags() {
    let out = client(&["--service_config", r#"{"methodConfig": [{"timeout": 1}]}"#]).await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("INVALID_ARGUMENT: service config: methodConfig[0].timeout: "),
        "{}",
        show(&out)
    );
    let out = client(&["--lb", "least_request"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let out = client(&["--count", "0"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

/// A service config's waitForReady and timeout reach the example's calls: with nothing
/// listening, a call waits out its 300 ms timeout and fails DEADLINE_EXCEEDED instead
/// of UNAVAILABLE at once.
#[tokio::test]
async fn the_service_config_reaches_the_calls() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = r#"{"methodConfig": [{"name": [{"service": "helloworld.Greeter"}],
        "waitForReady": true, "timeout": "0.3s"}]}"#;
    let out = client(&["--target", &closed.to_string(), "--service_config", config]).await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("DEADLINE_EXCEEDED: "), "{}", show(&out));
}
