//! TLS under HTTP/2 (feature `tls`): rustls with the `ring` crypto provider, wrapped
//! around a [`BoxIo`] and handed to the connection drivers as another `BoxIo`.
//!
//! Server: a certificate chain and key from PEM; optionally client certificates,
//! required or optional, checked against the given roots. Client: roots from PEM or
//! the platform's store, optionally a client certificate, and the name the server's
//! certificate must match (the target's host, or an override: grpc's
//! `server_host_override`). Both sides offer only ALPN `h2` and refuse a connection
//! that did not negotiate it (grpc's PROTOCOL-HTTP2.md: "HTTP2 over TLS"; grpc-go
//! enforces ALPN on both sides since 1.67).
//!
//! The configs are opaque: no rustls type is part of the public API, so a rustls
//! upgrade is not a breaking change for users, and `Server` and `Channel` carry no
//! generic. The handshake runs in the connection's own task, under the server's
//! connection timeout or the client's connect timeout: a slow handshake holds up no
//! other connection.
//!
//! The crypto provider is `ring`: it builds with a C compiler alone, where `aws-lc-rs`
//! (rustls' default) may need cmake (and Go or NASM on some targets).

use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::io::{BoxIo, TlsInfo};

/// The ALPN protocol id of HTTP/2 over TLS (RFC 9113 section 3.2).
const H2: &[u8] = b"h2";

/// An invalid TLS setting: a PEM that holds no certificate, a key that does not
/// parse or does not match its certificate, a bad server name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError {
    message: String,
}

impl TlsError {
    fn new(message: impl Into<String>) -> TlsError {
        TlsError {
            message: message.into(),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TlsError {}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Every certificate in `pem`, in order; at least one.
fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(format!("{what}: bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::new(format!("{what}: no CERTIFICATE in the PEM")));
    }
    Ok(certs)
}

fn private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| TlsError::new(format!("{what}: no usable PRIVATE KEY in the PEM: {e}")))
}

fn root_store(pem: &[u8], what: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem, what)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::new(format!("{what}: not a usable root: {e}")))?;
    }
    Ok(roots)
}

/// Whether and how a TLS server asks clients for certificates.
#[derive(Clone, Debug)]
enum ClientAuth {
    /// No client certificate is asked for.
    None,
    /// A certificate signed by one of these roots is asked for; a client without
    /// one is still served when `required` is false.
    Roots {
        roots: Arc<RootCertStore>,
        required: bool,
    },
}

/// A server's TLS settings: its certificate chain and key, and whether clients must
/// present a certificate. Give it to [`crate::Server::tls`].
///
/// ```no_run
/// # fn f(cert: &[u8], key: &[u8], client_ca: &[u8]) -> Result<(), rgrpc_runtime::TlsError> {
/// let tls = rgrpc_runtime::ServerTlsConfig::from_pem(cert, key)?
///     .client_auth_required(client_ca)?;
/// let server = rgrpc_runtime::Server::new().tls(tls);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServerTlsConfig {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    client_auth: ClientAuth,
    built: Arc<ServerConfig>,
}

impl fmt::Debug for ServerTlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsConfig")
            .field("chain_len", &self.chain.len())
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

impl ServerTlsConfig {
    /// The server's certificate chain (PEM, its own certificate first, then any
    /// intermediates) and its private key (PEM: PKCS#8, PKCS#1 or SEC1). No client
    /// certificate is asked for.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<ServerTlsConfig, TlsError> {
        let chain = certificates(cert_chain, "server certificate chain")?;
        let key = Arc::new(private_key(key, "server key")?);
        ServerTlsConfig::build(chain, key, ClientAuth::None)
    }

    /// Requires every client to present a certificate signed by one of `roots_pem`
    /// (mTLS); a client without one fails its handshake.
    pub fn client_auth_required(self, roots_pem: &[u8]) -> Result<ServerTlsConfig, TlsError> {
        let roots = Arc::new(root_store(roots_pem, "client roots")?);
        ServerTlsConfig::build(
            self.chain,
            self.key,
            ClientAuth::Roots {
                roots,
                required: true,
            },
        )
    }

    /// Asks clients for a certificate signed by one of `roots_pem`: one that sends
    /// a certificate must pass the check, one that sends none is served too (its
    /// calls see no peer certificate).
    pub fn client_auth_optional(self, roots_pem: &[u8]) -> Result<ServerTlsConfig, TlsError> {
        let roots = Arc::new(root_store(roots_pem, "client roots")?);
        ServerTlsConfig::build(
            self.chain,
            self.key,
            ClientAuth::Roots {
                roots,
                required: false,
            },
        )
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: Arc<PrivateKeyDer<'static>>,
        client_auth: ClientAuth,
    ) -> Result<ServerTlsConfig, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::new(format!("TLS versions: {e}")))?;
        let builder = match &client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Roots { roots, required } => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.clone(),
                    provider(),
                );
                let verifier = if *required {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError::new(format!("client roots: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| TlsError::new(format!("server certificate and key: {e}")))?;
        config.alpn_protocols = vec![H2.to_vec()];
        Ok(ServerTlsConfig {
            chain,
            key,
            client_auth,
            built: Arc::new(config),
        })
    }

    /// The rustls config connections are accepted with.
    pub(crate) fn acceptor(&self) -> Acceptor {
        Acceptor(tokio_rustls::TlsAcceptor::from(self.built.clone()))
    }
}

/// Accepts TLS on a server's connections.
#[derive(Clone)]
pub(crate) struct Acceptor(tokio_rustls::TlsAcceptor);

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Acceptor")
    }
}

