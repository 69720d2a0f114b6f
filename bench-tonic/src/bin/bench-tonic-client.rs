//! `bench-tonic-client`: the flags and output of `rgrpc-bench-client`, on tonic.

use std::process::ExitCode;

use bench_tonic::common::{ClientSettings, grpc_frame};
use bench_tonic::load;
use prost::Message;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match ClientSettings::from_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench-tonic-client: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &settings.write_h2load_body {
        let body = grpc_frame(&load::request(settings.payload).encode_to_vec());
        return match std::fs::write(path, body) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench-tonic-client: writing {path}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match load::run(&settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-tonic-client: {e}");
            ExitCode::FAILURE
        }
    }
}
