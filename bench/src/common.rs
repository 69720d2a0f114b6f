//! Flags, measurement and the report line shared by `rgrpc-bench` and `bench-tonic`.
//!
//! This file depends only on std, tokio, hdrhistogram and libc, never on a gRPC stack:
//! `bench-tonic` includes it with `#[path]`, so both load generators parse the same
//! flags, drive the load with the same loops and print the same `RESULT` line, and a
//! difference between them is a difference between the stacks.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Longest warm-up or measurement a run accepts: keeps every loop bounded in time even
/// with a mistyped flag.
pub const MAX_PHASE: Duration = Duration::from_secs(600);
/// Most connections one load generator opens (each costs a socket and a task).
pub const MAX_CONNECTIONS: usize = 1024;
/// Most concurrent calls per connection in closed-loop mode (each is one task).
pub const MAX_CONCURRENCY: usize = 10_000;
/// Largest request/response payload: the default 4 MiB receive limit of every stack,
/// less room for the message framing.
pub const MAX_PAYLOAD: usize = 4 * 1024 * 1024 - 1024;
/// A worker that fails this many times in a row stops (a dead server must not make the
/// generator spin until the deadline).
const MAX_CONSECUTIVE_ERRORS: u64 = 1000;
/// Most calls the open-loop dispatcher starts in one timer tick; with 1 ms ticks this
/// caps the offered rate at 1M calls/s per connection, far above what one core serves.
const MAX_BURST_PER_TICK: u64 = 1000;
/// Latencies above this are clamped when recorded (the histogram's range); it is also
/// the largest `--call_timeout`, so no completed step exceeds it.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Significant digits the histograms keep: 2 digits (1% resolution) keep one histogram
/// at ~10 KiB, so 400 workers cost ~4 MiB instead of ~130 MiB with 3 digits, which
/// would dwarf the stack's own memory in the client's RSS.
const HISTOGRAM_DIGITS: u8 = 2;

/// What the load generator does in each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One UnaryCall per step.
    Unary,
    /// One StreamingFromServer call per worker; each step receives one message.
    ServerStream,
    /// One StreamingCall per worker; each step sends a message and waits for the reply.
    PingPong,
}

impl Mode {
    /// The flag value naming this mode.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Unary => "unary",
            Mode::ServerStream => "server-stream",
            Mode::PingPong => "ping-pong",
        }
    }
}

/// Parsed `--name value` / `--name=value` flags, each name from a fixed list.
pub struct Flags {
    values: HashMap<String, String>,
}

impl Flags {
    /// Parses `args` against `known` (name, default) pairs; unknown flags are errors.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        known: &[(&str, &str)],
    ) -> Result<Flags, String> {
        let mut values: HashMap<String, String> = known
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(flag) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n.to_owned(), v.to_owned()),
                None => {
                    let v = args.next().ok_or(format!("--{flag} needs a value"))?;
                    (flag.to_owned(), v)
                }
            };
            if !values.contains_key(&name) {
                return Err(format!("unknown flag --{name}"));
            }
            values.insert(name, value);
        }
        Ok(Flags { values })
    }

    /// The value of `name` (its default when not given).
    pub fn string(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    /// The value of `name` parsed as `T`.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        self.string(name)
            .parse()
            .map_err(|e| format!("--{name}={:?}: {e}", self.string(name)))
    }

    /// The value of `name` as seconds (fractions allowed), at most [`MAX_PHASE`].
    pub fn seconds(&self, name: &str) -> Result<Duration, String> {
        let s: f64 = self.parsed(name)?;
        if !(0.0..=MAX_PHASE.as_secs_f64()).contains(&s) {
            return Err(format!(
                "--{name} must be within 0..={}",
                MAX_PHASE.as_secs()
            ));
        }
        Ok(Duration::from_secs_f64(s))
    }
}