impl Acceptor {
    /// The server's TLS handshake; fails when ALPN did not choose `h2` (a client
    /// that offered ALPN without `h2` is refused by rustls with the
    /// `no_application_protocol` alert; one that offered no ALPN at all here).
    pub(crate) async fn accept(&self, io: BoxIo) -> io::Result<(BoxIo, TlsInfo)> {
        let stream = self.0.accept(io).await?;
        let (_, conn) = stream.get_ref();
        let info = info(conn.peer_certificates(), conn.alpn_protocol());
        if info.alpn_protocol.as_deref() != Some(H2) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the client did not negotiate ALPN h2",
            ));
        }
        Ok((BoxIo::Other(Box::new(stream)), info))
    }
}

fn info(certs: Option<&[CertificateDer<'_>]>, alpn: Option<&[u8]>) -> TlsInfo {
    TlsInfo {
        peer_certificates: certs
            .unwrap_or_default()
            .iter()
            .map(|c| bytes::Bytes::copy_from_slice(c.as_ref()))
            .collect(),
        alpn_protocol: alpn.map(<[u8]>::to_vec),
    }
}

/// Where a client's trusted roots come from.
#[derive(Clone)]
enum Roots {
    /// The platform's trust store, read once per process.
    Platform,
    /// Only these.
    Pem(Arc<RootCertStore>),
}

/// A channel's TLS settings: the roots the server's certificate must chain to, an
/// optional client certificate, and an optional server name override. Give it to
/// [`crate::ChannelBuilder::tls`]; an `https://` target without one uses
/// `ClientTlsConfig::new()`.
///
/// ```no_run
/// # fn f(ca: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
/// let tls = rgrpc_runtime::ClientTlsConfig::new()
///     .ca_pem(ca)?
///     .server_name("foo.test.google.fr")?;
/// let channel = rgrpc_runtime::Channel::builder("127.0.0.1:50051").tls(tls).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientTlsConfig {
    roots: Roots,
    identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for ClientTlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTlsConfig")
            .field(
                "roots",
                &match &self.roots {
                    Roots::Platform => "platform".to_owned(),
                    Roots::Pem(r) => format!("{} from PEM", r.len()),
                },
            )
            .field("client_certificate", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl Default for ClientTlsConfig {
    fn default() -> ClientTlsConfig {
        ClientTlsConfig::new()
    }
}

impl ClientTlsConfig {
    /// Trusts the platform's root certificates (read with `rustls-native-certs`
    /// when the first channel is built), sends no client certificate, and checks
    /// the server's certificate against the target's host.
    pub fn new() -> ClientTlsConfig {
        ClientTlsConfig {
            roots: Roots::Platform,
            identity: None,
            server_name: None,
        }
    }

    /// Trusts only the certificates in `pem` (instead of the platform's).
    pub fn ca_pem(mut self, pem: &[u8]) -> Result<ClientTlsConfig, TlsError> {
        self.roots = Roots::Pem(Arc::new(root_store(pem, "CA certificates")?));
        Ok(self)
    }

    /// Presents this certificate chain and key to servers that ask (mTLS).
    pub fn identity_pem(
        mut self,
        cert_chain: &[u8],
        key: &[u8],
    ) -> Result<ClientTlsConfig, TlsError> {
        let chain = certificates(cert_chain, "client certificate chain")?;
        let key = Arc::new(private_key(key, "client key")?);
        self.identity = Some((chain, key));
        Ok(self)
    }

    /// The name the server's certificate must match, sent as SNI and as every
    /// call's `:authority`, instead of the target's host (grpc's
    /// `server_host_override` / `GRPC_SSL_TARGET_NAME_OVERRIDE_ARG`). A DNS name or
    /// an IP address.
    pub fn server_name(mut self, name: &str) -> Result<ClientTlsConfig, TlsError> {
        let parsed = ServerName::try_from(name.to_owned())
            .map_err(|e| TlsError::new(format!("server name {name:?}: {e}")))?;
        self.server_name = Some(parsed);
        Ok(self)
    }

    /// The override given with [`ClientTlsConfig::server_name`], as text.
    pub(crate) fn server_name_override(&self) -> Option<String> {
        self.server_name.as_ref().map(|n| n.to_str().into_owned())
    }

    /// The connector for a channel whose target's host is `host`.
    pub(crate) fn connector(&self, host: &str) -> Result<Connector, TlsError> {
        let roots = match &self.roots {
            Roots::Pem(roots) => roots.clone(),
            Roots::Platform => platform_roots()?,
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::new(format!("TLS versions: {e}")))?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| TlsError::new(format!("client certificate and key: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![H2.to_vec()];
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => {
                // An IPv6 literal comes bracketed from the authority.
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                ServerName::try_from(bare.to_owned())
                    .map_err(|e| TlsError::new(format!("server name {host:?}: {e}")))?
            }
        };
        Ok(Connector {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name,
        })
    }
}

/// The platform's roots, read once: reading them parses every file of the system
/// store, which costs milliseconds.
fn platform_roots() -> Result<Arc<RootCertStore>, TlsError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, TlsError>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(TlsError::new(format!(
                    "no root certificate found in the platform's store{why}; \
                     give roots with ClientTlsConfig::ca_pem"
                )));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// Dials TLS for one channel: its rustls config and the server name to check.
#[derive(Clone)]
pub(crate) struct Connector {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("name", &self.name)
            .finish()
    }
}

impl Connector {
    /// The client's TLS handshake over `io`, with a message that says what went
    /// wrong when it fails.
    pub(crate) async fn connect(&self, io: BoxIo) -> Result<BoxIo, String> {
        let stream = self
            .connector
            .connect(self.name.clone(), io)
            .await
            .map_err(|e| describe(&e))?;
        let (_, conn) = stream.get_ref();
        if conn.alpn_protocol() != Some(H2) {
            return Err("TLS handshake: the server did not negotiate ALPN h2".into());
        }
        Ok(BoxIo::Other(Box::new(stream)))
    }
}

/// A failed client handshake, said plainly.
fn describe(error: &io::Error) -> String {
    if let Some(tls) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return match tls {
            // The first bytes back were not a TLS record: a plaintext server (ours
            // answers SETTINGS + GOAWAY, see `sniff`).
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                "TLS handshake: the server answered without TLS (a plaintext port?)".into()
            }
            rustls::Error::AlertReceived(alert) => {
                format!("TLS handshake: the server refused it with the alert {alert:?}")
            }
            other => format!("TLS handshake: {other}"),
        };
    }
    match error.kind() {
        io::ErrorKind::UnexpectedEof => {
            "TLS handshake: the server closed the connection before it finished".into()
        }
        _ => format!("TLS handshake: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_without_a_certificate_is_a_clear_error() {
        let err = ServerTlsConfig::from_pem(b"nothing here", b"").unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
        let err = ClientTlsConfig::new().ca_pem(b"").unwrap_err();
        assert!(err.to_string().contains("CA certificates"), "{err}");
    }

    #[test]
    fn a_bad_server_name_is_refused() {
        let err = ClientTlsConfig::new()
            .server_name("not a name!")
            .unwrap_err();
        assert!(err.to_string().contains("not a name!"), "{err}");
        assert!(ClientTlsConfig::new().server_name("127.0.0.1").is_ok());
        assert!(
            ClientTlsConfig::new()
                .server_name("foo.test.google.fr")
                .is_ok()
        );
    }

    #[test]
    fn plaintext_answers_are_named() {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert!(describe(&e).contains("without TLS"));
        let e = io::Error::new(io::ErrorKind::UnexpectedEof, "eof");
        assert!(describe(&e).contains("closed the connection"));
    }
}
