//! The `grpc.health.v1.Health` handlers over a [`HealthReporter`]'s table.

use rgrpc_runtime::{SendStream, ServerContext, Status};

use crate::pb::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse, HealthServer,
};
use crate::reporter::Watcher;
use crate::{HealthReporter, ServingStatus};

/// The most statuses `List` answers; more is RESOURCE_EXHAUSTED (health.proto:
/// "The maximum number of services to return is 100").
const MAX_LIST: usize = 100;

/// The health service; [`crate::register`] registers one. Register it by hand with
/// `rgrpc_health::pb::register_health_server` to choose its reporter.
#[derive(Clone, Debug)]
pub struct HealthService {
    reporter: HealthReporter,
}

impl HealthService {
    /// A health service answering from `reporter`'s table.
    pub fn new(reporter: HealthReporter) -> HealthService {
        HealthService { reporter }
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

impl HealthServer for HealthService {
    async fn check(
        &self,
        _ctx: &ServerContext,
        request: HealthCheckRequest,
    ) -> Result<HealthCheckResponse, Status> {
        // health-checking.md: "If the service name is not registered, the server
        // returns a NOT_FOUND GRPC status."
        match self.reporter.status(&request.service) {
            Some(status) => Ok(response(status)),
            None => Err(Status::not_found("unknown service")),
        }
    }

    async fn list(
        &self,
        _ctx: &ServerContext,
        _request: HealthListRequest,
    ) -> Result<HealthListResponse, Status> {
        let statuses = self.reporter.statuses();
        if statuses.len() > MAX_LIST {
            return Err(Status::resource_exhausted(format!(
                "{} services, more than the {MAX_LIST} List may return",
                statuses.len()
            )));
        }
        Ok(HealthListResponse {
            statuses: statuses
                .into_iter()
                .map(|(name, status)| (name, response(status)))
                .collect(),
        })
    }

    async fn watch(
        &self,
        ctx: &ServerContext,
        request: HealthCheckRequest,
        mut responses: SendStream<HealthCheckResponse>,
    ) -> Result<(), Status> {
        if request.service.len() > MAX_SERVICE_NAME {
            return Err(Status::invalid_argument(format!(
                "service name longer than {MAX_SERVICE_NAME} bytes"
            )));
        }
        let mut watcher = self.reporter.watch(&request.service);
        // The watcher keeps its own copy of the name; the request goes now.
        drop(request);
        let mut last_sent = None;
        loop {
            // health.proto: an unknown service is SERVICE_UNKNOWN "but will *not*
            // terminate the call"; a repeat of the last status is not sent again.
            let status = watcher.latest().unwrap_or(ServingStatus::ServiceUnknown);
            if last_sent != Some(status) {
                // A client that stopped reading blocks this send; the drain still
                // reaches the watcher.
                let message = response(status);
                let drained = tokio::select! {
                    sent = responses.send(&message) => sent.map(|()| false)?,
                    () = ctx.draining() => true,
                };
                if drained {
                    return last_word(&mut watcher, None, &mut responses).await;
                }
                last_sent = Some(status);
            }
            tokio::select! {
                () = watcher.changed() => {}
                () = ctx.draining() => return last_word(&mut watcher, last_sent, &mut responses).await,
            }
        }
    }
}

/// The longest service name a Watch is kept open for: a watcher holds its name for as
/// long as the stream lives, so an unbounded one would let a client pin up to a whole
/// request message (4 MiB) per stream. Real service names are well under it.
const MAX_SERVICE_NAME: usize = 1024;

/// How long the status a draining server reports (NOT_SERVING) may take to go out
/// before the watch ends without it, so a client that stopped reading cannot hold a
/// graceful stop.
const LAST_WORD_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The end of a watch when the server drains: the shutdown hook set NOT_SERVING before
/// the drain began, so this delivers it (within [`LAST_WORD_WAIT`]); then OK, so the
/// watcher does not hold the graceful stop (health.proto: on OK, the client retries).
async fn last_word(
    watcher: &mut Watcher,
    last_sent: Option<ServingStatus>,
    responses: &mut SendStream<HealthCheckResponse>,
) -> Result<(), Status> {
    let status = watcher.latest().unwrap_or(ServingStatus::ServiceUnknown);
    if last_sent != Some(status) {
        let message = response(status);
        if let Ok(sent) = tokio::time::timeout(LAST_WORD_WAIT, responses.send(&message)).await {
            sent?;
        }
    }
    Ok(())
}