/// Flags of the benchmark servers.
pub const SERVER_FLAGS: &[(&str, &str)] = &[
    ("port", "0"),
    ("max_concurrent_streams", "0"),
    ("handler_delay_ms", "0"),
    ("max_seconds", "3600"),
    ("dispatch", "inline"),
    ("observe", "none"),
    ("trim_memory", "on"),
    ("tls_cert", ""),
    ("tls_key", ""),
];

/// Settings of a benchmark server.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// SETTINGS_MAX_CONCURRENT_STREAMS to advertise (None: the stack's default).
    pub max_concurrent_streams: Option<u32>,
    /// Extra time every UnaryCall handler sleeps (the overload scenario's slow handler).
    pub handler_delay: Duration,
    /// The server exits after this long even if nobody stops it.
    pub max_lifetime: Duration,
    /// rgrpc only: `inline` (default) polls each new stream in its connection task
    /// first, `spawn` spawns every stream (`Server::inline_dispatch`); for A/B runs.
    pub inline_dispatch: bool,
    /// rgrpc only: `none` (default), `interceptor`, `stats` or `both`: what
    /// `rgrpc_bench::observe` installs, to measure its cost per call.
    pub observe: String,
    /// rgrpc only: `on` (default) or `off`: whether the server gives freed memory back
    /// after a burst of closed connections (`Server::trim_memory`); for A/B runs.
    pub trim_memory: bool,
    /// TLS: the certificate chain and key PEM files (`--tls_cert`, `--tls_key`);
    /// `None`: plaintext.
    pub tls: Option<(String, String)>,
}

impl ServerSettings {
    /// Reads the settings from the process arguments.
    pub fn from_args() -> Result<ServerSettings, String> {
        let f = Flags::parse(std::env::args().skip(1), SERVER_FLAGS)?;
        let mcs: u32 = f.parsed("max_concurrent_streams")?;
        let max_seconds: u64 = f.parsed("max_seconds")?;
        Ok(ServerSettings {
            port: f.parsed("port")?,
            max_concurrent_streams: (mcs > 0).then_some(mcs),
            handler_delay: Duration::from_millis(f.parsed("handler_delay_ms")?),
            max_lifetime: Duration::from_secs(max_seconds.min(24 * 3600)),
            inline_dispatch: match f.string("dispatch") {
                "inline" => true,
                "spawn" => false,
                other => return Err(format!("--dispatch {other:?}: expected inline or spawn")),
            },
            observe: f.string("observe").to_owned(),
            trim_memory: match f.string("trim_memory") {
                "on" => true,
                "off" => false,
                other => return Err(format!("--trim_memory {other:?}: expected on or off")),
            },
            tls: match (f.string("tls_cert"), f.string("tls_key")) {
                ("", "") => None,
                ("", _) | (_, "") => return Err("give both --tls_cert and --tls_key".to_owned()),
                (cert, key) => Some((cert.to_owned(), key.to_owned())),
            },
        })
    }
}

/// Longest a StreamingFromServer / StreamingBothWays handler keeps sending: the
/// benchmark clients cancel long before; this only bounds the loop.
pub const MAX_STREAM_TIME: Duration = Duration::from_secs(900);
/// Most messages one streaming handler sends (bounds the loop in count).
pub const MAX_STREAM_MESSAGES: u64 = 1 << 32;
/// Most messages StreamingFromClient / StreamingCall read from one stream.
pub const MAX_STREAM_REQUESTS: u64 = 1 << 32;

/// Prints the line the scripts wait for: `LISTENING stack=<stack> pid=<pid> port=<port>`.
pub fn announce(stack: &str, port: u16) {
    println!(
        "LISTENING stack={stack} pid={} port={port}",
        std::process::id()
    );
}

/// Flags of the load generators.
pub const CLIENT_FLAGS: &[(&str, &str)] = &[
    ("target", "127.0.0.1:50051"),
    ("mode", "unary"),
    ("connections", "1"),
    ("concurrency", "1"),
    ("payload", "10"),
    ("warmup", "1"),
    ("duration", "5"),
    ("rate", "0"),
    ("max_outstanding", "10000"),
    ("call_timeout", "10"),
    ("server_pid", "0"),
    ("rss_sample_ms", "0"),
    ("label", ""),
    ("write_h2load_body", ""),
    ("pool", "0"),
    ("observe", "none"),
    ("tls_ca", ""),
    ("tls_server_name", ""),
    ("service_config", ""),
];

