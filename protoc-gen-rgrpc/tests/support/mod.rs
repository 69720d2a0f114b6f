//! A fresh crate outside the workspace, built with `cargo build`: how a user's crate
//! meets our code. Shared by the test binaries that need one.
//!
//! The crate lives under `CARGO_TARGET_TMPDIR/fresh/<name>` with an empty
//! `[workspace]` table (the target dir may be inside this repository, whose workspace
//! would otherwise claim it), gets this workspace's `Cargo.lock` (so the versions are
//! the ones already downloaded and `--offline` works), and builds into its own target
//! dir, `CARGO_TARGET_TMPDIR/fresh-target`, shared by every fresh crate so their
//! common dependencies compile once. Every build is bounded in time.

#![allow(dead_code)] // each test binary uses part of it

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bounds one `cargo build` of a fresh crate: its dependencies from scratch in debug
/// on a 2-core machine take a few minutes.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("protoc-gen-rgrpc/ has a parent")
        .to_owned()
}

/// A crate directory being assembled.
pub struct FreshCrate {
    pub dir: PathBuf,
}

impl FreshCrate {
    /// An empty directory for crate `name`.
    pub fn new(name: &str) -> FreshCrate {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("fresh")
            .join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("CARGO_TARGET_TMPDIR is writable");
        FreshCrate { dir }
    }

    /// Writes `content` to `path` (relative to the crate), creating directories.
    pub fn write(&self, path: &str, content: &str) {
        let path = self.dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in the crate"))
            .expect("the crate dir is writable");
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// `cargo build --offline` in the crate (after copying in the workspace's
    /// Cargo.lock and closing its `[workspace]`), bounded by [`BUILD_TIMEOUT`].
    /// Returns whether it succeeded and cargo's output.
    pub fn build(&self) -> (bool, String) {
        let manifest = self.dir.join("Cargo.toml");
        let mut text = std::fs::read_to_string(&manifest).expect("write Cargo.toml first");
        text.push_str(
            "\n# Added by the test: not a member of the enclosing workspace.\n[workspace]\n",
        );
        std::fs::write(&manifest, text).expect("the crate dir is writable");
        std::fs::copy(repo_root().join("Cargo.lock"), self.dir.join("Cargo.lock"))
            .expect("the workspace has a Cargo.lock");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fresh-target");
        let mut child = Command::new(cargo)
            .args(["build", "--offline", "--quiet"])
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", &target)
            // The outer `cargo test`'s settings are not the user's.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cargo runs");
        let stdout = drain(child.stdout.take().expect("piped"));
        let stderr = drain(child.stderr.take().expect("piped"));
        let deadline = Instant::now() + BUILD_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for cargo") {
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
        match status {
            Some(status) => (status.success(), output),
            None => panic!(
                "cargo build of {} took longer than {BUILD_TIMEOUT:?}:\n{output}",
                self.dir.display()
            ),
        }
    }
}

fn drain<R: Read + Send + 'static>(mut pipe: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}
