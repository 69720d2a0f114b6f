//! grpc.health.v1.Health end to end: Check, List and Watch with our generated client,
//! NOT_SERVING when graceful shutdown begins, and grpcio's own health client
//! (PyPI grpcio-health-checking, installed by tests/interop/setup.sh) against our
//! server.

use std::process::Stdio;

use rgrpc_health::ServingStatus;
use rgrpc_health::pb::{HealthCheckRequest, HealthListRequest, HealthStub};
use rgrpc_runtime::{Channel, Code};
use rgrpc_tests::{peers, start, within};
use tokio::io::{AsyncBufReadExt, BufReader};

async fn health_server() -> (rgrpc_tests::TestServer, rgrpc_health::HealthReporter) {
    let mut reporter = None;
    let server = start(|mut server| {
        reporter = Some(rgrpc_health::register(&mut server));
        server
    })
    .await;
    (server, reporter.expect("configure ran"))
}

async fn stub(target: &str) -> HealthStub {
    HealthStub::new(within(10, Channel::connect(target)).await.expect("connect"))
}

fn request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

async fn check(stub: &HealthStub, service: &str) -> Result<ServingStatus, Code> {
    within(10, stub.check(request(service)))
        .await
        .map(|r| r.into_inner().status())
        .map_err(|status| status.code())
}

#[tokio::test]
async fn check_and_list_report_what_was_set() {
    rgrpc_tests::no_leaks(async {
        let (server, reporter) = health_server().await;
        let health = stub(&server.target()).await;
        assert_eq!(check(&health, "").await, Ok(ServingStatus::Serving));
        // health-checking.md: an unregistered service is NOT_FOUND.
        assert_eq!(
            check(&health, "helloworld.Greeter").await,
            Err(Code::NotFound)
        );
        reporter.set_serving_status("helloworld.Greeter", ServingStatus::NotServing);
        assert_eq!(
            check(&health, "helloworld.Greeter").await,
            Ok(ServingStatus::NotServing)
        );
        reporter.clear_status("helloworld.Greeter");
        assert_eq!(
            check(&health, "helloworld.Greeter").await,
            Err(Code::NotFound)
        );

        reporter.set_serving_status("a.A", ServingStatus::Serving);
        let list = within(10, health.list(HealthListRequest {}))
            .await
            .expect("List")
            .into_inner();
        let mut listed: Vec<(String, ServingStatus)> = list
            .statuses
            .into_iter()
            .map(|(name, response)| (name, response.status()))
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            [
                (String::new(), ServingStatus::Serving),
                ("a.A".to_owned(), ServingStatus::Serving)
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn watch_sees_every_change_and_unknown_services() {
    rgrpc_tests::no_leaks(async {
        let (server, reporter) = health_server().await;
        let health = stub(&server.target()).await;
        let mut watch = within(10, health.watch(request("later.Service")))
            .await
            .expect("Watch");
        let mut next = async || {
            within(10, watch.message())
                .await
                .expect("Watch stream")
                .expect("a status, not the end")
                .status()
        };
        // health.proto: unknown is SERVICE_UNKNOWN, and the call stays open.
        assert_eq!(next().await, ServingStatus::ServiceUnknown);
        reporter.set_serving_status("later.Service", ServingStatus::Serving);
        assert_eq!(next().await, ServingStatus::Serving);
        reporter.set_serving_status("later.Service", ServingStatus::NotServing);
        assert_eq!(next().await, ServingStatus::NotServing);
        reporter.clear_status("later.Service");
        assert_eq!(next().await, ServingStatus::ServiceUnknown);
        reporter.set_serving_status("later.Service", ServingStatus::Serving);
        assert_eq!(next().await, ServingStatus::Serving);
    })
    .await;
}

/// A watcher holds its service name while the stream lives, so a name past 1 KiB is
/// refused rather than kept (a request may be 4 MiB).
#[tokio::test]
async fn watch_refuses_an_oversized_service_name() {
    rgrpc_tests::no_leaks(async {
        let (server, _reporter) = health_server().await;
        let health = stub(&server.target()).await;
        let long = "s".repeat(1025);
        let refused = async {
            let mut watch = health.watch(request(&long)).await?;
            watch.message().await
        };
        let err = within(10, refused).await.expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        // At the bound it is an ordinary unknown service.
        let mut watch = within(10, health.watch(request(&long[..1024])))
            .await
            .expect("Watch");
        let first = within(10, watch.message()).await.expect("Watch stream");
        assert_eq!(
            first.expect("a status").status(),
            ServingStatus::ServiceUnknown
        );
    })
    .await;
}

#[tokio::test]
async fn graceful_shutdown_reports_not_serving_and_ends_watches() {
    rgrpc_tests::no_leaks(async {
        let (mut server, reporter) = health_server().await;
        reporter.set_serving_status("helloworld.Greeter", ServingStatus::Serving);
        let health = stub(&server.target()).await;
        let mut watch = within(10, health.watch(request(""))).await.expect("Watch");
        let first = within(10, watch.message())
            .await
            .expect("Watch")
            .expect("status");
        assert_eq!(first.status(), ServingStatus::Serving);

        server.handle.graceful_stop();
        let last = within(10, watch.message())
            .await
            .expect("Watch")
            .expect("status");
        assert_eq!(last.status(), ServingStatus::NotServing);
        // Then the call ends with OK as the connection drains, so it does not hold the
        // graceful stop, which completes.
        assert!(within(10, watch.message()).await.expect("OK").is_none());
        server.served(10).await;
        assert_eq!(reporter.status(""), Some(ServingStatus::NotServing));
        assert_eq!(
            reporter.status("helloworld.Greeter"),
            Some(ServingStatus::NotServing)
        );
        reporter.set_serving_status("helloworld.Greeter", ServingStatus::Serving);
        assert_eq!(
            reporter.status("helloworld.Greeter"),
            Some(ServingStatus::NotServing),
            "updates after shutdown are ignored"
        );
    })
    .await;
}

/// grpcio's health client (`grpc_health.v1`) against our server; the script prints a
/// line per answer, and the test changes the watched status after each Watch line.
#[tokio::test]
async fn grpcio_health_client() {
    rgrpc_tests::no_leaks(async {
        let Some(python) = peers::grpcio_python() else {
            return;
        };
        let (server, reporter) = health_server().await;
        reporter.set_serving_status("helloworld.Greeter", ServingStatus::Serving);
        let mut child = tokio::process::Command::new(python)
            .arg(peers::repo_root().join("tests/interop/health_client.py"))
            .arg(server.addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning health_client.py");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut line = async || {
            tokio::time::timeout(peers::CHILD_TIMEOUT, lines.next_line())
                .await
                .expect("health_client.py answers in time")
                .expect("reading health_client.py")
                .expect("health_client.py ended early")
        };
        assert_eq!(line().await, "check '' SERVING");
        assert_eq!(line().await, "check 'helloworld.Greeter' SERVING");
        assert_eq!(line().await, "check 'nope' NOT_FOUND");
        assert_eq!(line().await, "watch 'later' SERVICE_UNKNOWN");
        reporter.set_serving_status("later", ServingStatus::NotServing);
        assert_eq!(line().await, "watch 'later' NOT_SERVING");
        reporter.set_serving_status("later", ServingStatus::Serving);
        assert_eq!(line().await, "watch 'later' SERVING");
        assert_eq!(line().await, "done");
        let status = tokio::time::timeout(peers::CHILD_TIMEOUT, child.wait())
            .await
            .expect("health_client.py exits")
            .expect("wait");
        assert!(status.success(), "health_client.py: {status}");
    })
    .await;
}
