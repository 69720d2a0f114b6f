//! `rgrpc-interop-server --port N [--use_tls=false] [--host 127.0.0.1]`: serves
//! grpc.testing.TestService in plaintext until SIGTERM or ctrl-c.

use std::process::ExitCode;

use rgrpc_interop::flags::Flags;
use rgrpc_interop::server;

const USAGE: &str = "usage: rgrpc-interop-server --port N [--use_tls=false] [--host 127.0.0.1]";

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse(
        std::env::args().skip(1),
        &[("port", ""), ("use_tls", "false"), ("host", "127.0.0.1")],
    );
    let (host, port) = match flags.and_then(|f| settings(&f)) {
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
    match server::serve(listener, stop_signal()).await {
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

fn settings(flags: &Flags) -> Result<(String, u16), String> {
    if flags.bool("use_tls")? {
        return Err("--use_tls=true is not supported (plaintext only)".to_owned());
    }
    if flags.string("port").is_empty() {
        return Err("--port is required".to_owned());
    }
    let host = flags.string("host").trim_matches(['[', ']']).to_owned();
    Ok((host, flags.parsed("port")?))
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
