//! The load generator's workers over tonic: one [`Step`] per call kind, as in
//! `../bench/src/load.rs`.

use tonic::Streaming;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::common::{ClientSettings, Mode, Step};
use crate::pb::benchmark_service_client::BenchmarkServiceClient;
use crate::pb::{Payload, SimpleRequest, SimpleResponse};

/// Requests queued per ping-pong call before the sender waits: one is in flight at a
/// time, so 1 is enough.
const PING_PONG_QUEUE: usize = 1;

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
    client: BenchmarkServiceClient<Channel>,
    request: SimpleRequest,
}

impl Step for Unary {
    async fn step(&mut self) -> Result<usize, String> {
        let response = self
            .client
            .unary_call(self.request.clone())
            .await
            .map_err(|e| e.to_string())?;
        Ok(payload_len(response.get_ref()))
    }
}

/// Server streaming: one StreamingFromServer call; each step receives one message.
pub struct ServerStream {
    stream: Streaming<SimpleResponse>,
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
    tx: tokio::sync::mpsc::Sender<SimpleRequest>,
    responses: Streaming<SimpleResponse>,
    request: SimpleRequest,
}

impl Step for PingPong {
    async fn step(&mut self) -> Result<usize, String> {
        self.tx
            .send(self.request.clone())
            .await
            .map_err(|_| "request stream closed".to_owned())?;
        match self.responses.message().await {
            Ok(Some(m)) => Ok(payload_len(&m)),
            Ok(None) => Err("server ended the stream".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The endpoint for `s`'s target: `http://`, or `https://` with the roots of
/// `--tls_ca` and the name of `--tls_server_name`.
fn endpoint(s: &ClientSettings) -> Result<Endpoint, String> {
    let Some(ca) = &s.tls_ca else {
        return Endpoint::from_shared(format!("http://{}", s.target)).map_err(|e| e.to_string());
    };
    let pem = std::fs::read(ca).map_err(|e| format!("reading {ca}: {e}"))?;
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
    if let Some(name) = &s.tls_server_name {
        tls = tls.domain_name(name.clone());
    }
    Endpoint::from_shared(format!("https://{}", s.target))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())
}

/// Opens the connections of `s` and runs its load, printing the `RESULT` line.
pub async fn run(s: &ClientSettings) -> Result<(), String> {
    let mut clients = Vec::with_capacity(s.connections);
    for _ in 0..s.connections {
        // One Channel from `connect` is one HTTP/2 connection.
        let channel = endpoint(s)?
            .connect()
            .await
            .map_err(|e| format!("connecting to {}: {e}", s.target))?;
        clients.push(BenchmarkServiceClient::new(channel));
    }
    let req = request(s.payload);
    let per_conn = if s.rate > 0 { 1 } else { s.concurrency };
    let clients = clients
        .iter()
        .flat_map(|c| std::iter::repeat_n(c.clone(), per_conn));
    match s.mode {
        Mode::Unary => {
            let workers: Vec<Unary> = clients
                .map(|client| Unary {
                    client,
                    request: req.clone(),
                })
                .collect();
            if s.rate > 0 {
                crate::common::run_open(s, "tonic", workers).await;
            } else {
                crate::common::run_closed(s, "tonic", workers).await;
            }
        }
        Mode::ServerStream => {
            let mut workers = Vec::new();
            for mut client in clients {
                let stream = client
                    .streaming_from_server(req.clone())
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                workers.push(ServerStream { stream });
            }
            crate::common::run_closed(s, "tonic", workers).await;
        }
        Mode::PingPong => {
            let mut workers = Vec::new();
            for mut client in clients {
                let (tx, rx) = tokio::sync::mpsc::channel(PING_PONG_QUEUE);
                let outbound = tokio_stream::wrappers::ReceiverStream::new(rx);
                // tonic's `streaming_call` returns only once the response headers have
                // arrived, and servers that send them with the first reply (grpc-go,
                // rgrpc) reply only to a request: queue one ping first and take its pong
                // here, or the call never starts (tonic issue 515, hyper issue 3737).
                tx.send(req.clone())
                    .await
                    .map_err(|_| "request stream closed".to_owned())?;
                let mut responses = client
                    .streaming_call(outbound)
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                responses
                    .message()
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("server ended the stream")?;
                workers.push(PingPong {
                    tx,
                    responses,
                    request: req.clone(),
                });
            }
            crate::common::run_closed(s, "tonic", workers).await;
        }
    }
    Ok(())
}
