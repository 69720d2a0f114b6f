//! `rgrpc-interop-server --port N [--use_tls=false] [--tls_cert_file F --tls_key_file F]
//! [--host 127.0.0.1]`: serves grpc.testing.TestService until SIGTERM or ctrl-c, in
//! plaintext or, with `--use_tls=true`, over TLS with the given certificate or, without
//! cert flags, the vendored `server1` test certificate (as grpc's interop servers do).

use std::process::ExitCode;

use rgrpc_interop::flags::Flags;
use rgrpc_interop::{server, testdata};
use rgrpc_runtime::ServerTlsConfig;

const USAGE: &str = "usage: rgrpc-interop-server --port N [--use_tls=false] \
                     [--tls_cert_file PEM --tls_key_file PEM] [--host 127.0.0.1]";

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse(
        std::env::args().skip(1),
        &[
            ("port", ""),
            ("use_tls", "false"),
            ("tls_cert_file", ""),
            ("tls_key_file", ""),
            ("host", "127.0.0.1"),
        ],
    );
    let (host, port, tls) = match flags.and_then(|f| settings(&f)) {
        Ok(settings) => settings,
        Err(reason) => {
            eprintln!("rgrpc-interop-server: {reason}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind((host.as_str(), port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("rgrpc-interop-server: binding {host}:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("rgrpc-interop-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "rgrpc interop server listening on {addr} pid {}",
        std::process::id()
    );
    match server::serve_with_tls(listener, tls, stop_signal()).await {
        Ok(()) => {
            println!("rgrpc interop server stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rgrpc-interop-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn settings(flags: &Flags) -> Result<(String, u16, Option<ServerTlsConfig>), String> {
    if flags.string("port").is_empty() {
        return Err("--port is required".to_owned());
    }
    let (cert_file, key_file) = (flags.string("tls_cert_file"), flags.string("tls_key_file"));
    let tls = if flags.bool("use_tls")? {
        let (cert, key) = match (cert_file.is_empty(), key_file.is_empty()) {
            (true, true) => (
                testdata::SERVER1_PEM.to_vec(),
                testdata::SERVER1_KEY.to_vec(),
            ),
            (false, false) => (read(cert_file)?, read(key_file)?),
            _ => return Err("give both --tls_cert_file and --tls_key_file, or neither".into()),
        };
        Some(ServerTlsConfig::from_pem(&cert, &key).map_err(|e| e.to_string())?)
    } else if !cert_file.is_empty() || !key_file.is_empty() {
        return Err("--tls_cert_file and --tls_key_file need --use_tls=true".into());
    } else {
        None
    };
    let host = flags.string("host").trim_matches(['[', ']']).to_owned();
    Ok((host, flags.parsed("port")?, tls))
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))
}

/// Completes on SIGTERM (how run.py stops the server) or ctrl-c.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
