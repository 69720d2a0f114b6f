//! `hostile-target [--max_concurrent_streams N] [--max_recv_message_size N]
//! [--connection_timeout_ms N] [--addr HOST:PORT] [--no_trim_memory]`: the
//! server the hostile-peer tests attack, in its own process so that its memory can be
//! read from /proc without the test harness's own allocations in it. Serves
//! helloworld, routeguide and the instrumented TestService (rgrpc_tests::start) on
//! 127.0.0.1:0, prints `listening on ADDR`, and exits when its stdin closes (so it
//! never outlives the test that started it), printing `finished N dropped M` (handlers
//! that completed and handlers dropped before completing).

use rgrpc_runtime::Server;

fn flag(args: &[String], name: &str) -> Option<u64> {
    let at = args.iter().position(|a| a == name)?;
    let value = args
        .get(at + 1)
        .unwrap_or_else(|| panic!("{name} needs a value"));
    Some(
        value
            .parse()
            .unwrap_or_else(|e| panic!("{name} {value}: {e}")),
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mcs = flag(&args, "--max_concurrent_streams");
    let max_recv = flag(&args, "--max_recv_message_size");
    let connection_timeout = flag(&args, "--connection_timeout_ms");
    let no_trim = args.iter().any(|a| a == "--no_trim_memory");
    let addr = args
        .iter()
        .position(|a| a == "--addr")
        .map_or("127.0.0.1:0".to_string(), |at| args[at + 1].clone());
    let server = rgrpc_tests::start_on(&addr, move |mut s: Server| {
        if let Some(n) = mcs {
            s = s.max_concurrent_streams(n as u32);
        }
        if no_trim {
            s = s.trim_memory(false);
        }
        if let Some(ms) = connection_timeout {
            s = s.connection_timeout(std::time::Duration::from_millis(ms));
        }
        if let Some(n) = max_recv {
            s = s.max_recv_message_size(n as usize);
        }
        s
    })
    .await;
    println!("listening on {}", server.addr);

    // Exit when the test closes our stdin (or dies).
    let mut stdin = tokio::io::stdin();
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut stdin, &mut sink).await;
    // What the handlers did, for tests that count calls on both sides.
    let probe = &server.probe;
    println!(
        "finished {} dropped {}",
        probe.finished.load(std::sync::atomic::Ordering::SeqCst),
        probe.dropped.load(std::sync::atomic::Ordering::SeqCst)
    );
    drop(server);
}
