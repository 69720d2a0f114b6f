//! A TCP proxy on 127.0.0.1 that can simulate a dead link, for end-to-end tests of
//! keepalive (detecting a peer that stops answering).
//!
//! While forwarding, every byte read from one side is written to the other. After
//! [`Proxy::stall`] the proxy stops *reading* from both sides and forwards nothing:
//! the sockets stay open (no FIN, no RST), the kernel buffers fill up and the
//! peers' writes eventually block, as they would behind a link that silently
//! drops every packet. Bytes the proxy had already read when the stall began are
//! held, not forwarded, until [`Proxy::resume`]. A FIN or RST from either peer is
//! not noticed while stalled either (noticing it would need a read).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Size of the copy buffer of each direction of each connection.
const BUF_SIZE: usize = 16 * 1024;

/// A TCP proxy between a test client and a server, on 127.0.0.1, that forwards bytes
/// both ways until told to stall; then it keeps the sockets open but forwards nothing
/// (a peer behind a dead link: no FIN, no RST, just silence).
///
/// While stalled the proxy does not read at all (see the module docs), so the peers'
/// kernel buffers fill and their writes block, as behind a real dead link.
/// Connections accepted while stalled are still accepted and connected upstream, and
/// stay silent until [`resume`](Proxy::resume).
///
/// Dropping the proxy closes the listener and aborts every forwarding task, which
/// closes all proxied sockets on both sides.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    /// `true` while stalled; every forwarding task holds a receiver.
    stalled: watch::Sender<bool>,
    connections: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
    /// One task per proxied connection (both directions).
    forwarders: Arc<Mutex<JoinSet<()>>>,
}

impl Proxy {
    /// Starts listening on 127.0.0.1:0 and forwarding every accepted connection to `upstream`.
    ///
    /// Each accepted connection gets its own connection to `upstream`; if that connect
    /// fails, the accepted connection is closed. Must be called within a Tokio runtime.
    ///
    /// # Panics
    ///
    /// If no listener can be bound on 127.0.0.1.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("proxy: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("proxy: listener address");
        let (stalled, _) = watch::channel(false);
        let connections = Arc::new(AtomicUsize::new(0));
        let forwarders = Arc::new(Mutex::new(JoinSet::new()));
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            stalled.subscribe(),
            Arc::clone(&connections),
            Arc::clone(&forwarders),
        ));
        Proxy {
            addr,
            stalled,
            connections,
            accept,
            forwarders,
        }
    }

    /// The address clients dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, nothing is read from either side or forwarded (existing and new
    /// connections); sockets stay open.
    ///
    /// Precisely: from now on the proxy reads nothing from either side of any
    /// connection, existing or new, and forwards nothing, not even bytes it had read
    /// before this call but not yet written; those are held until
    /// [`resume`](Proxy::resume). Takes effect at once, also for a forwarding task
    /// that is waiting in a read or a write. Idempotent.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Forward again.
    ///
    /// Held bytes are written first, then reading resumes on both sides of every
    /// connection. Idempotent.
    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }

    /// Cuts every proxied connection now: both sockets of each are closed (the peers
    /// see the connection end, as when a middlebox drops it). New connections are still
    /// accepted and forwarded.
    pub fn cut(&self) {
        let mut forwarders = match self.forwarders.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        forwarders.abort_all();
    }

    /// Connections accepted so far.
    ///
    /// Counts every accepted client connection, including those accepted while
    /// stalled, those whose upstream connect failed, and those already closed.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    /// Stops the accept loop and aborts all forwarding tasks, closing the listener
    /// and every proxied socket.
    fn drop(&mut self) {
        self.accept.abort();
        // A poisoned lock only means a panic elsewhere; abort the tasks regardless.
        let mut forwarders = match self.forwarders.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        forwarders.abort_all();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    stalled: watch::Receiver<bool>,
    connections: Arc<AtomicUsize>,
    forwarders: Arc<Mutex<JoinSet<()>>>,
) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            // E.g. EMFILE or a connection reset before accept: keep serving.
            Err(_) => {
                tokio::task::yield_now().await;
                continue;
            }
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let mut set = match forwarders.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Reap finished connections so the set stays as small as the live ones.
        while set.try_join_next().is_some() {}
        set.spawn(forward(client, upstream, stalled.clone()));
    }
}