/// Settings of a load-generator run.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// `host:port` of the server.
    pub target: String,
    /// What each step does.
    pub mode: Mode,
    /// HTTP/2 connections opened.
    pub connections: usize,
    /// Concurrent calls per connection (closed loop; open loop ignores it and runs one
    /// dispatcher per connection, bounded by `max_outstanding`).
    pub concurrency: usize,
    /// Request payload bytes, and the `response_size` asked for.
    pub payload: usize,
    /// Time run before measuring.
    pub warmup: Duration,
    /// Time measured.
    pub duration: Duration,
    /// Open-loop calls per second over all connections (0: closed loop).
    pub rate: u64,
    /// Open loop: most calls in flight at once; calls due beyond it are counted as shed.
    pub max_outstanding: usize,
    /// Deadline of each step.
    pub call_timeout: Duration,
    /// Pid of the server, for its CPU time and RSS (0: not measured).
    pub server_pid: u32,
    /// Period of the RSS samples printed during the run (None: no samples).
    pub rss_sample: Option<Duration>,
    /// Free text copied to the report.
    pub label: String,
    /// When set: write the h2load request body to this file and exit.
    pub write_h2load_body: Option<String>,
    /// rgrpc only: one channel with this many connections, round robin, instead of
    /// one channel per connection (0: off). Workers: pool x concurrency.
    pub pool: usize,
    /// rgrpc only: as the server's `observe`, on the client's channels.
    pub observe: String,
    /// TLS: trust the roots in this PEM file (`--tls_ca`); `None`: plaintext.
    pub tls_ca: Option<String>,
    /// With TLS: the name the server's certificate must match (`--tls_server_name`;
    /// default: the target's host).
    pub tls_server_name: Option<String>,
    /// rgrpc only: a service config (gRFC A2 JSON) on every channel, e.g. a retry
    /// policy that the calls never use, to measure what it costs (`--service_config`).
    pub service_config: Option<String>,
}

impl ClientSettings {
    /// Reads the settings from the process arguments.
    pub fn from_args() -> Result<ClientSettings, String> {
        let f = Flags::parse(std::env::args().skip(1), CLIENT_FLAGS)?;
        let mode = match f.string("mode") {
            "unary" => Mode::Unary,
            "server-stream" => Mode::ServerStream,
            "ping-pong" => Mode::PingPong,
            other => return Err(format!("unknown --mode {other:?}")),
        };
        let s = ClientSettings {
            target: f.string("target").to_owned(),
            mode,
            connections: f.parsed("connections")?,
            concurrency: f.parsed("concurrency")?,
            payload: f.parsed("payload")?,
            warmup: f.seconds("warmup")?,
            duration: f.seconds("duration")?,
            rate: f.parsed("rate")?,
            max_outstanding: f.parsed("max_outstanding")?,
            call_timeout: f.seconds("call_timeout")?,
            server_pid: f.parsed("server_pid")?,
            rss_sample: match f.parsed::<u64>("rss_sample_ms")? {
                0 => None,
                ms => Some(Duration::from_millis(ms.max(10))),
            },
            label: f.string("label").to_owned(),
            write_h2load_body: Some(f.string("write_h2load_body").to_owned())
                .filter(|s| !s.is_empty()),
            pool: f.parsed("pool")?,
            observe: f.string("observe").to_owned(),
            tls_ca: Some(f.string("tls_ca").to_owned()).filter(|s| !s.is_empty()),
            tls_server_name: Some(f.string("tls_server_name").to_owned()).filter(|s| !s.is_empty()),
            service_config: Some(f.string("service_config").to_owned()).filter(|s| !s.is_empty()),
        };
        if s.tls_server_name.is_some() && s.tls_ca.is_none() {
            return Err("--tls_server_name needs --tls_ca".to_owned());
        }
        if s.pool > MAX_CONNECTIONS {
            return Err(format!("--pool must be 0..={MAX_CONNECTIONS}"));
        }
        if !(1..=MAX_CONNECTIONS).contains(&s.connections) {
            return Err(format!("--connections must be 1..={MAX_CONNECTIONS}"));
        }
        if !(1..=MAX_CONCURRENCY).contains(&s.concurrency) {
            return Err(format!("--concurrency must be 1..={MAX_CONCURRENCY}"));
        }
        if s.payload > MAX_PAYLOAD {
            return Err(format!("--payload must be at most {MAX_PAYLOAD}"));
        }
        if s.rate > 0 && s.mode != Mode::Unary {
            return Err("--rate (open loop) is supported for --mode unary only".to_owned());
        }
        if !(1..=1_000_000).contains(&s.max_outstanding) {
            return Err("--max_outstanding must be 1..=1000000".to_owned());
        }
        if s.duration.is_zero() || s.call_timeout.is_zero() {
            return Err("--duration and --call_timeout must be positive".to_owned());
        }
        if s.call_timeout > Duration::from_micros(MAX_LATENCY_US) {
            return Err("--call_timeout must be at most 60 seconds".to_owned());
        }
        Ok(s)
    }
}

