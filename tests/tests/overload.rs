//! Overload: a client that issues calls ten times faster than the server completes
//! them, for a bounded time, against a slow handler behind a small stream limit and
//! against MAX_CONCURRENT_STREAMS=1. Every call ends exactly once, OK or
//! DEADLINE_EXCEEDED near its own deadline; the server ran each handler at most once;
//! the RSS of both sides stays flat after the first second.
//!
//! Its own test binary, with one test at a time, so that this process's RSS is the
//! client's alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rgrpc_runtime::{CallOptions, Channel, Code, Request};
use rgrpc_tests::grpc_testing::{Payload, SimpleRequest, TestServiceStub};
use rgrpc_tests::target::Target;

const BIN: &str = env!("CARGO_BIN_EXE_hostile-target");

fn self_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap()
}

#[derive(Default)]
struct Outcomes {
    ok: AtomicU64,
    deadline: AtomicU64,
    other: AtomicU64,
    /// The latest a DEADLINE_EXCEEDED call ended after its deadline, in ms.
    worst_overrun_ms: AtomicU64,
}

/// Issues `rate` calls per second for `secs` seconds, each with `deadline`, against a
/// handler that takes `delay_ms`; checks the outcomes and the memory of both sides.
async fn overload(target: Target, rate: u64, secs: u64, delay_ms: u64, deadline: Duration) {
    let channel = Channel::lazy(&format!("http://{}", target.addr)).unwrap();
    let client = TestServiceStub::new(channel);
    let request = SimpleRequest {
        payload: Some(Payload {
            body: format!("delay_ms:{delay_ms}").into_bytes(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let outcomes = Arc::new(Outcomes::default());
    let mut calls = tokio::task::JoinSet::new();
    let mut samples: Vec<(Duration, u64, u64)> = Vec::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut issued = 0u64;
    let mut last_sample = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        issued += 1;
        let client = client.clone();
        let request = request.clone();
        let outcomes = outcomes.clone();
        calls.spawn(async move {
            let options = CallOptions::new().with_timeout(deadline);
            let begun = Instant::now();
            let result = client
                .unary_call(Request::with_options(request, options))
                .await;
            match result {
                Ok(_) => outcomes.ok.fetch_add(1, Ordering::SeqCst),
                Err(status) if status.code() == Code::DeadlineExceeded => {
                    let over = begun.elapsed().saturating_sub(deadline).as_millis() as u64;
                    outcomes.worst_overrun_ms.fetch_max(over, Ordering::SeqCst);
                    outcomes.deadline.fetch_add(1, Ordering::SeqCst)
                }
                Err(status) => {
                    eprintln!("unexpected after {:?}: {status:?}", begun.elapsed());
                    outcomes.other.fetch_add(1, Ordering::SeqCst)
                }
            };
        });
        // Reap finished calls so the JoinSet itself does not grow with the run.
        while calls.try_join_next().is_some() {}
        if started.elapsed() - last_sample >= Duration::from_millis(200) {
            last_sample = started.elapsed();
            samples.push((last_sample, self_rss_kib(), target.status_kib("VmRSS:")));
        }
    }
    let issuing = started.elapsed();
    while calls.join_next().await.is_some() {}
    let ok = outcomes.ok.load(Ordering::SeqCst);
    let timed_out = outcomes.deadline.load(Ordering::SeqCst);
    let (finished, dropped) = target.stop().await;

    // Every call ended exactly once, with OK or its own deadline.
    assert_eq!(outcomes.other.load(Ordering::SeqCst), 0);
    assert_eq!(ok + timed_out, issued, "calls lost");
    // The offered load really was ten times capacity: most calls ran out of time.
    assert!(
        timed_out > issued / 2,
        "not overloaded: {ok} ok of {issued}"
    );
    // Each OK answer came from one handler run, and no handler ran twice.
    assert!(
        finished >= ok,
        "{finished} handlers finished, {ok} calls OK"
    );
    assert!(
        finished + dropped <= issued,
        "{finished} + {dropped} handler runs for {issued} calls"
    );
    let overrun = outcomes.worst_overrun_ms.load(Ordering::SeqCst);
    assert!(overrun < 1000, "a deadline fired {overrun} ms late");

    // Flat after the first second: growth over the rest of the run within 16 MiB each.
    let after_first: Vec<_> = samples
        .iter()
        .filter(|(t, _, _)| *t >= Duration::from_secs(1))
        .collect();
    assert!(after_first.len() >= 5, "{} samples", after_first.len());
    let (_, client0, server0) = after_first[0];
    let client_max = after_first.iter().map(|s| s.1).max().unwrap();
    let server_max = after_first.iter().map(|s| s.2).max().unwrap();
    eprintln!(
        "overload {rate}/s for {issuing:?}: {issued} calls, {ok} ok, {timed_out} deadline, \
         worst overrun {overrun} ms; client RSS {client0}->{client_max} KiB, \
         server RSS {server0}->{server_max} KiB"
    );
    assert!(
        client_max - client0 < 16 * 1024,
        "client RSS {client0} -> {client_max} KiB"
    );
    assert!(
        server_max - server0 < 16 * 1024,
        "server RSS {server0} -> {server_max} KiB"
    );
}

/// One test, two loads in turn (so that this process's RSS is one client's): 16
/// streams of 100 ms handlers (160 calls/s) offered 1600 calls/s, then one stream of
/// 10 ms handlers (100 calls/s) offered 1000 calls/s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_times_capacity_loses_nothing_and_stays_flat() {
    let target = Target::spawn(BIN, &["--max_concurrent_streams", "16"]).await;
    overload(target, 1600, 4, 100, Duration::from_millis(500)).await;
    let target = Target::spawn(BIN, &["--max_concurrent_streams", "1"]).await;
    overload(target, 1000, 4, 10, Duration::from_millis(300)).await;
}
