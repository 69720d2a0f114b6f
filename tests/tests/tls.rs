//! TLS and mTLS end to end over real sockets: round trips, client authentication
//! (required, optional), ALPN, server names, and the wrong protocol on a port failing
//! fast with a message that says what happened. The credentials are the interop test
//! credentials in interop/testdata (a test CA, server1 for `*.test.google.fr`, a
//! client certificate).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rgrpc_runtime::{Channel, ClientTlsConfig, Code, ServerTlsConfig, Status};
use rgrpc_tests::grpc_testing::{SimpleRequest, TestServiceStub};
use rgrpc_tests::{TestServer, start, within};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const CA: &[u8] = include_bytes!("../../interop/testdata/ca.pem");
const SERVER_CERT: &[u8] = include_bytes!("../../interop/testdata/server1.pem");
const SERVER_KEY: &[u8] = include_bytes!("../../interop/testdata/server1.key");
const CLIENT_CERT: &[u8] = include_bytes!("../../interop/testdata/client.pem");
const CLIENT_KEY: &[u8] = include_bytes!("../../interop/testdata/client.key");
/// A name server1's certificate covers (`*.test.google.fr`), as grpc's interop
/// tests use it.
const OVERRIDE: &str = "foo.test.google.fr";
/// Every failure below must be reported well before this.
const FAST: Duration = Duration::from_secs(5);

fn server_tls() -> ServerTlsConfig {
    ServerTlsConfig::from_pem(SERVER_CERT, SERVER_KEY).unwrap()
}

fn client_tls() -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_pem(CA)
        .unwrap()
        .server_name(OVERRIDE)
        .unwrap()
}

async fn start_tls(tls: ServerTlsConfig) -> TestServer {
    start(move |s| s.tls(tls)).await
}

/// The peer information the test service echoes (see `Instrumented`).
struct Echo {
    tls: String,
    alpn: String,
    authority: String,
    peer_certs: usize,
    leaf: Option<Vec<u8>>,
}

async fn echo(channel: Channel) -> Result<Echo, Status> {
    let client = TestServiceStub::new(channel);
    let response = within(
        10,
        client.unary_call(SimpleRequest {
            fill_oauth_scope: true,
            response_size: 5,
            ..Default::default()
        }),
    )
    .await?;
    let h = response.headers();
    let get = |k: &str| h.get(k).unwrap_or_default().to_owned();
    let echo = Echo {
        tls: get("x-tls"),
        alpn: get("x-alpn"),
        authority: get("x-authority"),
        peer_certs: get("x-peer-certs").parse().unwrap(),
        leaf: h.get_bin("x-peer-cert-bin"),
    };
    assert_eq!(response.into_inner().payload.unwrap().body.len(), 5);
    Ok(echo)
}

fn channel(server: &TestServer, tls: ClientTlsConfig) -> Channel {
    Channel::builder(&server.target()).tls(tls).build().unwrap()
}

fn der(pem: &[u8]) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem).unwrap().to_vec()
}

/// A failed call, and how long it took.
async fn failure(channel: Channel) -> (Status, Duration) {
    let started = Instant::now();
    let err = echo(channel).await.err().expect("the call must fail");
    (err, started.elapsed())
}

#[tokio::test]
async fn tls_round_trip_with_alpn_h2_and_the_override_as_authority() {
    let server = start_tls(server_tls()).await;
    let echo = echo(channel(&server, client_tls())).await.unwrap();
    assert_eq!(echo.tls, "true");
    assert_eq!(echo.alpn, "h2");
    assert_eq!(echo.peer_certs, 0, "no client certificate was asked for");
    // grpc's server_host_override is the authority too.
    assert_eq!(echo.authority, OVERRIDE);
}

