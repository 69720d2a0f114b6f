//! A stats handler as a metrics exporter would write one: per side and method, calls
//! by status code, a latency histogram and bytes each way, rendered in Prometheus'
//! text format (what a `/metrics` endpoint serves). `stats` (src/bin/stats.rs) runs it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use rgrpc_runtime::{Code, RpcInfo, StatsEvent, StatsHandler};

/// Upper bounds of the latency buckets, in seconds (grpc's OpenTelemetry plugin uses
/// similar exponential buckets).
const BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 1.0, 10.0,
];

/// Per-method counts and latency histograms of every RPC a server or a channel sees.
#[derive(Default)]
pub struct Metrics {
    by_method: Mutex<BTreeMap<(bool, String), Method>>,
}

/// One method on one side.
#[derive(Clone, Debug, Default)]
pub struct Method {
    /// Ended calls, by status code (its number).
    pub calls: BTreeMap<i32, u64>,
    /// Calls per latency bucket (`BUCKETS`, then +Inf).
    pub buckets: [u64; BUCKETS.len() + 1],
    /// Sum of the latencies.
    pub latency_sum: Duration,
    /// Message bytes on the wire received and sent.
    pub wire_bytes_in: u64,
    /// See `wire_bytes_in`.
    pub wire_bytes_out: u64,
}

impl StatsHandler for Metrics {
    fn handle(&self, rpc: &RpcInfo<'_>, event: &StatsEvent<'_>) {
        // Only three events matter here; the rest are one match arm away.
        let update = |f: &mut dyn FnMut(&mut Method)| {
            let mut all = self.by_method.lock().unwrap_or_else(|e| e.into_inner());
            f(all
                .entry((rpc.client, rpc.full_method.to_owned()))
                .or_default());
        };
        match event {
            StatsEvent::InPayload(p) => update(&mut |m| m.wire_bytes_in += p.wire_length as u64),
            StatsEvent::OutPayload(p) => update(&mut |m| m.wire_bytes_out += p.wire_length as u64),
            StatsEvent::End { status, duration } => update(&mut |m| {
                let code = status.as_ref().err().map_or(Code::Ok, |s| s.code());
                *m.calls.entry(code as i32).or_default() += 1;
                let secs = duration.as_secs_f64();
                let bucket = BUCKETS
                    .iter()
                    .position(|b| secs <= *b)
                    .unwrap_or(BUCKETS.len());
                m.buckets[bucket] += 1;
                m.latency_sum += *duration;
            }),
            _ => {}
        }
    }
}

impl Metrics {
    /// What was counted, by (client side?, full method).
    pub fn snapshot(&self) -> BTreeMap<(bool, String), Method> {
        self.by_method
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The metrics in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE grpc_calls_total counter");
        let _ = writeln!(out, "# TYPE grpc_call_duration_seconds histogram");
        let _ = writeln!(out, "# TYPE grpc_wire_bytes_total counter");
        for ((client, method), m) in self.snapshot() {
            let side = if client { "client" } else { "server" };
            let labels = format!("side=\"{side}\",method=\"{method}\"");
            for (code, n) in &m.calls {
                let code = Code::from_i32(*code);
                let _ = writeln!(out, "grpc_calls_total{{{labels},code=\"{code:?}\"}} {n}");
            }
            let mut cumulative = 0;
            for (i, n) in m.buckets.iter().enumerate() {
                cumulative += n;
                let le = BUCKETS.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
                let _ = writeln!(
                    out,
                    "grpc_call_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "grpc_call_duration_seconds_sum{{{labels}}} {}",
                m.latency_sum.as_secs_f64()
            );
            let _ = writeln!(
                out,
                "grpc_call_duration_seconds_count{{{labels}}} {cumulative}"
            );
            let _ = writeln!(
                out,
                "grpc_wire_bytes_total{{{labels},direction=\"in\"}} {}",
                m.wire_bytes_in
            );
            let _ = writeln!(
                out,
                "grpc_wire_bytes_total{{{labels},direction=\"out\"}} {}",
                m.wire_bytes_out
            );
        }
        out
    }
}
