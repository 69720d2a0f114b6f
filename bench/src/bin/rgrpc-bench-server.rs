//! `rgrpc-bench-server [--port N] [--max_concurrent_streams N] [--handler_delay_ms N]
//! [--max_seconds N] [--dispatch inline|spawn] [--observe none|interceptor|stats|both]
//! [--trim_memory on|off] [--tls_cert PEM --tls_key PEM]`: serves grpc.testing.BenchmarkService on 127.0.0.1
//! (over TLS with `--tls_cert`/`--tls_key`) and prints
//! `LISTENING stack=rgrpc pid=<pid> port=<port>`.

use std::process::ExitCode;

use rgrpc_bench::common::{ServerSettings, announce};
use rgrpc_bench::observe::{CheckMetadata, Observe};
use rgrpc_bench::pb::register_benchmark_service_server;
use rgrpc_bench::server::BenchmarkService;
use rgrpc_runtime::{Server, ServerTlsConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match ServerSettings::from_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rgrpc-bench-server: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", settings.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rgrpc-bench-server: bind: {e}");
            return ExitCode::FAILURE;
        }
    };
    let observe = match Observe::parse(&settings.observe) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rgrpc-bench-server: {e}");
            return ExitCode::from(2);
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut server = Server::new()
        .inline_dispatch(settings.inline_dispatch)
        .trim_memory(settings.trim_memory);
    if observe.interceptor() {
        server = server.interceptor(CheckMetadata);
    }
    if let Some(stats) = observe.stats() {
        server = server.stats_handler(stats);
    }
    if let Some(n) = settings.max_concurrent_streams {
        server = server.max_concurrent_streams(n);
    }
    if let Some((cert, key)) = &settings.tls {
        let read = |path: &str| std::fs::read(path).map_err(|e| format!("reading {path}: {e}"));
        let tls = read(cert).and_then(|cert| {
            let key = read(key)?;
            ServerTlsConfig::from_pem(&cert, &key).map_err(|e| e.to_string())
        });
        match tls {
            Ok(tls) => server = server.tls(tls),
            Err(e) => {
                eprintln!("rgrpc-bench-server: {e}");
                return ExitCode::from(2);
            }
        }
    }
    register_benchmark_service_server(
        &mut server,
        BenchmarkService {
            handler_delay: settings.handler_delay,
        },
    );
    announce("rgrpc", port);
    let stop = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = tokio::time::sleep(settings.max_lifetime) => {}
        }
    };
    match server.serve_with_shutdown(listener, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rgrpc-bench-server: {e}");
            ExitCode::FAILURE
        }
    }
}