/// Proxies one connection until both directions have ended or either fails.
async fn forward(client: TcpStream, upstream: SocketAddr, stalled: watch::Receiver<bool>) {
    let server = match TcpStream::connect(upstream).await {
        Ok(server) => server,
        // Dropping `client` closes it: the test sees the upstream is unreachable.
        Err(_) => return,
    };
    // Small frames (HTTP/2 PINGs) must not wait for Nagle.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // On an error in one direction the other is dropped too, closing both sockets.
    let _ = tokio::try_join!(
        pump(client_read, server_write, stalled.clone()),
        pump(server_read, client_write, stalled),
    );
}

/// Copies `from` to `to` while not stalled; at end of input, shuts down `to`'s write
/// side (passing the half-close on) and returns.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        if !until_flowing(&mut stalled).await {
            return Ok(());
        }
        // `biased`: a stall is seen before any read that becomes ready at the same
        // time. Cancelling a pending TcpStream read consumes nothing.
        let n = tokio::select! {
            biased;
            live = until_stalled(&mut stalled) => {
                if !live {
                    return Ok(());
                }
                continue;
            }
            read = from.read(&mut buf) => read?,
        };
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        let mut written = 0;
        while written < n {
            if !until_flowing(&mut stalled).await {
                return Ok(());
            }
            // A write that is still pending when a stall begins is cancelled, which
            // writes nothing; the rest of the chunk waits for resume().
            tokio::select! {
                biased;
                live = until_stalled(&mut stalled) => {
                    if !live {
                        return Ok(());
                    }
                }
                wrote = to.write(&buf[written..n]) => match wrote? {
                    0 => return Err(io::ErrorKind::WriteZero.into()),
                    w => written += w,
                },
            }
        }
    }
}

/// Waits until the proxy is not stalled; `false` if the proxy is gone.
async fn until_flowing(stalled: &mut watch::Receiver<bool>) -> bool {
    stalled.wait_for(|s| !*s).await.is_ok()
}

