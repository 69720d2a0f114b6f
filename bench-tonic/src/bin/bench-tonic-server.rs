//! `bench-tonic-server`: the flags and output of `rgrpc-bench-server` (TLS with
//! `--tls_cert`/`--tls_key`, tonic's `tls-ring` feature), on tonic.

use std::process::ExitCode;

use bench_tonic::common::{ServerSettings, announce};
use bench_tonic::pb::benchmark_service_server::BenchmarkServiceServer;
use bench_tonic::server::BenchmarkService;
use tonic::transport::{Identity, Server, ServerTlsConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match ServerSettings::from_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench-tonic-server: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", settings.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bench-tonic-server: bind: {e}");
            return ExitCode::FAILURE;
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    // TCP_NODELAY as rgrpc sets it (tonic applies its builder flag only in `serve(addr)`).
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let service = BenchmarkServiceServer::new(BenchmarkService {
        handler_delay: settings.handler_delay,
    });
    let mut builder = Server::builder();
    if let Some((cert, key)) = &settings.tls {
        let read = |path: &str| std::fs::read(path).map_err(|e| format!("reading {path}: {e}"));
        let tls = read(cert).and_then(|cert| {
            let key = read(key)?;
            Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
        });
        builder = match tls.and_then(|tls| builder.tls_config(tls).map_err(|e| e.to_string())) {
            Ok(builder) => builder,
            Err(e) => {
                eprintln!("bench-tonic-server: {e}");
                return ExitCode::from(2);
            }
        };
    }
    if let Some(n) = settings.max_concurrent_streams {
        builder = builder.max_concurrent_streams(Some(n));
    }
    announce("tonic", port);
    let stop = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = tokio::time::sleep(settings.max_lifetime) => {}
        }
    };
    match builder
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, stop)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-tonic-server: {e}");
            ExitCode::FAILURE
        }
    }
}
