//! Byte streams under HTTP/2: what a connection driver runs over, without a generic.
//!
//! A driver takes a [`BoxIo`]: a TCP or Unix socket held as is, or any other
//! `AsyncRead + AsyncWrite` byte stream boxed (one virtual call per read or write
//! syscall, nothing per frame). TLS (`tls.rs`) wraps a `BoxIo` in another one.
//!
//! Addresses follow grpc's naming document (doc/naming.md): `host:port`,
//! `http://host:port`, `unix:/absolute/path`, `unix:relative/path` and
//! `unix:///absolute/path`.

use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
#[cfg(unix)]
use tokio::net::{UnixListener, UnixStream};

/// A byte stream a connection driver can run over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// One connection's byte stream. The sockets are held inline (no allocation, no
/// virtual call); anything else is boxed.
pub(crate) enum BoxIo {
    /// A TCP socket.
    Tcp(TcpStream),
    /// A Unix domain socket.
    #[cfg(unix)]
    Unix(UnixStream),
    /// Any other byte stream: TLS, or an in-memory stream in tests and fuzzing.
    #[cfg_attr(not(any(test, feature = "tls", feature = "fuzzing")), allow(dead_code))]
    Other(Box<dyn Io>),
}

impl BoxIo {
    /// Boxes any byte stream.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn other(io: impl Io) -> BoxIo {
        BoxIo::Other(Box::new(io))
    }
}

impl BoxIo {
    /// The first byte the peer sent, without consuming it: `Ok(None)` when the peer
    /// closed first, or when this kind of stream cannot be peeked at (only TCP can;
    /// a Unix socket or a boxed stream is served as it is).
    pub(crate) async fn peek_first(&mut self) -> io::Result<Option<u8>> {
        match self {
            BoxIo::Tcp(io) => {
                let mut first = [0u8; 1];
                let n = io.peek(&mut first).await?;
                Ok((n == 1).then_some(first[0]))
            }
            _ => Ok(None),
        }
    }

    /// Writes `bytes`, half-closes, and reads (and drops) what the peer still sends
    /// until it closes, at most [`REFUSAL_DRAIN_BYTES`] within [`REFUSAL_DRAIN_TIME`]:
    /// closing with unread bytes would send a TCP RST, and a peer that gets an RST may
    /// lose the answer before it reads it.
    pub(crate) async fn refuse(mut self, bytes: &[u8]) {
        let drain = async {
            self.write_all(bytes).await?;
            self.shutdown().await?;
            let mut sink = [0u8; 1024];
            let mut left = REFUSAL_DRAIN_BYTES;
            while left > 0 {
                let n = self.read(&mut sink).await?;
                if n == 0 {
                    break;
                }
                left = left.saturating_sub(n);
            }
            io::Result::Ok(())
        };
        let _ = tokio::time::timeout(REFUSAL_DRAIN_TIME, drain).await;
    }
}

/// Bytes a refused peer may still send before the connection is dropped: a preface
/// and SETTINGS, or a ClientHello, are well under it.
const REFUSAL_DRAIN_BYTES: usize = 64 * 1024;
/// How long a refused peer has to read the answer and close.
const REFUSAL_DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// What a TLS connection established: the peer's certificates and the protocol ALPN
/// chose. Kept per connection; every call's `ServerContext` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsInfo {
    /// The peer's certificate chain, DER, its own certificate first (empty when the
    /// peer sent none).
    pub peer_certificates: Vec<bytes::Bytes>,
    /// The protocol ALPN negotiated (always `h2` on a connection we serve).
    pub alpn_protocol: Option<Vec<u8>>,
}

/// Forwards a call to whichever stream this is.
macro_rules! each {
    ($self:ident, $io:ident => $call:expr) => {
        match $self.get_mut() {
            BoxIo::Tcp($io) => $call,
            #[cfg(unix)]
            BoxIo::Unix($io) => $call,
            BoxIo::Other($io) => $call,
        }
    };
}

impl AsyncRead for BoxIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, io => Pin::new(io).poll_read(cx, buf))
    }
}

impl AsyncWrite for BoxIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            BoxIo::Tcp(io) => io.is_write_vectored(),
            #[cfg(unix)]
            BoxIo::Unix(io) => io.is_write_vectored(),
            BoxIo::Other(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, io => Pin::new(io).poll_shutdown(cx))
    }
}

/// Where a connection's peer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAddr {
    /// A TCP peer.
    Tcp(SocketAddr),
    /// A Unix domain socket peer (usually unnamed on the accepting side).
    Unix(Option<PathBuf>),
}

impl PeerAddr {
    /// The TCP address, if the peer is on TCP.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            PeerAddr::Tcp(addr) => Some(*addr),
            PeerAddr::Unix(_) => None,
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Tcp(addr) => write!(f, "{addr}"),
            PeerAddr::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            PeerAddr::Unix(None) => f.write_str("unix:"),
        }
    }
}

/// An address to listen on or dial, parsed from a target string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Address {
    /// `host:port` for TCP (the host may be a name, resolved when dialing).
    Tcp(String),
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// `memory:N`: the in-memory stream the client-connection fuzz target left under
    /// `N` (`fuzz::client`); fuzzing builds only.
    #[cfg(feature = "fuzzing")]
    Memory(u64),
}