/// gRPC length-prefixed framing of one uncompressed message (PROTOCOL-HTTP2.md:
/// Compressed-Flag, 4-byte big-endian Message-Length, Message), for h2load's body file.
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// One measured operation of a worker: returns the payload bytes received.
pub trait Step: Send + 'static {
    /// Runs the operation once.
    fn step(&mut self) -> impl Future<Output = Result<usize, String>> + Send;
}

/// What the workers measured.
struct Tally {
    hist: Histogram<u64>,
    calls: u64,
    bytes: u64,
    errors: u64,
    timeouts: u64,
    shed: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_US, HISTOGRAM_DIGITS)
                .expect("1 <= low, high >= 2 * low, digits <= 5"),
            calls: 0,
            bytes: 0,
            errors: 0,
            timeouts: 0,
            shed: 0,
            first_error: None,
        }
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    fn merge(&mut self, other: Tally) {
        // Both histograms share bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.calls += other.calls;
        self.bytes += other.bytes;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.shed += other.shed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Records one outcome of a step started at `started` (intended start in open loop)
    /// and ended at `ended`; counted only when it lies inside the measured window.
    fn record(
        &mut self,
        window: (Instant, Instant),
        started: Instant,
        ended: Instant,
        outcome: Option<Result<usize, String>>,
    ) {
        if started < window.0 || ended > window.1 {
            return;
        }
        match outcome {
            Some(Ok(n)) => {
                let us = ended.duration_since(started).as_micros() as u64;
                self.hist.saturating_record(us.clamp(1, MAX_LATENCY_US));
                self.calls += 1;
                self.bytes += n as u64;
            }
            Some(Err(e)) => self.error(e),
            None => self.timeouts += 1,
        }
    }
}

/// CPU seconds (user + system) this process has used, from getrusage(RUSAGE_SELF).
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU seconds (utime + stime, fields 14 and 15 of /proc/<pid>/stat) of `pid`.
pub fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it start past ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / if ticks > 0.0 { ticks } else { 100.0 })
}

/// A `VmHWM` / `VmRSS` line of /proc/<pid>/status, in KiB.
pub fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The measured window of a run: from the end of warm-up to the deadline.
type Window = (Instant, Instant);

fn window_of(s: &ClientSettings) -> (Instant, Window) {
    let start = Instant::now() + Duration::from_millis(1);
    (start, (start + s.warmup, start + s.warmup + s.duration))
}