/// Waits until the proxy is stalled; `false` if the proxy is gone.
async fn until_stalled(stalled: &mut watch::Receiver<bool>) -> bool {
    stalled.wait_for(|s| *s).await.is_ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Bound of every wait that is expected to succeed.
    const STEP: Duration = Duration::from_secs(5);
    /// How long a stalled proxy must stay silent.
    const SILENCE: Duration = Duration::from_millis(300);

    /// An upstream that echoes every connection; returns its address.
    async fn echo_server() -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((mut sock, _)) = listener.accept().await {
                conns.spawn(async move {
                    let (mut r, mut w) = sock.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        (addr, task)
    }

    async fn connect(addr: SocketAddr) -> TcpStream {
        tokio::time::timeout(STEP, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect")
    }

    async fn send(sock: &mut TcpStream, bytes: &[u8]) {
        tokio::time::timeout(STEP, sock.write_all(bytes))
            .await
            .expect("write timed out")
            .expect("write");
    }

    /// Reads exactly `len` bytes within `within`; `None` if they did not all arrive.
    async fn recv(sock: &mut TcpStream, len: usize, within: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        match tokio::time::timeout(within, sock.read_exact(&mut buf)).await {
            Ok(read) => {
                read.expect("read");
                Some(buf)
            }
            Err(_) => None,
        }
    }

    #[tokio::test]
    async fn forwards_stalls_and_resumes() {
        let (upstream, _echo) = echo_server().await;
        let proxy = Proxy::start(upstream).await;
        assert!(proxy.addr().ip().is_loopback());

        let mut client = connect(proxy.addr()).await;
        send(&mut client, b"hello").await;
        assert_eq!(
            recv(&mut client, 5, STEP).await.as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(proxy.connections(), 1);

        // Both forwarding tasks are now blocked in a read: the stall must still hold.
        proxy.stall();
        send(&mut client, b"during stall").await;
        assert_eq!(
            recv(&mut client, 1, SILENCE).await,
            None,
            "echoed while stalled"
        );

        // A connection made while stalled is accepted but silent too.
        let mut late = connect(proxy.addr()).await;
        send(&mut late, b"late").await;
        assert_eq!(
            recv(&mut late, 1, SILENCE).await,
            None,
            "new connection echoed while stalled"
        );

        proxy.resume();
        assert_eq!(
            recv(&mut client, 12, STEP).await.as_deref(),
            Some(&b"during stall"[..])
        );
        assert_eq!(
            recv(&mut late, 4, STEP).await.as_deref(),
            Some(&b"late"[..])
        );
        assert_eq!(proxy.connections(), 2);

        // Forwarding goes on as before.
        send(&mut client, b"again").await;
        assert_eq!(
            recv(&mut client, 5, STEP).await.as_deref(),
            Some(&b"again"[..])
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forwards_more_than_the_buffers_hold() {
        let (upstream, _echo) = echo_server().await;
        let proxy = Proxy::start(upstream).await;
        let client = connect(proxy.addr()).await;
        let (mut r, mut w) = client.into_split();
        let data: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move { w.write_all(&sent).await.map(|()| w) });
        let mut back = vec![0u8; data.len()];
        tokio::time::timeout(STEP, r.read_exact(&mut back))
            .await
            .expect("echo of 4 MiB timed out")
            .expect("read");
        assert!(back == data, "bytes changed on the way");
        let _w = tokio::time::timeout(STEP, writer)
            .await
            .expect("writer timed out")
            .expect("writer panicked")
            .expect("write");
    }

    #[tokio::test]
    async fn stalled_proxy_keeps_sockets_open_and_passes_half_close_after_resume() {
        let (upstream, _echo) = echo_server().await;
        let proxy = Proxy::start(upstream).await;
        let mut client = connect(proxy.addr()).await;
        send(&mut client, b"x").await;
        assert_eq!(recv(&mut client, 1, STEP).await.as_deref(), Some(&b"x"[..]));

        proxy.stall();
        // The client half-closes: while stalled nobody reads the FIN, so nothing
        // comes back, neither data nor EOF.
        tokio::time::timeout(STEP, client.shutdown())
            .await
            .expect("shutdown timed out")
            .expect("shutdown");
        let mut byte = [0u8; 1];
        assert!(
            tokio::time::timeout(SILENCE, client.read(&mut byte))
                .await
                .is_err(),
            "stalled proxy answered"
        );

        // After resume the FIN travels to the echo server, which closes, and the
        // proxy passes that EOF back.
        proxy.resume();
        let n = tokio::time::timeout(STEP, client.read(&mut byte))
            .await
            .expect("no EOF after resume")
            .expect("read");
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn drop_closes_listener_and_connections() {
        let (upstream, _echo) = echo_server().await;
        let proxy = Proxy::start(upstream).await;
        let addr = proxy.addr();
        let mut client = connect(addr).await;
        send(&mut client, b"x").await;
        assert_eq!(recv(&mut client, 1, STEP).await.as_deref(), Some(&b"x"[..]));
        proxy.stall();

        drop(proxy);
        // The proxied socket is closed even though it was stalled: EOF or reset.
        let mut byte = [0u8; 1];
        match tokio::time::timeout(STEP, client.read(&mut byte))
            .await
            .expect("socket still open after drop")
        {
            Ok(n) => assert_eq!(n, 0),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
        }
        // And the listener is gone (the aborted accept task dropped it).
        let refused = tokio::time::timeout(STEP, async {
            loop {
                if TcpStream::connect(addr).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(refused.is_ok(), "listener still accepting after drop");
    }

    #[tokio::test]
    async fn unreachable_upstream_closes_client() {
        // A port that was just free: nothing listens there.
        let upstream = {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
            l.local_addr().unwrap()
        };
        let proxy = Proxy::start(upstream).await;
        let mut client = connect(proxy.addr()).await;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(STEP, client.read(&mut byte))
            .await
            .expect("client not closed");
        assert!(matches!(read, Ok(0) | Err(_)));
        assert_eq!(proxy.connections(), 1);
    }
}
