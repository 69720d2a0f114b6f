//! The `grpc.health.v1.Health` handlers over a [`HealthReporter`]'s table.

use rgrpc_runtime::{SendStream, ServerContext, Status};

use crate::pb::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse, HealthServer,
};
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
        let mut watcher = self.reporter.watch(&request.service);
        let mut last_sent = None;
        loop {
            // health.proto: an unknown service is SERVICE_UNKNOWN "but will *not*
            // terminate the call"; a repeat of the last status is not sent again.
            let status = watcher.latest().unwrap_or(ServingStatus::ServiceUnknown);
            if last_sent != Some(status) {
                responses.send(&response(status)).await?;
                last_sent = Some(status);
            }
            tokio::select! {
                () = watcher.changed() => {}
                () = ctx.draining() => {
                    // The shutdown hook set NOT_SERVING before the drain began, so
                    // this delivers it; then end with OK, so the watcher does not
                    // hold the graceful stop (health.proto: on OK, retry).
                    let status = watcher.latest().unwrap_or(ServingStatus::ServiceUnknown);
                    if last_sent != Some(status) {
                        responses.send(&response(status)).await?;
                    }
                    return Ok(());
                }
            }
        }
    }
}
