//! `grpc.testing.BenchmarkService` on tonic, with the same semantics as
//! `../bench/src/server.rs`.

use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::common::{MAX_PAYLOAD, MAX_STREAM_MESSAGES, MAX_STREAM_REQUESTS, MAX_STREAM_TIME};
use crate::pb::benchmark_service_server::BenchmarkService as Api;
use crate::pb::{Payload, SimpleRequest, SimpleResponse};

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

type Responses = Pin<Box<dyn Stream<Item = Result<SimpleResponse, Status>> + Send>>;

/// `response` repeated until the client goes away, [`MAX_STREAM_MESSAGES`] or
/// [`MAX_STREAM_TIME`] (the clone is cheap: the payload is `Bytes`).
fn repeated(response: SimpleResponse) -> Responses {
    let deadline = Instant::now() + MAX_STREAM_TIME;
    Box::pin(
        tokio_stream::iter(0..MAX_STREAM_MESSAGES)
            .take_while(move |_| Instant::now() < deadline)
            .map(move |_| Ok(response.clone())),
    )
}

#[tonic::async_trait]
impl Api for BenchmarkService {
    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        if !self.handler_delay.is_zero() {
            tokio::time::sleep(self.handler_delay).await;
        }
        response_for(request.get_ref()).map(Response::new)
    }

    type StreamingCallStream = Responses;

    async fn streaming_call(
        &self,
        request: Request<Streaming<SimpleRequest>>,
    ) -> Result<Response<Responses>, Status> {
        let requests = request.into_inner();
        let out = requests
            .take(MAX_STREAM_REQUESTS as usize)
            .map(|r| r.and_then(|r| response_for(&r)));
        Ok(Response::new(Box::pin(out)))
    }

    async fn streaming_from_client(
        &self,
        request: Request<Streaming<SimpleRequest>>,
    ) -> Result<Response<SimpleResponse>, Status> {
        let mut requests = request.into_inner();
        let mut last = SimpleRequest::default();
        for _ in 0..MAX_STREAM_REQUESTS {
            match requests.message().await? {
                Some(r) => last = r,
                None => break,
            }
        }
        response_for(&last).map(Response::new)
    }

    type StreamingFromServerStream = Responses;

    async fn streaming_from_server(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<Responses>, Status> {
        Ok(Response::new(repeated(response_for(request.get_ref())?)))
    }

    type StreamingBothWaysStream = Responses;

    async fn streaming_both_ways(
        &self,
        request: Request<Streaming<SimpleRequest>>,
    ) -> Result<Response<Responses>, Status> {
        let mut requests = request.into_inner();
        let Some(first) = requests.message().await? else {
            return Ok(Response::new(Box::pin(tokio_stream::empty())));
        };
        let response = response_for(&first)?;
        // Drain what the client sends while we send; ends with the call.
        tokio::spawn(async move {
            for _ in 0..MAX_STREAM_REQUESTS {
                if !matches!(requests.message().await, Ok(Some(_))) {
                    break;
                }
            }
        });
        Ok(Response::new(repeated(response)))
    }
}