#[tokio::test]
async fn https_targets_speak_tls() {
    let server = start_tls(server_tls()).await;
    let target = format!("https://{}", server.addr);
    let channel = Channel::builder(&target).tls(client_tls()).build().unwrap();
    assert_eq!(echo(channel).await.unwrap().tls, "true");
    // Without a config an https:// target trusts the platform's roots, which do
    // not include the test CA: the handshake fails, and says why.
    let (err, took) = failure(Channel::builder(&target).build().unwrap()).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("TLS handshake"), "{err:?}");
    assert!(took < FAST, "{took:?}");
}

#[tokio::test]
async fn tls_works_with_other_target_schemes() {
    let server = start_tls(server_tls()).await;
    let target = format!("ipv4:{},{}", server.addr, server.addr);
    let channel = Channel::builder(&target).tls(client_tls()).build().unwrap();
    assert_eq!(echo(channel).await.unwrap().alpn, "h2");
}

#[tokio::test]
async fn mtls_required_refuses_a_client_without_a_certificate() {
    let server = start_tls(server_tls().client_auth_required(CA).unwrap()).await;

    let (err, took) = failure(channel(&server, client_tls())).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // TLS 1.3: the server's alert arrives after the client's side of the handshake.
    assert!(err.message().contains("CertificateRequired"), "{err:?}");
    assert!(took < FAST, "{took:?}");

    let with_cert = client_tls().identity_pem(CLIENT_CERT, CLIENT_KEY).unwrap();
    let echo = echo(channel(&server, with_cert)).await.unwrap();
    assert_eq!(echo.peer_certs, 1);
    assert_eq!(echo.leaf.as_deref(), Some(&der(CLIENT_CERT)[..]));
}

#[tokio::test]
async fn mtls_optional_serves_both_and_shows_the_certificate_when_sent() {
    let server = start_tls(server_tls().client_auth_optional(CA).unwrap()).await;
    let without = echo(channel(&server, client_tls())).await.unwrap();
    assert_eq!(without.peer_certs, 0);
    assert_eq!(without.leaf, None);
    let with_cert = client_tls().identity_pem(CLIENT_CERT, CLIENT_KEY).unwrap();
    let with = echo(channel(&server, with_cert)).await.unwrap();
    assert_eq!(with.peer_certs, 1);
    assert_eq!(with.leaf.as_deref(), Some(&der(CLIENT_CERT)[..]));
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    // The server trusts as client roots only server1's certificate, which did not
    // sign the client's.
    let server = start_tls(server_tls().client_auth_optional(SERVER_CERT).unwrap()).await;
    let with_cert = client_tls().identity_pem(CLIENT_CERT, CLIENT_KEY).unwrap();
    let (err, took) = failure(channel(&server, with_cert)).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("alert"), "{err:?}");
    assert!(took < FAST, "{took:?}");
}

#[tokio::test]
async fn a_wrong_server_name_fails_and_the_override_fixes_it() {
    let server = start_tls(server_tls()).await;
    // No override: the name checked is 127.0.0.1, which server1 does not cover.
    let no_override = ClientTlsConfig::new().ca_pem(CA).unwrap();
    let (err, took) = failure(channel(&server, no_override)).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("certificate"), "{err:?}");
    assert!(err.message().contains("127.0.0.1"), "{err:?}");
    assert!(took < FAST, "{took:?}");

    let wrong = ClientTlsConfig::new()
        .ca_pem(CA)
        .unwrap()
        .server_name("foo.example.com")
        .unwrap();
    let (err, _) = failure(channel(&server, wrong)).await;
    assert!(err.message().contains("certificate"), "{err:?}");

    // A name the certificate covers passes.
    let waterzooi = ClientTlsConfig::new()
        .ca_pem(CA)
        .unwrap()
        .server_name("waterzooi.test.google.be")
        .unwrap();
    let echo = echo(channel(&server, waterzooi)).await.unwrap();
    assert_eq!(echo.authority, "waterzooi.test.google.be");
}

#[tokio::test]
async fn an_untrusted_server_certificate_fails() {
    let server = start_tls(server_tls()).await;
    // The only root is the client's certificate, which did not sign server1's.
    let other_roots = ClientTlsConfig::new()
        .ca_pem(CLIENT_CERT)
        .unwrap()
        .server_name(OVERRIDE)
        .unwrap();
    let (err, took) = failure(channel(&server, other_roots)).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("certificate"), "{err:?}");
    assert!(took < FAST, "{took:?}");
}