impl Address {
    /// Parses `host:port`, `http://host:port`, `unix:path` or `unix:///path`
    /// (doc/naming.md). A trailing `/` after `host:port` is ignored.
    pub(crate) fn parse(target: &str) -> Result<Address, String> {
        #[cfg(feature = "fuzzing")]
        if let Some(id) = target.strip_prefix("memory:") {
            return id
                .parse()
                .map(Address::Memory)
                .map_err(|e| format!("{target:?}: {e}"));
        }
        if let Some(rest) = target.strip_prefix("unix:") {
            // "unix:///abs" keeps its leading slash; "unix:rel" and "unix:/abs" as is.
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(format!("target {target:?} names no socket path"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        let rest = match target.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "unsupported scheme {scheme:?} in target {target:?}: use host:port, \
                     http://host:port or unix:path"
                ));
            }
            None => target,
        };
        let rest = rest.trim_end_matches('/');
        let authority: http::uri::Authority = rest
            .parse()
            .map_err(|e| format!("bad target {target:?}: {e}"))?;
        if authority.port_u16().is_none() {
            return Err(format!("target {target:?} has no port"));
        }
        Ok(Address::Tcp(rest.to_owned()))
    }

    /// Opens a byte stream to the address.
    pub(crate) async fn connect(&self) -> io::Result<(BoxIo, PeerAddr)> {
        match self {
            Address::Tcp(hostport) => {
                let io = TcpStream::connect(hostport.as_str()).await?;
                let _ = io.set_nodelay(true);
                let peer = io.peer_addr()?;
                Ok((BoxIo::Tcp(io), PeerAddr::Tcp(peer)))
            }
            #[cfg(unix)]
            Address::Unix(path) => {
                let io = UnixStream::connect(path).await?;
                Ok((BoxIo::Unix(io), PeerAddr::Unix(Some(path.clone()))))
            }
            #[cfg(not(unix))]
            Address::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "unix sockets are not supported on this platform",
            )),
            #[cfg(feature = "fuzzing")]
            Address::Memory(id) => crate::fuzz::take_stream(*id)
                .map(|io| (BoxIo::other(io), PeerAddr::Unix(None)))
                .ok_or_else(|| io::Error::new(io::ErrorKind::ConnectionRefused, "no stream left")),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(hostport) => f.write_str(hostport),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            #[cfg(feature = "fuzzing")]
            Address::Memory(id) => write!(f, "memory:{id}"),
        }
    }
}

/// A listening socket the server accepts connections from: TCP or a Unix domain
/// socket. Made with [`Listener::bind`] or from a tokio listener.
#[derive(Debug)]
pub struct Listener {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `addr`: `host:port` (TCP) or `unix:path` (a Unix domain socket; a stale
    /// socket file left by an earlier run is not removed for you).
    pub async fn bind(addr: &str) -> io::Result<Listener> {
        let address =
            Address::parse(addr).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        match address {
            Address::Tcp(hostport) => Ok(TcpListener::bind(hostport.as_str()).await?.into()),
            #[cfg(unix)]
            Address::Unix(path) => {
                let listener = UnixListener::bind(&path)?;
                Ok(Listener {
                    inner: Inner::Unix(listener, path),
                })
            }
            #[cfg(not(unix))]
            Address::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "unix sockets are not supported on this platform",
            )),
            #[cfg(feature = "fuzzing")]
            Address::Memory(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "an in-memory address is dialed, never listened on",
            )),
        }
    }

    /// The local address: `host:port`, or `unix:path`.
    pub fn local_addr(&self) -> io::Result<String> {
        match &self.inner {
            Inner::Tcp(l) => Ok(l.local_addr()?.to_string()),
            #[cfg(unix)]
            Inner::Unix(_, path) => Ok(format!("unix:{}", path.display())),
        }
    }

    /// Accepts the next connection.
    pub(crate) fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(BoxIo, PeerAddr)>> {
        match &self.inner {
            Inner::Tcp(l) => l.poll_accept(cx).map_ok(|(io, addr)| {
                let _ = io.set_nodelay(true);
                (BoxIo::Tcp(io), PeerAddr::Tcp(addr))
            }),
            #[cfg(unix)]
            Inner::Unix(l, _) => l.poll_accept(cx).map_ok(|(io, addr)| {
                let path = addr.as_pathname().map(Path::to_path_buf);
                (BoxIo::Unix(io), PeerAddr::Unix(path))
            }),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // As grpc-go (Go's UnixListener.Close), the socket file goes with the listener,
        // however serving ended.
        #[cfg(unix)]
        if let Inner::Unix(_, path) = &self.inner {
            if !path.as_os_str().is_empty() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl From<TcpListener> for Listener {
    fn from(listener: TcpListener) -> Listener {
        Listener {
            inner: Inner::Tcp(listener),
        }
    }
}

#[cfg(unix)]
impl From<UnixListener> for Listener {
    fn from(listener: UnixListener) -> Listener {
        let path = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            .unwrap_or_default();
        Listener {
            inner: Inner::Unix(listener, path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_as_the_naming_document_spells_them() {
        assert_eq!(
            Address::parse("127.0.0.1:50051"),
            Ok(Address::Tcp("127.0.0.1:50051".into()))
        );
        assert_eq!(
            Address::parse("http://localhost:8080/"),
            Ok(Address::Tcp("localhost:8080".into()))
        );
        assert_eq!(
            Address::parse("unix:/tmp/a.sock"),
            Ok(Address::Unix("/tmp/a.sock".into()))
        );
        assert_eq!(
            Address::parse("unix:rel/a.sock"),
            Ok(Address::Unix("rel/a.sock".into()))
        );
        assert_eq!(
            Address::parse("unix:///tmp/a.sock"),
            Ok(Address::Unix("/tmp/a.sock".into()))
        );
        assert!(Address::parse("unix:").is_err());
        assert!(Address::parse("localhost").unwrap_err().contains("no port"));
        assert!(Address::parse("ftp://x:1").unwrap_err().contains("ftp"));
    }
}