/// Runs the load of `s` in closed loop, one worker per connection x concurrency, and
/// prints the `RESULT` line. Every loop ends at the deadline; every step has
/// `call_timeout`.
pub async fn run_closed<S: Step>(s: &ClientSettings, stack: &str, workers: Vec<S>) {
    let (start, window) = window_of(s);
    let tasks = workers
        .into_iter()
        .map(|w| tokio::spawn(closed_loop(w, s.call_timeout, window)))
        .collect();
    report(s, stack, start, window, tasks).await;
}

/// Runs the load of `s` in open loop at `s.rate` calls/s, one dispatcher per worker
/// (connection), each call on a clone of its worker, and prints the `RESULT` line.
pub async fn run_open<S: Step + Clone + Sync>(s: &ClientSettings, stack: &str, workers: Vec<S>) {
    let (start, window) = window_of(s);
    let limit = Arc::new(tokio::sync::Semaphore::new(s.max_outstanding));
    let rate = s.rate as f64 / workers.len().max(1) as f64;
    let tasks = workers
        .into_iter()
        .map(|w| tokio::spawn(open_loop(w, rate, limit.clone(), s.call_timeout, window)))
        .collect();
    report(s, stack, start, window, tasks).await;
}

/// Measures CPU and memory over `window`, collects the workers' tallies and prints the
/// `RESULT` line.
async fn report(
    s: &ClientSettings,
    stack: &str,
    start: Instant,
    window: Window,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
) {
    let sampler = s
        .rss_sample
        .map(|period| tokio::spawn(sample_rss(period, s.server_pid, start, window.1)));
    tokio::time::sleep_until(window.0.into()).await;
    let cpu0 = self_cpu_seconds();
    let server_cpu0 = proc_cpu_seconds(s.server_pid);
    tokio::time::sleep_until(window.1.into()).await;
    let cpu1 = self_cpu_seconds();
    let server_cpu1 = proc_cpu_seconds(s.server_pid);
    let server_rss = proc_status_kib(s.server_pid, "VmRSS");
    let server_hwm = proc_status_kib(s.server_pid, "VmHWM");
    let mut total = Tally::new();
    for t in tasks {
        // Each task ends by the deadline plus one call timeout (and one second in open
        // loop, for the calls still in flight).
        if let Ok(tally) = t.await {
            total.merge(tally);
        }
    }
    let (peak_client, peak_server) = match sampler {
        Some(h) => h.await.unwrap_or((0, 0)),
        None => (0, 0),
    };
    let secs = s.duration.as_secs_f64();
    let per_1k = |c: f64| {
        if total.calls == 0 {
            f64::NAN
        } else {
            c / (total.calls as f64 / 1000.0)
        }
    };
    let server_cpu = match (server_cpu0, server_cpu1) {
        (Some(a), Some(b)) => per_1k(b - a),
        _ => f64::NAN,
    };
    let q = |p: f64| total.hist.value_at_quantile(p);
    println!(
        "RESULT stack={stack} label={} mode={} conns={} conc={} payload={} rate={} \
         calls={} errors={} timeouts={} shed={} qps={:.0} mbps={:.1} p50_us={} p90_us={} \
         p99_us={} p999_us={} max_us={} client_cpu_ms_per_1k={:.2} \
         server_cpu_ms_per_1k={:.2} client_hwm_kib={} server_hwm_kib={} server_rss_kib={} \
         client_rss_peak_kib={} server_rss_peak_kib={} first_error={:?}",
        if s.label.is_empty() { "-" } else { &s.label },
        s.mode.name(),
        s.connections,
        s.concurrency,
        s.payload,
        s.rate,
        total.calls,
        total.errors,
        total.timeouts,
        total.shed,
        total.calls as f64 / secs,
        total.bytes as f64 / secs / 1e6,
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        total.hist.max(),
        per_1k(cpu1 - cpu0) * 1000.0,
        server_cpu * 1000.0,
        proc_status_kib(std::process::id(), "VmHWM").unwrap_or(0),
        server_hwm.unwrap_or(0),
        server_rss.unwrap_or(0),
        peak_client,
        peak_server,
        total.first_error.unwrap_or_default(),
    );
}

