//! `helloworld-server`: serves helloworld.Greeter on TCP (default 127.0.0.1:50051) or a
//! Unix domain socket until Ctrl-C, in plaintext or over TLS, with grpc.health.v1.Health
//! and server reflection, so `grpcurl -plaintext localhost:50051 list` works with no
//! .proto at hand.
//!
//! ```text
//! helloworld-server [--addr HOST:PORT | --addr unix:PATH]
//!                   [--tls_cert PEM --tls_key PEM [--client_ca PEM [--require_client_cert]]]
//! ```
//!
//! - `--tls_cert`, `--tls_key`: serve TLS with this certificate chain and key (PEM
//!   files); without them the server is plaintext.
//! - `--client_ca`: ask clients for a certificate signed by these roots (mTLS);
//!   clients without one are still served unless `--require_client_cert`.
//!
//! With the interop test credentials:
//!
//! ```text
//! target/debug/helloworld-server --tls_cert interop/testdata/server1.pem \
//!     --tls_key interop/testdata/server1.key
//! target/debug/helloworld-client --ca interop/testdata/ca.pem \
//!     --server_name foo.test.google.fr
//! ```

use clap::Parser;
use rgrpc_examples::{greeter::Greeter, helloworld::register_greeter_server};
use rgrpc_health::ServingStatus;
use rgrpc_runtime::{Listener, Server, ServerTlsConfig};

/// Serves helloworld.Greeter.
#[derive(Debug, Parser)]
#[command(name = "helloworld-server")]
struct Args {
    /// Where to listen: HOST:PORT, or unix:PATH for a Unix domain socket.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50051")]
    addr: String,
    /// Serve TLS with this certificate chain (PEM file).
    #[arg(long = "tls_cert", value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<String>,
    /// The private key of --tls_cert (PEM file).
    #[arg(long = "tls_key", value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<String>,
    /// Ask clients for a certificate signed by these roots (PEM file; mTLS).
    #[arg(long = "client_ca", value_name = "PEM", requires = "tls_cert")]
    client_ca: Option<String>,
    /// With --client_ca: refuse clients without a certificate.
    #[arg(long = "require_client_cert", requires = "client_ca")]
    require_client_cert: bool,
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))
}

fn tls(args: &Args) -> Result<Option<ServerTlsConfig>, Box<dyn std::error::Error>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let mut tls = ServerTlsConfig::from_pem(&read(cert)?, &read(key)?)?;
    if let Some(ca) = &args.client_ca {
        let roots = read(ca)?;
        tls = if args.require_client_cert {
            tls.client_auth_required(&roots)?
        } else {
            tls.client_auth_optional(&roots)?
        };
    }
    Ok(Some(tls))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut server = Server::new();
    let tls = tls(&args)?;
    let secure = tls.is_some();
    if let Some(tls) = tls {
        server = server.tls(tls);
    }
    register_greeter_server(&mut server, Greeter);
    // Health: "" (the whole server) is SERVING from the start, and every status turns
    // NOT_SERVING when Ctrl-C begins the graceful shutdown.
    let health = rgrpc_health::register(&mut server);
    health.set_serving_status("helloworld.Greeter", ServingStatus::Serving);
    // Reflection (v1 and v1alpha) of every registered service.
    rgrpc_reflection::register(&mut server);
    let listener = Listener::bind(&args.addr).await?;
    println!(
        "helloworld server listening on {}{}",
        listener.local_addr()?,
        if secure { " (TLS)" } else { "" }
    );
    // A Unix socket's file is removed when the server stops, but not after a crash:
    // then bind fails (address in use) until the stale file is deleted.
    server
        .serve_with_shutdown(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
