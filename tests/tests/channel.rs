//! Channels over many servers, on loopback addresses only (127.0.0.1..127.0.0.4):
//! round_robin, pick_first failover, a server that goes away and comes back,
//! fail-fast and wait-for-ready, the manual resolver, connectivity states.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rgrpc_runtime::{
    CallOptions, Channel, Code, ConnectivityState, LbPolicy, ManualResolver, Request,
};
use rgrpc_tests::grpc_testing::{SimpleRequest, TestServiceStub};
use rgrpc_tests::{TestServer, start_on, within};

fn calls(server: &TestServer) -> usize {
    server.probe.finished.load(Ordering::SeqCst)
}

async fn three_servers() -> Vec<TestServer> {
    let mut servers = Vec::new();
    for host in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        servers.push(start_on(&format!("{host}:0"), |s| s).await);
    }
    servers
}

fn ipv4_target(servers: &[TestServer]) -> String {
    let list: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    format!("ipv4:{}", list.join(","))
}

/// round_robin spreads 300 calls over three servers within +-10% each.
#[tokio::test]
async fn round_robin_spreads_calls_evenly() {
    rgrpc_tests::no_leaks(async {
        let servers = three_servers().await;
        let channel = Channel::builder(&ipv4_target(&servers))
            .lb_policy(LbPolicy::RoundRobin)
            .build()
            .unwrap();
        let client = TestServiceStub::new(channel.clone());
        // Let every subchannel connect, so the count is not skewed by the first one.
        within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap();
        // Every subchannel connects on its own; wait until all three have served.
        for _ in 0..300 {
            if servers.iter().all(|s| calls(s) > 0) {
                break;
            }
            within(10, client.unary_call(SimpleRequest::default()))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before: Vec<usize> = servers.iter().map(calls).collect();
        for _ in 0..300 {
            within(10, client.unary_call(SimpleRequest::default()))
                .await
                .unwrap();
        }
        for (server, before) in servers.iter().zip(before) {
            let got = calls(server) - before;
            assert!((90..=110).contains(&got), "a server got {got} of 300 calls");
        }
        assert_eq!(channel.state(), ConnectivityState::Ready);
    })
    .await;
}

/// A server that stops is skipped without failed calls; it rejoins once it is back.
#[tokio::test]
async fn a_stopped_server_is_skipped_and_rejoins_after_restart() {
    rgrpc_tests::no_leaks(async {
        let mut servers = three_servers().await;
        let channel = Channel::builder(&ipv4_target(&servers))
            .lb_policy(LbPolicy::RoundRobin)
            .reconnect_backoff(Duration::from_millis(100), Duration::from_millis(300))
            .build()
            .unwrap();
        let client = TestServiceStub::new(channel);
        for _ in 0..30 {
            within(10, client.unary_call(SimpleRequest::default()))
                .await
                .unwrap();
        }
        // Stop the second server (graceful: GOAWAY, then its port closes).
        let mut gone = servers.remove(1);
        let addr = gone.addr;
        gone.handle.graceful_stop();
        gone.served(10).await;
        drop(gone);
        let before: Vec<usize> = servers.iter().map(calls).collect();
        for _ in 0..60 {
            within(10, client.unary_call(SimpleRequest::default()))
                .await
                .expect("no call fails while two servers are up");
        }
        let after: usize = servers.iter().map(calls).sum();
        assert_eq!(after - before.iter().sum::<usize>(), 60);
        // Back on the same port: it gets calls again after its backoff.
        let back = start_on(&addr.to_string(), |s| s).await;
        let mut served = false;
        for _ in 0..100 {
            within(10, client.unary_call(SimpleRequest::default()))
                .await
                .unwrap();
            if calls(&back) > 0 {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(served, "the restarted server never got a call");
    })
    .await;
}

/// pick_first: the first address refuses; calls go to the next one.
#[tokio::test]
async fn pick_first_fails_over_to_the_next_address() {
    rgrpc_tests::no_leaks(async {
        // A port with nothing listening: bind, note the port, close.
        let closed = std::net::TcpListener::bind("127.0.0.2:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let server = start_on("127.0.0.3:0", |s| s).await;
        let channel = Channel::builder(&format!("ipv4:{closed},{}", server.addr))
            .build()
            .unwrap();
        let client = TestServiceStub::new(channel.clone());
        for _ in 0..5 {
            within(10, client.unary_call(SimpleRequest::default()))
                .await
                .expect("served by the second address");
        }
        assert_eq!(calls(&server), 5);
        assert_eq!(channel.state(), ConnectivityState::Ready);
    })
    .await;
}

/// Before any server listens: a fail-fast call fails UNAVAILABLE; a wait-for-ready
/// call completes once a server starts.
#[tokio::test]
async fn wait_for_ready_waits_and_fail_fast_fails() {
    rgrpc_tests::no_leaks(async {
        let addr = std::net::TcpListener::bind("127.0.0.4:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let channel = Channel::builder(&addr.to_string())
            .reconnect_backoff(Duration::from_millis(100), Duration::from_millis(200))
            .build()
            .unwrap();
        let client = TestServiceStub::new(channel.clone());
        let err = within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert_eq!(channel.state(), ConnectivityState::TransientFailure);
        let waiting = tokio::spawn({
            let client = client.clone();
            async move {
                let options = CallOptions::new()
                    .with_wait_for_ready(true)
                    .with_timeout(Duration::from_secs(10));
                client
                    .unary_call(Request::with_options(SimpleRequest::default(), options))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "a wait-for-ready call waits");
        let server = start_on(&addr.to_string(), |s| s).await;
        within(10, waiting)
            .await
            .unwrap()
            .expect("completed once the server started");
        assert_eq!(calls(&server), 1);
        // And a wait-for-ready call still honours its deadline.
        drop(server);
    })
    .await;
}

#[tokio::test]
async fn a_wait_for_ready_call_ends_at_its_deadline() {
    rgrpc_tests::no_leaks(async {
        let addr = std::net::TcpListener::bind("127.0.0.4:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = TestServiceStub::new(Channel::lazy(&addr.to_string()).unwrap());
        let options = CallOptions::new()
            .with_wait_for_ready(true)
            .with_timeout(Duration::from_millis(300));
        let err = within(
            10,
            client.unary_call(Request::with_options(SimpleRequest::default(), options)),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    })
    .await;
}

/// A manual resolver's update moves traffic to the new address.
#[tokio::test]
async fn a_manual_resolver_update_moves_traffic() {
    rgrpc_tests::no_leaks(async {
        let a = start_on("127.0.0.2:0", |s| s).await;
        let b = start_on("127.0.0.3:0", |s| s).await;
        let resolver = ManualResolver::new("test");
        resolver.update(&[a.addr.to_string()]);
        let channel = Channel::builder("test:anything")
            .resolver(resolver.clone())
            .build()
            .unwrap();
        let client = TestServiceStub::new(channel);
        for _ in 0..3 {
            within(10, client.unary_call(SimpleRequest::default()))
                .await
                .unwrap();
        }
        assert_eq!((calls(&a), calls(&b)), (3, 0));
        resolver.update(&[b.addr.to_string()]);
        for _ in 0..3 {
            within(10, client.unary_call(SimpleRequest::default()))
                .await
                .unwrap();
        }
        assert_eq!((calls(&a), calls(&b)), (3, 3));
    })
    .await;
}

/// `localhost` resolves through the DNS resolver; states go Idle -> Connecting ->
/// Ready and can be waited on.
#[tokio::test]
async fn localhost_through_dns_and_the_states_on_the_way() {
    rgrpc_tests::no_leaks(async {
        let server = start_on("127.0.0.1:0", |s| s).await;
        let channel = Channel::lazy(&format!("dns:localhost:{}", server.addr.port())).unwrap();
        assert_eq!(channel.state(), ConnectivityState::Idle);
        channel.connect_now();
        let mut state = channel.state();
        while state != ConnectivityState::Ready {
            assert_ne!(state, ConnectivityState::Shutdown);
            state = within(10, channel.wait_for_state_change(state)).await;
            if state == ConnectivityState::TransientFailure || state == ConnectivityState::Idle {
                // ::1 may refuse before 127.0.0.1 answers; a call moves pick_first on.
                channel.connect_now();
            }
        }
        let client = TestServiceStub::new(channel);
        within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap();
    })
    .await;
}

/// N connections to one address: the pool opens them all and spreads calls.
#[tokio::test]
async fn a_pool_of_connections_to_one_address() {
    rgrpc_tests::no_leaks(async {
        let server = start_on("127.0.0.1:0", |s| s).await;
        let proxy = rgrpc_tests::proxy::Proxy::start(server.addr).await;
        for policy in [LbPolicy::PickFirst, LbPolicy::RoundRobin] {
            let before = proxy.connections();
            let channel = Channel::builder(&proxy.addr().to_string())
                .lb_policy(policy)
                .connections_per_address(4)
                .build()
                .unwrap();
            let client = TestServiceStub::new(channel);
            for _ in 0..40 {
                within(10, client.unary_call(SimpleRequest::default()))
                    .await
                    .unwrap();
                if proxy.connections() - before == 4 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(proxy.connections() - before, 4, "{policy:?}");
        }
    })
    .await;
}

/// A user's own policy chooses among the Ready connections.
#[tokio::test]
async fn a_custom_load_balancer_decides_where_calls_go() {
    rgrpc_tests::no_leaks(async {
        struct Prefer(&'static str);
        impl rgrpc_runtime::LoadBalancer for Prefer {
            fn pick(&self, full_method: &str, ready: &[rgrpc_runtime::Endpoint<'_>]) -> usize {
                assert_eq!(full_method, "/grpc.testing.TestService/UnaryCall");
                ready
                    .iter()
                    .position(|e| e.address().starts_with(self.0))
                    .unwrap_or(0)
            }
        }
        let servers = three_servers().await;
        let channel = Channel::builder(&ipv4_target(&servers))
            .load_balancer(Prefer("127.0.0.3"))
            .build()
            .unwrap();
        let client = TestServiceStub::new(channel);
        // Every address is kept connected; once 127.0.0.3 is Ready it takes every call.
        for _ in 0..200 {
            within(10, client.unary_call(SimpleRequest::default()))
                .await
                .unwrap();
            if calls(&servers[1]) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before: Vec<usize> = servers.iter().map(calls).collect();
        for _ in 0..20 {
            within(10, client.unary_call(SimpleRequest::default()))
                .await
                .unwrap();
        }
        assert_eq!(calls(&servers[1]) - before[1], 20);
        assert_eq!(
            calls(&servers[0]) - before[0] + calls(&servers[2]) - before[2],
            0
        );
    })
    .await;
}

/// An unused channel lets its connection go after the idle timeout and goes Idle;
/// the next call connects again.
#[tokio::test]
async fn an_idle_channel_lets_its_connections_go() {
    rgrpc_tests::no_leaks(async {
        let server = start_on("127.0.0.1:0", |s| s).await;
        let proxy = rgrpc_tests::proxy::Proxy::start(server.addr).await;
        let channel = Channel::builder(&proxy.addr().to_string())
            .idle_timeout(Some(Duration::from_millis(300)))
            .build()
            .unwrap();
        let client = TestServiceStub::new(channel.clone());
        within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap();
        assert_eq!(channel.state(), ConnectivityState::Ready);
        let state = within(10, channel.wait_for_state_change(ConnectivityState::Ready)).await;
        assert_eq!(state, ConnectivityState::Idle);
        within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap();
        assert_eq!(proxy.connections(), 2, "reconnected after going idle");
    })
    .await;
}

/// Calls waiting for a stream (here behind MAX_CONCURRENT_STREAMS=1 and a sleeping
/// call) are bounded by the channel's waiting budget: past it a new call fails
/// RESOURCE_EXHAUSTED at once instead of queueing.
#[tokio::test]
async fn waiting_calls_are_bounded_by_the_channel_budget() {
    rgrpc_tests::no_leaks(async {
        let server = start_on("127.0.0.1:0", |s| s.max_concurrent_streams(1)).await;
        // About three waiting calls of ~1 KiB each.
        let channel = Channel::builder(&server.addr.to_string())
            .max_waiting_bytes(3 * 1024 + 512)
            .connect()
            .await
            .unwrap();
        let client = TestServiceStub::new(channel);
        let sleeping = rgrpc_tests::sleeping_request();
        let mut calls = Vec::new();
        for _ in 0..4 {
            let client = client.clone();
            let request = sleeping.clone();
            calls.push(tokio::spawn(
                async move { client.unary_call(request).await },
            ));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // One call holds the stream, three wait: the budget is spent.
        let started = std::time::Instant::now();
        let err = within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(1), "failed at once");
        for call in calls {
            call.abort();
        }
    })
    .await;
}

/// The builder's user agent and default compression reach the server.
#[tokio::test]
async fn user_agent_and_default_compression_from_the_builder() {
    rgrpc_tests::no_leaks(async {
        use rgrpc_runtime::{Encoding, Server, ServerContext, Status};
        use rgrpc_tests::grpc_testing::{
            SimpleResponse, TestServiceServer, register_test_service_server,
        };
        struct Echo;
        impl TestServiceServer for Echo {
            async fn unary_call(
                &self,
                ctx: &ServerContext,
                _request: SimpleRequest,
            ) -> Result<SimpleResponse, Status> {
                let agent = ctx.metadata().get("user-agent").unwrap_or_default();
                ctx.set_header_value("x-agent", agent)?;
                let compressed = if ctx.request_compressed() {
                    "yes"
                } else {
                    "no"
                };
                ctx.set_header_value("x-compressed", compressed)?;
                Ok(SimpleResponse::default())
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut server = Server::new();
        register_test_service_server(&mut server, Echo);
        let serving = tokio::spawn(server.serve_with_incoming(listener));
        let channel = Channel::builder(&addr.to_string())
            .user_agent("kv-client/2.1")
            .unwrap()
            .default_compression(Encoding::Gzip)
            .build()
            .unwrap();
        let client = TestServiceStub::new(channel);
        let reply = within(10, client.unary_call(SimpleRequest::default()))
            .await
            .unwrap();
        let agent = reply.headers().get("x-agent").unwrap();
        assert!(
            agent.starts_with("kv-client/2.1 grpc-rust-rgrpc/"),
            "{agent}"
        );
        assert_eq!(reply.headers().get("x-compressed"), Some("yes"));
        // Stopped with its connections (the leak check counts them).
        serving.abort();
    })
    .await;
}

/// `connect_now` outside a runtime is a no-op, not a panic.
#[test]
fn connect_now_outside_a_runtime_does_nothing() {
    let channel = Channel::lazy("127.0.0.1:1").unwrap();
    channel.connect_now();
    assert_eq!(channel.state(), ConnectivityState::Idle);
}

/// A call keeps its connection after the caller drops the channel: the connection
/// closes only once no call is left (and then at most `CLOSE_LINGER` later), so a
/// response stream read after the drop still arrives whole.
#[tokio::test]
async fn a_call_outlives_the_channel_it_was_made_on() {
    rgrpc_tests::no_leaks(async {
        let server = rgrpc_tests::start(|s| s).await;
        let client = TestServiceStub::new(Channel::connect(&server.target()).await.unwrap());
        // Five messages 400 ms apart: the stream lasts longer than the linger.
        let request = rgrpc_tests::spaced_stream(5, 8, Duration::from_millis(400));
        let mut stream = within(10, client.streaming_output_call(request))
            .await
            .unwrap();
        drop(client);
        let mut got = 0;
        while within(10, stream.message()).await.unwrap().is_some() {
            got += 1;
        }
        assert_eq!(got, 5);
    })
    .await;
}
