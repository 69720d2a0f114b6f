//! `rgrpc-bench-client --target 127.0.0.1:PORT --mode unary|server-stream|ping-pong
//! --connections N --concurrency M --payload BYTES --warmup S --duration S [--rate QPS]
//! [--server_pid PID] [--rss_sample_ms MS] [--label TEXT] [--write_h2load_body FILE]
//! [--observe none|interceptor|stats|both] [--tls_ca PEM [--tls_server_name NAME]]
//! [--service_config JSON]`: drives
//! a BenchmarkService (over TLS with `--tls_ca`) and prints one `RESULT key=value ...` line.

use std::process::ExitCode;

use prost::Message;
use rgrpc_bench::common::{ClientSettings, grpc_frame};
use rgrpc_bench::load;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match ClientSettings::from_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rgrpc-bench-client: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &settings.write_h2load_body {
        let body = grpc_frame(&load::request(settings.payload).encode_to_vec());
        return match std::fs::write(path, body) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rgrpc-bench-client: writing {path}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match load::run(&settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rgrpc-bench-client: {e}");
            ExitCode::FAILURE
        }
    }
}
