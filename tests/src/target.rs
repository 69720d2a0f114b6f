//! The server under test in its own process (src/bin/hostile-target.rs), so that its
//! memory and CPU time are read from /proc without the test harness's in them, and so
//! that it can be killed and restarted.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use crate::h2peer::RawPeer;

const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";
/// `HelloRequest { name: "x" }`.
const HELLO: &[u8] = &[0x0a, 0x01, b'x'];
const SECS: Duration = Duration::from_secs(1);

/// The server under attack, in its own process.
pub struct Target {
    child: Child,
    stdout: BufReader<ChildStdout>,
    pub addr: SocketAddr,
    /// Peak RSS after the first call.
    pub baseline_kib: u64,
}

impl Target {
    /// Starts `bin` (the test's `env!("CARGO_BIN_EXE_hostile-target")`) with `args`;
    /// `--nofile N` sets its descriptor limit.
    pub async fn spawn(bin: &str, args: &[&str]) -> Target {
        // `--nofile N` is the shell's `ulimit -n N` before exec, not a server flag.
        let mut command = match args.iter().position(|a| *a == "--nofile") {
            Some(at) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {} && exec \"$0\" \"$@\"", args[at + 1]))
                    .arg(bin)
                    .args(&args[..at])
                    .args(&args[at + 2..]);
                c
            }
            None => {
                let mut c = Command::new(bin);
                c.args(args);
                c
            }
        };
        // RGRPC_TARGET_FRAME_LOG=1 turns on the frame log in the target alone.
        if std::env::var_os("RGRPC_TARGET_FRAME_LOG").is_some() {
            command.env("RGRPC_FRAME_LOG", "1");
        }
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn hostile-target");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        tokio::time::timeout(10 * SECS, stdout.read_line(&mut line))
            .await
            .expect("hostile-target starts within 10 s")
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        let mut target = Target {
            child,
            stdout,
            addr,
            baseline_kib: 0,
        };
        // One call first, so the baseline includes what every served connection needs.
        target.healthy().await;
        target.baseline_kib = target.status_kib("VmHWM:");
        target
    }

    /// A `kB` field of /proc/PID/status (`VmRSS:`, `VmHWM:`).
    pub fn status_kib(&self, field: &str) -> u64 {
        let pid = self.child.id().expect("target is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
    }

    /// Peak RSS growth since the baseline must stay under `bound_mib`.
    pub fn assert_peak_growth_under(&self, bound_mib: u64) {
        let peak = self.status_kib("VmHWM:");
        let grown = peak.saturating_sub(self.baseline_kib);
        assert!(
            grown < bound_mib * 1024,
            "server peak RSS grew {grown} KiB (baseline {} KiB), bound {bound_mib} MiB",
            self.baseline_kib
        );
    }

    /// A normal call on a fresh connection succeeds.
    pub async fn healthy(&self) {
        let mut peer = RawPeer::handshake(self.addr).await;
        let answer = peer.unary(1, SAY_HELLO, &[], HELLO).await.expect("answer");
        assert_eq!(answer.grpc_status(), Some("0"), "{answer:?}");
    }

    /// CPU seconds (user + system) the server has used.
    pub fn cpu_secs(&self) -> f64 {
        let pid = self.child.id().expect("target is running");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // Fields after the parenthesised command name; utime and stime are 14 and 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / 100.0
    }

    /// Closes its stdin and waits for it to exit: (handlers finished, handlers dropped).
    pub async fn stop(mut self) -> (u64, u64) {
        drop(self.child.stdin.take());
        let mut line = String::new();
        tokio::time::timeout(10 * SECS, self.stdout.read_line(&mut line))
            .await
            .expect("hostile-target exits within 10 s of its stdin closing")
            .unwrap();
        let counts: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(counts.len(), 2, "unexpected last line {line:?}");
        (counts[0], counts[1])
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("target is running")
    }

    /// SIGKILL, and wait until the process is gone.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill hostile-target");
    }
}