/// One worker in closed loop: the next step starts when the last one ends.
async fn closed_loop<S: Step>(
    mut w: S,
    call_timeout: Duration,
    window: (Instant, Instant),
) -> Tally {
    let mut tally = Tally::new();
    let mut consecutive_errors = 0;
    // Bounded by the deadline, and by the error count below.
    while Instant::now() < window.1 && consecutive_errors < MAX_CONSECUTIVE_ERRORS {
        let started = Instant::now();
        let outcome = tokio::time::timeout(call_timeout, w.step()).await.ok();
        match &outcome {
            Some(Ok(_)) => consecutive_errors = 0,
            _ => consecutive_errors += 1,
        }
        tally.record(window, started, Instant::now(), outcome);
    }
    tally
}

/// One connection's dispatcher in open loop: starts calls at `rate` per second whether
/// or not earlier ones have finished, each in its own task, latency measured from the
/// intended start (no coordinated omission). At most `limit` calls are in flight over
/// all dispatchers; a call due while the limit is reached is shed and counted.
async fn open_loop<S: Step + Clone + Sync>(
    w: S,
    rate: f64,
    limit: Arc<tokio::sync::Semaphore>,
    call_timeout: Duration,
    window: (Instant, Instant),
) -> Tally {
    let shared = Arc::new(Mutex::new(Tally::new()));
    let begin = Instant::now();
    let mut issued: u64 = 0;
    let mut shed: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Bounded by the deadline; each tick starts at most MAX_BURST_PER_TICK calls.
    while Instant::now() < window.1 {
        tick.tick().await;
        let elapsed = begin.elapsed().as_secs_f64();
        let due = ((elapsed * rate) as u64).saturating_sub(issued);
        let started = due.min(MAX_BURST_PER_TICK);
        // Calls beyond the burst cap are not started late: they count as shed, like
        // calls refused for want of an outstanding slot.
        for k in started..due {
            if begin + Duration::from_secs_f64((issued + k) as f64 / rate) >= window.0 {
                shed += 1;
            }
        }
        for k in 0..started {
            let intended = begin + Duration::from_secs_f64((issued + k) as f64 / rate);
            match limit.clone().try_acquire_owned() {
                Ok(permit) => {
                    let mut w = w.clone();
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let outcome = tokio::time::timeout(call_timeout, w.step()).await.ok();
                        let ended = Instant::now();
                        if let Ok(mut t) = shared.lock() {
                            t.record(window, intended, ended, outcome);
                        }
                        drop(permit);
                    });
                }
                Err(_) => {
                    if intended >= window.0 {
                        shed += 1;
                    }
                }
            }
        }
        issued += due;
    }
    // Let the calls in flight finish (each has its own timeout), bounded the same way.
    let _ = tokio::time::timeout(call_timeout + Duration::from_secs(1), async {
        while Arc::strong_count(&shared) > 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let mut tally = std::mem::replace(
        &mut *shared.lock().expect("no panics hold it"),
        Tally::new(),
    );
    tally.shed += shed;
    tally
}

/// Prints `RSS t_ms=.. client_kib=.. server_kib=..` every `period` until `end`, and
/// returns the largest RSS of each process it saw.
async fn sample_rss(period: Duration, server_pid: u32, start: Instant, end: Instant) -> (u64, u64) {
    let me = std::process::id();
    let mut peak = (0, 0);
    let mut tick = tokio::time::interval(period);
    // Bounded by the deadline.
    while Instant::now() < end {
        tick.tick().await;
        let c = proc_status_kib(me, "VmRSS").unwrap_or(0);
        let s = proc_status_kib(server_pid, "VmRSS").unwrap_or(0);
        peak = (peak.0.max(c), peak.1.max(s));
        println!(
            "RSS t_ms={} client_kib={c} server_kib={s}",
            start.elapsed().as_millis()
        );
    }
    peak
}
