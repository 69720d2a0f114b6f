//! The interop client: which cases exist, how each is run (a channel of its own, a
//! bound on its time) and how results are printed. The cases themselves are in
//! `cases.rs`.

use std::time::Duration;

use rgrpc_runtime::{CallOptions, Channel, ClientTlsConfig, Request};

use crate::cases;
use crate::pb::TestServiceStub;

/// Where to connect and how long to wait.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `host:port` of the server (IPv6 hosts in brackets).
    pub target: String,
    /// The deadline of each RPC.
    pub rpc_timeout: Duration,
    /// How long a case waits for its connection.
    pub connect_timeout: Duration,
    /// rpc_soak / channel_soak: how many calls.
    pub soak_iterations: u32,
    /// rpc_soak / channel_soak: how many of them may fail.
    pub soak_max_failures: u32,
    /// rpc_soak / channel_soak: a slower call counts as failed.
    pub soak_max_latency: Duration,
    /// rpc_soak / channel_soak: the whole case's bound.
    pub soak_overall_timeout: Duration,
    /// TLS settings (`--use_tls=true`); `None`: plaintext.
    pub tls: Option<ClientTlsConfig>,
}

impl Settings {
    /// Defaults of the grpcio peer (`tests/interop/client.py`) for `target`.
    pub fn new(target: impl Into<String>) -> Settings {
        Settings {
            target: target.into(),
            rpc_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            soak_iterations: 10,
            soak_max_failures: 0,
            soak_max_latency: Duration::from_millis(1000),
            soak_overall_timeout: Duration::from_secs(100),
            tls: None,
        }
    }

    /// TLS as grpc's interop flags ask for it: the test CA (`use_test_ca`) or the
    /// platform's roots, and `server_host_override` (empty: none) as the name
    /// the server's certificate must match and the `:authority`.
    pub fn tls_of(
        use_test_ca: bool,
        server_host_override: &str,
    ) -> Result<ClientTlsConfig, String> {
        let mut tls = ClientTlsConfig::new();
        if use_test_ca {
            tls = tls
                .ca_pem(crate::testdata::CA_PEM)
                .map_err(|e| e.to_string())?;
        }
        if !server_host_override.is_empty() {
            tls = tls
                .server_name(server_host_override)
                .map_err(|e| e.to_string())?;
        }
        Ok(tls)
    }

    /// `host:port`, bracketing an IPv6 host.
    pub fn target_of(host: &str, port: u16) -> String {
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }
}

/// A test case. [`Case::ALL`] is what `--test_case all` runs, in order (that of the
/// grpcio peer, then ours).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// empty_unary
    EmptyUnary,
    /// large_unary
    LargeUnary,
    /// client_compressed_unary
    ClientCompressedUnary,
    /// server_compressed_unary
    ServerCompressedUnary,
    /// client_streaming
    ClientStreaming,
    /// client_compressed_streaming
    ClientCompressedStreaming,
    /// server_streaming
    ServerStreaming,
    /// server_compressed_streaming
    ServerCompressedStreaming,
    /// ping_pong
    PingPong,
    /// empty_stream
    EmptyStream,
    /// custom_metadata
    CustomMetadata,
    /// status_code_and_message
    StatusCodeAndMessage,
    /// special_status_message
    SpecialStatusMessage,
    /// unimplemented_method
    UnimplementedMethod,
    /// unimplemented_service
    UnimplementedService,
    /// cancel_after_begin
    CancelAfterBegin,
    /// cancel_after_first_response
    CancelAfterFirstResponse,
    /// timeout_on_sleeping_server
    TimeoutOnSleepingServer,
    /// rpc_soak (experimental)
    RpcSoak,
    /// channel_soak (experimental)
    ChannelSoak,
    /// half_duplex: not in the descriptions; exercises the HalfDuplexCall server
    /// feature, which no described case uses.
    HalfDuplex,
}

impl Case {
    /// Every case, in the order `--test_case all` runs them.
    pub const ALL: [Case; 21] = [
        Case::EmptyUnary,
        Case::LargeUnary,
        Case::ClientCompressedUnary,
        Case::ServerCompressedUnary,
        Case::ClientStreaming,
        Case::ClientCompressedStreaming,
        Case::ServerStreaming,
        Case::ServerCompressedStreaming,
        Case::PingPong,
        Case::EmptyStream,
        Case::CustomMetadata,
        Case::StatusCodeAndMessage,
        Case::SpecialStatusMessage,
        Case::UnimplementedMethod,
        Case::UnimplementedService,
        Case::CancelAfterBegin,
        Case::CancelAfterFirstResponse,
        Case::TimeoutOnSleepingServer,
        Case::RpcSoak,
        Case::ChannelSoak,
        Case::HalfDuplex,
    ];

