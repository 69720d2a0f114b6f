//! The floor under concurrency-1 latency: a 30-byte ping-pong over plain tokio TCP,
//! no HTTP/2, no gRPC, same runtime as both stacks' benchmarks.
//!
//! `tcp-pingpong server` prints `LISTENING stack=tcp pid=<pid> port=<port>` and echoes;
//! `tcp-pingpong client PORT [SECONDS]` prints `TCP_PINGPONG round_trips=N p50_us=..
//! p99_us=..`. Both exit on their own (the server after 300 s, the client after
//! SECONDS, at most 60).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes per message: about a 10-byte gRPC message with its frame headers.
const MESSAGE: usize = 30;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("server") => server().await,
        Some("client") => {
            let port = args.get(1).and_then(|p| p.parse::<u16>().ok());
            let secs = args.get(2).map_or(Some(3), |s| s.parse::<u64>().ok());
            match (port, secs) {
                (Some(port), Some(secs)) => client(port, Duration::from_secs(secs.min(60))).await,
                _ => usage(),
            }
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: tcp-pingpong server | client PORT [SECONDS]");
    std::process::exit(2);
}

async fn server() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!(
        "LISTENING stack=tcp pid={} port={}",
        std::process::id(),
        listener.local_addr()?.port()
    );
    let serve = async {
        loop {
            let (mut io, _) = listener.accept().await?;
            io.set_nodelay(true)?;
            tokio::spawn(async move {
                let mut buf = [0u8; MESSAGE];
                while io.read_exact(&mut buf).await.is_ok() {
                    if io.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
        }
    };
    tokio::select! {
        r = serve => r,
        () = tokio::time::sleep(Duration::from_secs(300)) => Ok(()),
    }
}

async fn client(port: u16, duration: Duration) -> std::io::Result<()> {
    let mut io = TcpStream::connect(("127.0.0.1", port)).await?;
    io.set_nodelay(true)?;
    let mut buf = [7u8; MESSAGE];
    let mut samples = Vec::new();
    let end = Instant::now() + duration;
    // Bounded in time and in count.
    while Instant::now() < end && samples.len() < 10_000_000 {
        let start = Instant::now();
        io.write_all(&buf).await?;
        io.read_exact(&mut buf).await?;
        samples.push(start.elapsed().as_micros() as u64);
    }
    if samples.is_empty() {
        println!("TCP_PINGPONG round_trips=0");
        return Ok(());
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "TCP_PINGPONG round_trips={} p50_us={} p99_us={}",
        samples.len(),
        at(0.5),
        at(0.99)
    );
    Ok(())
}
