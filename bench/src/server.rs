//! `grpc.testing.BenchmarkService` on rgrpc, with the semantics of grpc's benchmark
//! servers: every response carries a payload of the request's `response_size` bytes.

use std::time::{Duration, Instant};

use rgrpc_runtime::{RecvStream, SendStream, ServerContext, Status};

use crate::common::{MAX_PAYLOAD, MAX_STREAM_MESSAGES, MAX_STREAM_REQUESTS, MAX_STREAM_TIME};
use crate::pb::{BenchmarkServiceServer, Payload, SimpleRequest, SimpleResponse};

/// The benchmark service.
#[derive(Clone, Debug, Default)]
pub struct BenchmarkService {
    /// Extra time each UnaryCall sleeps before answering (the overload scenario).
    pub handler_delay: Duration,
}

/// The response to `request`: a zero payload of `response_size` bytes.
pub fn response_for(request: &SimpleRequest) -> Result<SimpleResponse, Status> {
    let size = usize::try_from(request.response_size)
        .map_err(|_| Status::invalid_argument("negative response_size"))?;
    if size > MAX_PAYLOAD {
        return Err(Status::invalid_argument("response_size too large"));
    }
    Ok(SimpleResponse {
        payload: Some(Payload {
            r#type: 0,
            body: vec![0; size].into(),
        }),
        ..Default::default()
    })
}

impl BenchmarkServiceServer for BenchmarkService {
    async fn unary_call(
        &self,
        _ctx: &ServerContext,
        request: SimpleRequest,
    ) -> Result<SimpleResponse, Status> {
        if !self.handler_delay.is_zero() {
            tokio::time::sleep(self.handler_delay).await;
        }
        response_for(&request)
    }

    async fn streaming_call(
        &self,
        _ctx: &ServerContext,
        mut requests: RecvStream<SimpleRequest>,
        mut responses: SendStream<SimpleResponse>,
    ) -> Result<(), Status> {
        for _ in 0..MAX_STREAM_REQUESTS {
            let Some(request) = requests.message().await? else {
                return Ok(());
            };
            responses.send(&response_for(&request)?).await?;
        }
        Ok(())
    }

    async fn streaming_from_client(
        &self,
        _ctx: &ServerContext,
        mut requests: RecvStream<SimpleRequest>,
    ) -> Result<SimpleResponse, Status> {
        let mut last = SimpleRequest::default();
        for _ in 0..MAX_STREAM_REQUESTS {
            match requests.message().await? {
                Some(request) => last = request,
                None => break,
            }
        }
        response_for(&last)
    }

    async fn streaming_from_server(
        &self,
        _ctx: &ServerContext,
        request: SimpleRequest,
        mut responses: SendStream<SimpleResponse>,
    ) -> Result<(), Status> {
        send_repeatedly(&response_for(&request)?, &mut responses).await
    }

    async fn streaming_both_ways(
        &self,
        _ctx: &ServerContext,
        mut requests: RecvStream<SimpleRequest>,
        mut responses: SendStream<SimpleResponse>,
    ) -> Result<(), Status> {
        let Some(first) = requests.message().await? else {
            return Ok(());
        };
        let response = response_for(&first)?;
        // Drain what the client sends while we send; bounded like the other loops.
        let drain = tokio::spawn(async move {
            for _ in 0..MAX_STREAM_REQUESTS {
                if !matches!(requests.message().await, Ok(Some(_))) {
                    break;
                }
            }
        });
        let sent = send_repeatedly(&response, &mut responses).await;
        drain.abort();
        sent
    }
}

/// Sends `response` until the client goes away, [`MAX_STREAM_MESSAGES`] or
/// [`MAX_STREAM_TIME`].
async fn send_repeatedly(
    response: &SimpleResponse,
    responses: &mut SendStream<SimpleResponse>,
) -> Result<(), Status> {
    let deadline = Instant::now() + MAX_STREAM_TIME;
    for _ in 0..MAX_STREAM_MESSAGES {
        if Instant::now() >= deadline {
            break;
        }
        responses.send(response).await?;
    }
    Ok(())
}
