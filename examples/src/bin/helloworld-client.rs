//! `helloworld-client`: calls helloworld.Greeter/SayHello on any gRPC server, `--count`
//! times one after another, and prints each reply.
//!
//! ```text
//! helloworld-client [--target T] [--lb pick_first|round_robin] [--count N]
//!                   [--wait_for_ready] [--service_config JSON] [--name NAME]
//!                   [--tls] [--ca PEM] [--cert PEM --key PEM] [--server_name NAME]
//! ```
//!
//! - `--target` (alias `--addr`, default `127.0.0.1:50051`): any form of grpc's
//!   `doc/naming.md`: `host:port`, `dns:[//authority/]host[:port]`,
//!   `ipv4:a:p,b:p`, `ipv6:[a]:p,[b]:p`, `unix:/abs/path` or `unix:rel/path`.
//! - `--lb`: the load-balancing policy (default pick_first); a service config's
//!   `loadBalancingConfig` wins over it.
//! - `--wait_for_ready`: calls wait for a Ready connection instead of failing
//!   UNAVAILABLE at once while no server is reachable (without a timeout they wait
//!   until one is: give one in the service config).
//! - `--service_config`: gRFC A2 JSON, e.g.
//!   `{"methodConfig": [{"name": [{"service": "helloworld.Greeter"}], "timeout": "1s"}]}`.
//! - TLS: `--tls` (or an `https://` target) dials TLS trusting the platform's roots;
//!   `--ca PEM` trusts only these roots; `--cert PEM --key PEM` presents a client
//!   certificate (mTLS); `--server_name NAME` is the name the server's certificate
//!   must match (and the `:authority`) instead of the target's host. Each of these
//!   implies `--tls`.
//!
//! It exits 0 when every call succeeded. At the first failed call it stops, prints the
//! status on stderr with its code by name (`UNAVAILABLE: ...`) and exits 1; a bad flag
//! exits 2.
//!
//! Round robin over three local servers (Linux routes all of 127.0.0.0/8 to loopback;
//! elsewhere add the addresses to lo0 first):
//!
//! ```text
//! cargo build -p rgrpc-examples
//! for ip in 127.0.0.2 127.0.0.3 127.0.0.4; do target/debug/helloworld-server --addr $ip:50051 & done
//! target/debug/helloworld-client --target ipv4:127.0.0.2:50051,127.0.0.3:50051,127.0.0.4:50051 \
//!     --lb round_robin --count 9
//! kill %1 %2 %3
//! ```

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use rgrpc_examples::helloworld::{GreeterStub, HelloRequest};
use rgrpc_runtime::{CallOptions, Channel, ClientTlsConfig, LbPolicy, Request, Status};

/// Calls helloworld.Greeter/SayHello and prints each reply.
#[derive(Debug, Parser)]
#[command(name = "helloworld-client")]
struct Args {
    /// The server: host:port, dns:[//authority/]host[:port], ipv4:ADDR:PORT[,...],
    /// ipv6:[ADDR]:PORT[,...] or unix:PATH.
    #[arg(
        long,
        visible_alias = "addr",
        value_name = "TARGET",
        default_value = "127.0.0.1:50051"
    )]
    target: String,
    /// The load-balancing policy (default pick_first).
    #[arg(long, value_enum, value_name = "POLICY")]
    lb: Option<Lb>,
    /// How many calls to make, one after another.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Wait for a Ready connection instead of failing fast.
    #[arg(long = "wait_for_ready", alias = "wait-for-ready")]
    wait_for_ready: bool,
    /// A service config (gRFC A2) as JSON.
    #[arg(long = "service_config", alias = "service-config", value_name = "JSON")]
    service_config: Option<String>,
    /// The name to greet.
    #[arg(long, value_name = "NAME", default_value = "world")]
    name: String,
    /// Dial TLS, trusting the platform's roots.
    #[arg(long)]
    tls: bool,
    /// Trust only these roots (PEM file); implies --tls.
    #[arg(long, value_name = "PEM")]
    ca: Option<String>,
    /// Present this client certificate chain (PEM file; mTLS); implies --tls.
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<String>,
    /// The private key of --cert (PEM file).
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<String>,
    /// The name the server's certificate must match; implies --tls.
    #[arg(long = "server_name", value_name = "NAME")]
    server_name: Option<String>,
}

impl Args {
    /// The TLS config the flags ask for, if any.
    fn tls(&self) -> Result<Option<ClientTlsConfig>, Status> {
        if !self.tls && self.ca.is_none() && self.cert.is_none() && self.server_name.is_none() {
            return Ok(None);
        }
        let bad = |e: String| Status::invalid_argument(e);
        let read = |path: &str| std::fs::read(path).map_err(|e| bad(format!("{path}: {e}")));
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &self.ca {
            tls = tls.ca_pem(&read(ca)?).map_err(|e| bad(e.to_string()))?;
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            tls = tls
                .identity_pem(&read(cert)?, &read(key)?)
                .map_err(|e| bad(e.to_string()))?;
        }
        if let Some(name) = &self.server_name {
            tls = tls.server_name(name).map_err(|e| bad(e.to_string()))?;
        }
        Ok(Some(tls))
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Lb {
    #[value(name = "pick_first")]
    PickFirst,
    #[value(name = "round_robin")]
    RoundRobin,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(status) => {
            eprintln!("{}: {}", status.code().as_str(), status.message());
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), Status> {
    let mut builder = Channel::builder(&args.target);
    if let Some(lb) = args.lb {
        builder = builder.lb_policy(match lb {
            Lb::PickFirst => LbPolicy::PickFirst,
            Lb::RoundRobin => LbPolicy::RoundRobin,
        });
    }
    if let Some(json) = &args.service_config {
        builder = builder.service_config(json)?;
    }
    if let Some(tls) = args.tls()? {
        builder = builder.tls(tls);
    }
    let client = GreeterStub::new(builder.build()?);
    let mut options = CallOptions::new();
    if args.wait_for_ready {
        // Unset otherwise, so that the service config's waitForReady applies.
        options = options.with_wait_for_ready(true);
    }
    for _ in 0..args.count {
        let request = HelloRequest {
            name: args.name.clone(),
        };
        let reply = client
            .say_hello(Request::with_options(request, options.clone()))
            .await?;
        println!("{}", reply.into_inner().message);
    }
    Ok(())
}
