//! The load generator's workers over rgrpc: one [`Step`] per call kind.

use rgrpc_runtime::{
    BidiStreamingCall, CallOptions, Channel, ChannelBuilder, ClientTlsConfig, LbPolicy,
    ResponseStream,
};

use crate::common::{ClientSettings, Mode, Step};
use crate::observe::{CheckMetadata, Observe};
use crate::pb::{BenchmarkServiceStub, Payload, SimpleRequest, SimpleResponse};

/// The request every step sends: `payload` bytes, asking for as many back.
pub fn request(payload: usize) -> SimpleRequest {
    SimpleRequest {
        response_size: payload as i32,
        payload: Some(Payload {
            r#type: 0,
            body: vec![0; payload].into(),
        }),
        ..Default::default()
    }
}

fn payload_len(response: &SimpleResponse) -> usize {
    response.payload.as_ref().map_or(0, |p| p.body.len())
}

/// Unary: one UnaryCall per step. Cheap to clone (open loop clones it per call).
#[derive(Clone, Debug)]
pub struct Unary {
    stub: BenchmarkServiceStub,
    request: SimpleRequest,
}

impl Step for Unary {
    async fn step(&mut self) -> Result<usize, String> {
        let response = self
            .stub
            .unary_call(self.request.clone())
            .await
            .map_err(|e| e.to_string())?;
        Ok(payload_len(response.get_ref()))
    }
}

/// Server streaming: one StreamingFromServer call; each step receives one message.
pub struct ServerStream {
    stream: ResponseStream<SimpleResponse>,
}

impl Step for ServerStream {
    async fn step(&mut self) -> Result<usize, String> {
        match self.stream.message().await {
            Ok(Some(m)) => Ok(payload_len(&m)),
            Ok(None) => Err("server ended the stream".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Ping-pong: one StreamingCall; each step sends a request and waits for its reply.
pub struct PingPong {
    call: BidiStreamingCall<SimpleRequest, SimpleResponse>,
    request: SimpleRequest,
}

impl Step for PingPong {
    async fn step(&mut self) -> Result<usize, String> {
        self.call
            .send(&self.request)
            .await
            .map_err(|e| e.to_string())?;
        match self.call.message().await {
            Ok(Some(m)) => Ok(payload_len(&m)),
            Ok(None) => Err("server ended the stream".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The channel with what `--observe` asks for.
fn observed(mut builder: ChannelBuilder, observe: Observe) -> ChannelBuilder {
    if observe.interceptor() {
        builder = builder.interceptor(CheckMetadata);
    }
    if let Some(stats) = observe.stats() {
        builder = builder.stats_handler(stats);
    }
    builder
}

/// A channel builder for `s`'s target, with its service config (`--service_config`)
/// and TLS settings (`--tls_ca`, `--tls_server_name`).
fn builder(s: &ClientSettings) -> Result<ChannelBuilder, String> {
    let mut builder = Channel::builder(&s.target);
    if let Some(json) = &s.service_config {
        builder = builder
            .service_config(json)
            .map_err(|e| format!("--service_config: {}", e.message()))?;
    }
    let Some(ca) = &s.tls_ca else {
        return Ok(builder);
    };
    let pem = std::fs::read(ca).map_err(|e| format!("reading {ca}: {e}"))?;
    let mut tls = ClientTlsConfig::new()
        .ca_pem(&pem)
        .map_err(|e| e.to_string())?;
    if let Some(name) = &s.tls_server_name {
        tls = tls.server_name(name).map_err(|e| e.to_string())?;
    }
    Ok(builder.tls(tls))
}

/// Opens the connections of `s` and runs its load, printing the `RESULT` line.
pub async fn run(s: &ClientSettings) -> Result<(), String> {
    let observe = Observe::parse(&s.observe)?;
    let mut stubs = Vec::with_capacity(s.connections.max(s.pool));
    if s.pool > 0 {
        // One channel, `pool` connections, round robin over them.
        let channel = observed(builder(s)?, observe)
            .connections_per_address(s.pool)
            .lb_policy(LbPolicy::RoundRobin)
            .connect()
            .await
            .map_err(|e| format!("connecting to {}: {e}", s.target))?;
        // Let every connection of the pool come up before the measurement.
        let stub = BenchmarkServiceStub::new(channel);
        for _ in 0..s.pool * 4 {
            let _ = stub.unary_call(request(0)).await;
        }
        stubs.extend(std::iter::repeat_n(stub, s.pool));
    } else {
        for _ in 0..s.connections {
            // One Channel is one HTTP/2 connection.
            let channel = observed(builder(s)?, observe)
                .connect()
                .await
                .map_err(|e| format!("connecting to {}: {e}", s.target))?;
            stubs.push(BenchmarkServiceStub::new(channel));
        }
    }
    let req = request(s.payload);
    let per_conn = if s.rate > 0 { 1 } else { s.concurrency };
    let stubs = stubs
        .iter()
        .flat_map(|stub| std::iter::repeat_n(stub.clone(), per_conn));
    match s.mode {
        Mode::Unary => {
            let workers: Vec<Unary> = stubs
                .map(|stub| Unary {
                    stub,
                    request: req.clone(),
                })
                .collect();
            if s.rate > 0 {
                crate::common::run_open(s, "rgrpc", workers).await;
            } else {
                crate::common::run_closed(s, "rgrpc", workers).await;
            }
        }
        Mode::ServerStream => {
            let mut workers = Vec::new();
            for stub in stubs {
                let stream = stub
                    .streaming_from_server(req.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                workers.push(ServerStream { stream });
            }
            crate::common::run_closed(s, "rgrpc", workers).await;
        }
        Mode::PingPong => {
            let mut workers = Vec::new();
            for stub in stubs {
                let call = stub
                    .streaming_call(CallOptions::new())
                    .await
                    .map_err(|e| e.to_string())?;
                workers.push(PingPong {
                    call,
                    request: req.clone(),
                });
            }
            crate::common::run_closed(s, "rgrpc", workers).await;
        }
    }
    Ok(())
}
