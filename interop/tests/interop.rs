//! The interop suite end to end: our client against our server in-process, then the
//! grpcio peer (tests/interop) against each of our binaries through `run.py`; every
//! pairing twice, in plaintext and over TLS (grpc's interop flags: the server serves
//! the test certificate, the client trusts the test CA and checks the name
//! `foo.test.google.fr`), see [`Security`].
//!
//! The grpcio tests install their peer first (`tests/interop/setup.sh`: a venv with
//! grpcio from PyPI, idempotent); if that fails they fail saying so, unless
//! `RGRPC_SKIP_GRPCIO=1` is set (then they skip).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rgrpc_interop::client::{self, Case, Settings};
use rgrpc_interop::pb::{StreamingOutputCallRequest, TestServiceStub};
use rgrpc_interop::{server, testdata};
use rgrpc_runtime::{CallOptions, Channel, ServerTlsConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Bounds one run.py pairing: 21 cases, the slowest (soak) ~a second each in debug.
const RUN_PY_TIMEOUT: Duration = Duration::from_secs(300);

/// The axis every pairing runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Security {
    Plaintext,
    /// grpc's interop TLS set-up: server1's certificate on the server; the test CA
    /// and `--server_host_override=foo.test.google.fr` on the client.
    Tls,
}

impl Security {
    fn server_tls(self) -> Option<ServerTlsConfig> {
        (self == Security::Tls).then(|| {
            ServerTlsConfig::from_pem(testdata::SERVER1_PEM, testdata::SERVER1_KEY)
                .expect("the vendored server1 certificate")
        })
    }

    fn client_settings(self, target: String) -> Settings {
        let mut settings = Settings {
            rpc_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            ..Settings::new(target)
        };
        if self == Security::Tls {
            settings.tls =
                Some(Settings::tls_of(true, testdata::SERVER_HOST_OVERRIDE).expect("test CA"));
        }
        settings
    }

    /// run.py's flag for it.
    fn run_py_args(self) -> &'static [&'static str] {
        match self {
            Security::Plaintext => &[],
            Security::Tls => &["--use_tls"],
        }
    }
}

/// Our server on 127.0.0.1:0 in this runtime; send on the sender to stop it.
async fn start_server(
    security: Security,
) -> (
    String,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve_with_tls(
        listener,
        security.server_tls(),
        async {
            let _ = stopped.await;
        },
    ));
    (addr.to_string(), stop, serving)
}

async fn stop_server(
    stop: oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
) -> Duration {
    let began = Instant::now();
    let _ = stop.send(());
    let result = tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("server did not stop within 5 s of the shutdown signal");
    result
        .expect("server task panicked")
        .expect("server failed");
    began.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rgrpc_client_against_rgrpc_server() {
    rgrpc_against_rgrpc(Security::Plaintext).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rgrpc_client_against_rgrpc_server_over_tls() {
    rgrpc_against_rgrpc(Security::Tls).await;
}

async fn rgrpc_against_rgrpc(security: Security) {
    let (target, stop, serving) = start_server(security).await;
    let settings = security.client_settings(target);
    let mut failures = Vec::new();
    for case in Case::ALL {
        match client::run_case(&settings, case).await {
            Ok(()) => println!("PASS {}", case.name()),
            Err(reason) => {
                println!("FAIL {}: {reason}", case.name());
                failures.push(format!("{}: {reason}", case.name()));
            }
        }
    }
    stop_server(stop, serving).await;
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n")
    );
}

/// `serve` must not wait for a client that holds a stream open: the binary has to
/// stop promptly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stops_promptly_with_a_stream_open() {
    let (target, stop, serving) = start_server(Security::Plaintext).await;
    let channel = tokio::time::timeout(Duration::from_secs(5), Channel::connect(&target))
        .await
        .expect("connect timed out")
        .expect("connect");
    let stub = TestServiceStub::new(channel);
    let options = CallOptions::new().with_timeout(Duration::from_secs(30));
    let mut call = stub
        .full_duplex_call(options)
        .await
        .expect("FullDuplexCall");
    call.send(&StreamingOutputCallRequest::default())
        .await
        .expect("send");
    // Never half-closed: the handler waits for more requests.
    let took = stop_server(stop, serving).await;
    assert!(
        took < server::SHUTDOWN_GRACE + Duration::from_millis(500),
        "server took {took:?} to stop"
    );
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("interop/ has a parent")
        .to_owned()
}