    /// The name in `--test_case`.
    pub fn name(self) -> &'static str {
        match self {
            Case::EmptyUnary => "empty_unary",
            Case::LargeUnary => "large_unary",
            Case::ClientCompressedUnary => "client_compressed_unary",
            Case::ServerCompressedUnary => "server_compressed_unary",
            Case::ClientStreaming => "client_streaming",
            Case::ClientCompressedStreaming => "client_compressed_streaming",
            Case::ServerStreaming => "server_streaming",
            Case::ServerCompressedStreaming => "server_compressed_streaming",
            Case::PingPong => "ping_pong",
            Case::EmptyStream => "empty_stream",
            Case::CustomMetadata => "custom_metadata",
            Case::StatusCodeAndMessage => "status_code_and_message",
            Case::SpecialStatusMessage => "special_status_message",
            Case::UnimplementedMethod => "unimplemented_method",
            Case::UnimplementedService => "unimplemented_service",
            Case::CancelAfterBegin => "cancel_after_begin",
            Case::CancelAfterFirstResponse => "cancel_after_first_response",
            Case::TimeoutOnSleepingServer => "timeout_on_sleeping_server",
            Case::RpcSoak => "rpc_soak",
            Case::ChannelSoak => "channel_soak",
            Case::HalfDuplex => "half_duplex",
        }
    }

    /// The case named `name`.
    pub fn from_name(name: &str) -> Option<Case> {
        Case::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The longest the case may take in all: every RPC has a deadline, and this bounds
    /// the waits between them too.
    fn bound(self, s: &Settings) -> Duration {
        match self {
            Case::RpcSoak | Case::ChannelSoak => s.soak_overall_timeout + s.rpc_timeout,
            _ => s.connect_timeout + 4 * s.rpc_timeout,
        }
    }
}

/// Described cases not implemented, and why.
pub const NOT_IMPLEMENTED: &[(&str, &str)] = &[
    (
        "cacheable_unary",
        "needs a caching proxy in front of the server and GET requests, which rgrpc does not send",
    ),
    ("compute_engine_creds", "needs TLS and GCE credentials"),
    ("jwt_token_creds", "needs TLS and a service account key"),
    ("oauth2_auth_token", "needs TLS and OAuth credentials"),
    ("per_rpc_creds", "needs TLS and a service account key"),
    (
        "google_default_credentials",
        "needs TLS and Google credentials",
    ),
    ("compute_engine_channel_credentials", "needs GCE"),
    (
        "long_lived_channel",
        "experimental; runs for a long wall-clock time by design",
    ),
];

/// Runs `case` on a channel of its own; `Err` says why it failed.
pub async fn run_case(settings: &Settings, case: Case) -> Result<(), String> {
    let run = async {
        let channel = connect(settings).await?;
        let ctx = Ctx {
            stub: TestServiceStub::new(channel.clone()),
            channel,
            settings,
        };
        match case {
            Case::EmptyUnary => cases::empty_unary(&ctx).await,
            Case::LargeUnary => cases::large_unary(&ctx).await,
            Case::ClientCompressedUnary => cases::client_compressed_unary(&ctx).await,
            Case::ServerCompressedUnary => cases::server_compressed_unary(&ctx).await,
            Case::ClientStreaming => cases::client_streaming(&ctx).await,
            Case::ClientCompressedStreaming => cases::client_compressed_streaming(&ctx).await,
            Case::ServerStreaming => cases::server_streaming(&ctx).await,
            Case::ServerCompressedStreaming => cases::server_compressed_streaming(&ctx).await,
            Case::PingPong => cases::ping_pong(&ctx).await,
            Case::EmptyStream => cases::empty_stream(&ctx).await,
            Case::CustomMetadata => cases::custom_metadata(&ctx).await,
            Case::StatusCodeAndMessage => cases::status_code_and_message(&ctx).await,
            Case::SpecialStatusMessage => cases::special_status_message(&ctx).await,
            Case::UnimplementedMethod => cases::unimplemented_method(&ctx).await,
            Case::UnimplementedService => cases::unimplemented_service(&ctx).await,
            Case::CancelAfterBegin => cases::cancel_after_begin(&ctx).await,
            Case::CancelAfterFirstResponse => cases::cancel_after_first_response(&ctx).await,
            Case::TimeoutOnSleepingServer => cases::timeout_on_sleeping_server(&ctx).await,
            Case::RpcSoak => cases::soak(&ctx, false).await,
            Case::ChannelSoak => cases::soak(&ctx, true).await,
            Case::HalfDuplex => cases::half_duplex(&ctx).await,
        }
    };
    let bound = case.bound(settings);
    tokio::time::timeout(bound, run)
        .await
        .unwrap_or_else(|_| Err(format!("case did not finish within {bound:?}")))
}

/// Runs `cases` in order, printing `PASS <case>` or `FAIL <case>: <reason>` for each
/// and last `N passed, M failed`; returns the number failed.
pub async fn run_cases(settings: &Settings, cases: &[Case]) -> usize {
    let (mut passed, mut failed) = (0, 0);
    for &case in cases {
        match run_case(settings, case).await {
            Ok(()) => {
                passed += 1;
                println!("PASS {}", case.name());
            }
            Err(reason) => {
                failed += 1;
                println!("FAIL {}: {reason}", case.name());
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    failed
}

pub(crate) async fn connect(settings: &Settings) -> Result<Channel, String> {
    let target = &settings.target;
    let mut builder = Channel::builder(target);
    if let Some(tls) = &settings.tls {
        builder = builder.tls(tls.clone());
    }
    match tokio::time::timeout(settings.connect_timeout, builder.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(status)) => Err(format!(
            "could not connect to {target}: {}",
            cases::show(&status)
        )),
        Err(_) => Err(format!(
            "could not connect to {target} in {:?}",
            settings.connect_timeout
        )),
    }
}

/// What a case works with.
pub(crate) struct Ctx<'a> {
    pub(crate) channel: Channel,
    pub(crate) stub: TestServiceStub,
    pub(crate) settings: &'a Settings,
}

impl Ctx<'_> {
    /// Call options with the RPC deadline.
    pub(crate) fn options(&self) -> CallOptions {
        CallOptions::new().with_timeout(self.settings.rpc_timeout)
    }

    /// `message` with the RPC deadline.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        Request::with_options(message, self.options())
    }
}