#[tokio::test]
async fn plaintext_client_on_a_tls_port_fails_fast_saying_so() {
    let server = start_tls(server_tls()).await;
    let (err, took) = failure(Channel::lazy(&server.target()).unwrap()).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains(
            "the server refused the connection: GOAWAY PROTOCOL_ERROR: this port requires TLS"
        ),
        "{err:?}"
    );
    assert!(took < FAST, "{took:?}");
}

#[tokio::test]
async fn tls_client_on_a_plaintext_port_fails_fast_saying_so() {
    let server = start(|s| s).await;
    let (err, took) = failure(channel(&server, client_tls())).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("without TLS"), "{err:?}");
    assert!(took < FAST, "{took:?}");
}

#[tokio::test]
async fn the_plaintext_refusal_reaches_any_http2_client() {
    // What a plaintext HTTP/2 peer (not ours) reads back from a TLS port: SETTINGS,
    // then a GOAWAY whose debug data says TLS is required; then the server closes.
    let server = start_tls(server_tls()).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut answer = Vec::new();
    within(5, tcp.read_to_end(&mut answer)).await.unwrap();
    assert_eq!(&answer[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0], "{answer:?}");
    assert_eq!(answer[12], 7, "a GOAWAY frame: {answer:?}");
    assert!(
        String::from_utf8_lossy(&answer).contains("requires TLS"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_plaintext_port_names_the_problem_to_a_tls_client() {
    // The start of a ClientHello on a plaintext port: the server answers SETTINGS and
    // a GOAWAY saying it does not speak TLS (a TLS client reads it as a non-TLS
    // record; a person capturing the bytes reads the text), then closes.
    let server = start(|s| s).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&[22, 3, 1, 0, 4, 1, 0, 0, 0]).await.unwrap();
    let mut answer = Vec::new();
    within(5, tcp.read_to_end(&mut answer)).await.unwrap();
    assert!(
        String::from_utf8_lossy(&answer).contains("does not use TLS"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_stalled_handshake_neither_blocks_others_nor_outlives_the_connection_timeout() {
    let tls = server_tls();
    let timeout = Duration::from_secs(3);
    let server = start(move |s| s.tls(tls).connection_timeout(timeout)).await;
    // A client that starts a TLS record and then says nothing more.
    let mut stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stalled.write_all(&[22, 3, 1]).await.unwrap();
    let started = Instant::now();
    // Another client gets through meanwhile, long before the stalled one's timeout:
    // its handshake does not wait behind the first (the accept loop is not blocked).
    let echo = echo(channel(&server, client_tls())).await.unwrap();
    assert_eq!(echo.tls, "true");
    let other = started.elapsed();
    assert!(other < Duration::from_millis(1500), "{other:?}");
    // The stalled one is closed at the connection timeout.
    let mut rest = Vec::new();
    let _ = within(10, stalled.read_to_end(&mut rest)).await;
    let took = started.elapsed();
    assert!(took >= timeout - Duration::from_millis(100), "{took:?}");
    assert!(took < timeout + Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn a_stalled_handshake_does_not_hold_up_a_graceful_stop() {
    let tls = server_tls();
    let mut server = start(move |s| s.tls(tls)).await;
    let mut stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stalled.write_all(&[22, 3, 1]).await.unwrap();
    // The connection is accepted and handshaking (its first byte was read).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    server.handle.graceful_stop();
    server.served(5).await;
    // Not the default 120 s connection timeout.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// A TLS client that does what ours never does: offers the given ALPN protocols (or
/// none), trusting the test CA.
fn raw_tls_client(alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(CA) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// What the server sends first after the handshake, up to 64 bytes, or the error.
async fn first_bytes_after_handshake(
    server: &TestServer,
    alpn: &[&[u8]],
) -> std::io::Result<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(server.addr).await?;
    let name = rustls_pki_types::ServerName::try_from(OVERRIDE).unwrap();
    let mut tls = within(5, raw_tls_client(alpn).connect(name, tcp)).await?;
    // An HTTP/2 client speaks first; the server answers with its SETTINGS.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await?;
    let mut buf = vec![0u8; 64];
    let n = within(5, tls.read(&mut buf)).await?;
    buf.truncate(n);
    Ok(buf)
}

#[tokio::test]
async fn alpn_h2_is_required_of_clients() {
    let server = start_tls(server_tls()).await;
    // With h2 the server answers the preface with SETTINGS (frame type 4).
    let answer = first_bytes_after_handshake(&server, &[b"h2"])
        .await
        .unwrap();
    assert!(answer.len() >= 9 && answer[3] == 4, "{answer:?}");
    // Without ALPN the handshake completes (TLS 1.3: the client is done first), but
    // the server closes without a byte of HTTP/2.
    match first_bytes_after_handshake(&server, &[]).await {
        Ok(answer) => assert!(answer.is_empty(), "served without ALPN: {answer:?}"),
        Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::TimedOut, "{e}"),
    }
    // Offering only another protocol fails the handshake itself
    // (no_application_protocol, RFC 7301 section 3.2).
    let err = first_bytes_after_handshake(&server, &[b"http/1.1"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NoApplicationProtocol"), "{err}");
}

#[tokio::test]
async fn our_client_requires_alpn_h2_of_the_server() {
    // A TLS server (raw rustls) that negotiates no ALPN protocol, then would speak
    // HTTP/2: our client refuses it at the handshake, saying why.
    let chain = CertificateDer::pem_slice_iter(SERVER_CERT)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(SERVER_KEY).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(async move {
        // Bounded: the client connects once, and may retry once or twice.
        for _ in 0..3 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut sink = [0u8; 1024];
                    let _ = within(5, tls.read(&mut sink)).await;
                }
            });
        }
    });
    let channel = Channel::builder(&format!("http://{addr}"))
        .tls(client_tls())
        .build()
        .unwrap();
    let (err, took) = failure(channel).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("ALPN h2"), "{err:?}");
    assert!(took < FAST, "{took:?}");
    serving.abort();
}

fn testdata(file: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "interop",
        "testdata",
        file,
    ]
    .iter()
    .collect();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn the_helloworld_example_speaks_mtls() {
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_example-helloworld-server"))
        .args(["--addr", "127.0.0.1:0"])
        .args(["--tls_cert", &testdata("server1.pem")])
        .args(["--tls_key", &testdata("server1.key")])
        .args(["--client_ca", &testdata("ca.pem"), "--require_client_cert"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning helloworld-server");
    let mut stdout = BufReader::new(server.stdout.take().expect("piped"));
    let mut line = String::new();
    within(10, stdout.read_line(&mut line)).await.unwrap();
    let addr = line
        .trim_end()
        .strip_prefix("helloworld server listening on ")
        .and_then(|rest| rest.strip_suffix(" (TLS)"))
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    let client = |with_cert: bool| {
        let mut command =
            tokio::process::Command::new(env!("CARGO_BIN_EXE_example-helloworld-client"));
        command.args(["--target", &addr, "--name", "tls"]).args([
            "--ca",
            &testdata("ca.pem"),
            "--server_name",
            OVERRIDE,
        ]);
        if with_cert {
            command.args([
                "--cert",
                &testdata("client.pem"),
                "--key",
                &testdata("client.key"),
            ]);
        }
        command.stdin(Stdio::null()).output()
    };
    let ok = within(20, client(true)).await.unwrap();
    assert!(ok.status.success() && ok.stdout == b"Hello tls\n", "{ok:?}");
    let refused = within(20, client(false)).await.unwrap();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.starts_with("UNAVAILABLE: "), "{stderr}");
    assert!(stderr.contains("CertificateRequired"), "{stderr}");
}