/// The venv python of tests/interop after running its setup once per test binary, or
/// `None` to skip (RGRPC_SKIP_GRPCIO=1).
fn grpcio_python() -> Option<PathBuf> {
    static SETUP: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    if std::env::var_os("RGRPC_SKIP_GRPCIO").is_some_and(|v| v == "1") {
        println!("skipped: RGRPC_SKIP_GRPCIO=1");
        return None;
    }
    let setup = SETUP.get_or_init(|| {
        let root = repo_root();
        let script = root.join("tests/interop/setup.sh");
        let status = Command::new("bash")
            .arg(&script)
            .status()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !status.success() {
            return Err(format!("{} failed ({status})", script.display()));
        }
        Ok(root.join("tests/interop/.venv/bin/python"))
    });
    match setup {
        Ok(python) => Some(python.clone()),
        Err(e) => panic!(
            "{e}: the grpcio peer needs python3 with venv and PyPI; set RGRPC_SKIP_GRPCIO=1 \
             to skip"
        ),
    }
}

/// Runs `run.py` with `args`, bounded by [`RUN_PY_TIMEOUT`]; returns its output after
/// asserting it passed every case.
fn run_py(python: &Path, args: &[&str]) -> String {
    let root = repo_root();
    let mut child = Command::new(python)
        .arg(root.join("tests/interop/run.py"))
        .args(args)
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning run.py");
    let stdout = reader(&mut child.stdout);
    let stderr = reader(&mut child.stderr);
    let deadline = Instant::now() + RUN_PY_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for run.py") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = format!(
        "{}{}",
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default()
    );
    println!("{output}");
    let status = status.unwrap_or_else(|| {
        panic!("run.py {args:?} did not finish within {RUN_PY_TIMEOUT:?}:\n{output}")
    });
    let summary = output
        .lines()
        .rfind(|l| l.ends_with(" failed"))
        .unwrap_or_default();
    assert!(
        status.success() && summary.ends_with(" passed, 0 failed"),
        "run.py {args:?} failed ({status}):\n{output}"
    );
    output
}

/// Reads a child's pipe to the end on its own thread, so the child never blocks on a
/// full pipe while we poll it.
fn reader<R: Read + Send + 'static>(pipe: &mut Option<R>) -> std::thread::JoinHandle<String> {
    let mut pipe = pipe.take().expect("piped");
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// run.py splits its command arguments like a shell (shlex).
fn shell_quote(path: &str) -> String {
    format!("'{}'", path.replace('\'', r"'\''"))
}

#[test]
fn grpcio_client_against_rgrpc_server() {
    grpcio_against_rgrpc(Security::Plaintext);
}

#[test]
fn grpcio_client_against_rgrpc_server_over_tls() {
    grpcio_against_rgrpc(Security::Tls);
}

#[test]
fn rgrpc_client_against_grpcio_server() {
    rgrpc_against_grpcio(Security::Plaintext);
}

#[test]
fn rgrpc_client_against_grpcio_server_over_tls() {
    rgrpc_against_grpcio(Security::Tls);
}

fn grpcio_against_rgrpc(security: Security) {
    let Some(python) = grpcio_python() else {
        return;
    };
    let server = shell_quote(env!("CARGO_BIN_EXE_rgrpc-interop-server"));
    let mut args = vec!["--server", &server];
    args.extend(security.run_py_args());
    let output = run_py(&python, &args);
    assert!(
        output.contains("PASS empty_unary"),
        "no cases ran:\n{output}"
    );
}

fn rgrpc_against_grpcio(security: Security) {
    let Some(python) = grpcio_python() else {
        return;
    };
    let client = shell_quote(env!("CARGO_BIN_EXE_rgrpc-interop-client"));
    let mut args = vec!["--client", &client];
    args.extend(security.run_py_args());
    let output = run_py(&python, &args);
    for case in Case::ALL {
        assert!(
            output.contains(&format!("PASS {}\n", case.name())),
            "{} did not pass:\n{output}",
            case.name()
        );
    }
}
