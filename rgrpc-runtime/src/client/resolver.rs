//! Name resolution: a target string to the addresses a channel connects to (grpc's
//! `doc/naming.md`).
//!
//! Schemes built in: `dns:[//authority/]host[:port]` (the default, so `host:port` and
//! `http://host:port` mean `dns:host:port`; the port defaults to 443), `ipv4:` and
//! `ipv6:` address lists, and `unix:path` / `unix:///absolute/path`. Other discovery
//! systems plug in through [`ResolverBuilder`], registered globally by scheme
//! ([`register_resolver`]) or given to one channel; [`ManualResolver`] is one whose
//! addresses the caller pushes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::status::Status;
use crate::transport::io::Address;

/// A running resolution for one channel. Dropping it stops it.
pub trait Resolver: Send + Sync + 'static {
    /// A hint that the addresses may be stale (a connection was lost): resolve again
    /// soon. Resolvers may rate-limit it (the DNS resolver waits at least 30 s between
    /// resolutions, as grpc-go does).
    fn resolve_now(&self) {}
}

/// Makes resolvers for one target scheme.
pub trait ResolverBuilder: Send + Sync + 'static {
    /// The scheme this builder serves, e.g. `dns` or `k8s`.
    fn scheme(&self) -> &str;

    /// Starts resolving `endpoint` (the target without `scheme:`), reporting every
    /// address list (and error) to `sink`, now and whenever it changes.
    fn build(&self, endpoint: &str, sink: AddressSink) -> Result<Box<dyn Resolver>, Status>;
}

type Update = dyn Fn(Result<Vec<Address>, Status>) + Send + Sync;

/// Where a resolver reports addresses: cheap to clone, and harmless to use after the
/// channel is gone.
#[derive(Clone)]
pub struct AddressSink {
    update: Arc<Update>,
}

impl std::fmt::Debug for AddressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddressSink")
    }
}

impl AddressSink {
    pub(crate) fn new(
        update: impl Fn(Result<Vec<Address>, Status>) + Send + Sync + 'static,
    ) -> AddressSink {
        AddressSink {
            update: Arc::new(update),
        }
    }

    /// Reports the current addresses, each `host:port`, `[v6]:port` or `unix:path`.
    /// An address that does not parse makes the whole update an error naming it.
    pub fn update<S: AsRef<str>>(&self, addresses: &[S]) {
        let parsed: Result<Vec<Address>, Status> = addresses
            .iter()
            .map(|a| Address::parse(a.as_ref()).map_err(Status::invalid_argument))
            .collect();
        (self.update)(parsed);
    }

    /// Reports that resolution failed; the channel keeps its last addresses, if any.
    pub fn error(&self, status: Status) {
        (self.update)(Err(status));
    }

    fn addresses(&self, addresses: Vec<Address>) {
        (self.update)(Ok(addresses));
    }
}

fn registry() -> &'static RwLock<HashMap<String, Arc<dyn ResolverBuilder>>> {
    static REGISTRY: OnceLock<RwLock<HashMap<String, Arc<dyn ResolverBuilder>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Registers `builder` for its scheme for every channel made afterwards (grpc-go's
/// `resolver.Register`); replaces an earlier one of the same scheme. The built-in
/// schemes (`dns`, `ipv4`, `ipv6`, `unix`) cannot be replaced.
pub fn register_resolver(builder: impl ResolverBuilder) {
    let builder: Arc<dyn ResolverBuilder> = Arc::new(builder);
    registry()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(builder.scheme().to_owned(), builder);
}

/// A parsed target: its scheme and the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub scheme: String,
    pub endpoint: String,
}

impl Target {
    /// Splits `scheme:endpoint`; a target without a known-looking scheme is `dns:`
    /// (naming.md: "If no scheme is specified, the default is dns"). `http://x` is
    /// `dns:x`, as grpc-go and tonic users write it.
    pub(crate) fn parse(target: &str, custom: Option<&str>) -> Target {
        if let Some(rest) = target.strip_prefix("http://") {
            return Target::dns(rest.trim_end_matches('/'));
        }
        if let Some((scheme, rest)) = target.split_once(':') {
            let known = matches!(scheme, "dns" | "ipv4" | "ipv6" | "unix")
                || (cfg!(feature = "fuzzing") && scheme == "memory")
                || custom == Some(scheme)
                || registry()
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains_key(scheme);
            if known {
                return Target {
                    scheme: scheme.to_owned(),
                    endpoint: rest.to_owned(),
                };
            }
        }
        Target::dns(target)
    }

    fn dns(endpoint: &str) -> Target {
        Target {
            scheme: "dns".into(),
            endpoint: endpoint.to_owned(),
        }
    }

    /// The `:authority` calls on this target carry (naming.md: the endpoint for dns,
    /// `localhost` for Unix sockets).
    pub(crate) fn authority(&self) -> http::uri::Authority {
        let host = match self.scheme.as_str() {
            "dns" => dns_host_port(&self.endpoint)
                .ok()
                .map(|(h, p)| join_host_port(&h, p)),
            "ipv4" | "ipv6" => self.endpoint.split(',').next().map(str::to_owned),
            _ => None,
        };
        host.and_then(|h| h.parse().ok())
            .unwrap_or_else(|| http::uri::Authority::from_static("localhost"))
    }
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// naming.md: `dns:[//authority/]host[:port]`, port 443 by default. The DNS server
/// authority is accepted and ignored (the system resolver is used).
fn dns_host_port(endpoint: &str) -> Result<(String, u16), String> {
    let rest = match endpoint.strip_prefix("//") {
        Some(rest) => rest.split_once('/').map_or("", |(_, r)| r),
        None => endpoint,
    };
    host_port(rest, 443)
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
fn host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || format!("bad address {s:?}");
    if s.is_empty() {
        return Err(bad());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        return Ok((host.to_owned(), port));
    }
    if s.matches(':').count() > 1 {
        // A bare IPv6 address, no port.
        return Ok((s.to_owned(), default_port));
    }
    match s.rsplit_once(':') {
        Some((host, port)) => Ok((host.to_owned(), port.parse().map_err(|_| bad())?)),
        None => Ok((s.to_owned(), default_port)),
    }
}

/// The resolver for a target: built-in schemes, then `custom`, then the registry.
pub(crate) fn build(
    target: &Target,
    custom: Option<&Arc<dyn ResolverBuilder>>,
    sink: AddressSink,
) -> Result<Box<dyn Resolver>, Status> {
    let fixed = |addresses: Result<Vec<Address>, String>| -> Result<Box<dyn Resolver>, Status> {
        let addresses = addresses.map_err(Status::invalid_argument)?;
        sink.addresses(addresses);
        Ok(Box::new(Fixed))
    };
    match target.scheme.as_str() {
        "dns" => {
            let (host, port) = dns_host_port(&target.endpoint).map_err(Status::invalid_argument)?;
            Ok(Box::new(DnsResolver::start(host, port, sink)))
        }
        "ipv4" | "ipv6" => fixed(
            target
                .endpoint
                .split(',')
                .map(|a| {
                    let (host, port) = host_port(a, 443)?;
                    Address::parse(&join_host_port(&host, port))
                })
                .collect(),
        ),
        "unix" => fixed(Address::parse(&format!("unix:{}", target.endpoint)).map(|a| vec![a])),
        #[cfg(feature = "fuzzing")]
        "memory" => fixed(Address::parse(&format!("memory:{}", target.endpoint)).map(|a| vec![a])),
        scheme => {
            let builder = match custom.filter(|b| b.scheme() == scheme) {
                Some(builder) => builder.clone(),
                None => registry()
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(scheme)
                    .cloned()
                    .ok_or_else(|| {
                        Status::invalid_argument(format!("no resolver for scheme {scheme:?}"))
                    })?,
            };
            builder.build(&target.endpoint, sink)
        }
    }
}

/// Addresses known at build time (ipv4:, ipv6:, unix:).
struct Fixed;

impl Resolver for Fixed {}

/// grpc-go's minimum interval between two DNS resolutions.
const DNS_MIN_INTERVAL: Duration = Duration::from_secs(30);

/// Resolves `host:port` with the system resolver (every A and AAAA address) when it
/// starts and again on `resolve_now`, at most once per [`DNS_MIN_INTERVAL`].
struct DnsResolver {
    trigger: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl DnsResolver {
    fn start(host: String, port: u16, sink: AddressSink) -> DnsResolver {
        let trigger = Arc::new(tokio::sync::Notify::new());
        let wake = trigger.clone();
        let task = tokio::spawn(async move {
            let mut last: Option<Instant> = None;
            loop {
                if let Some(last) = last {
                    wake.notified().await;
                    tokio::time::sleep_until((last + DNS_MIN_INTERVAL).into()).await;
                }
                last = Some(Instant::now());
                match tokio::net::lookup_host((host.as_str(), port)).await {
                    Ok(found) => {
                        let mut addresses: Vec<Address> = Vec::new();
                        for addr in found {
                            let address = Address::Tcp(addr.to_string());
                            if !addresses.contains(&address) {
                                addresses.push(address);
                            }
                        }
                        sink.addresses(addresses);
                    }
                    Err(e) => {
                        sink.error(Status::unavailable(format!("resolving {host}:{port}: {e}")))
                    }
                }
            }
        });
        DnsResolver { trigger, task }
    }
}

impl Resolver for DnsResolver {
    fn resolve_now(&self) {
        self.trigger.notify_one();
    }
}

impl Drop for DnsResolver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A resolver whose addresses the caller sets (grpc-go's `manual` resolver): for
/// tests, and for discovery done by the application. Give it to a channel with
/// `Channel::builder(target).resolver(manual.clone())` and a target of its scheme.
#[derive(Clone, Debug)]
pub struct ManualResolver {
    scheme: String,
    inner: Arc<Mutex<ManualInner>>,
}

#[derive(Debug, Default)]
struct ManualInner {
    sinks: Vec<AddressSink>,
    addresses: Option<Vec<String>>,
}

impl ManualResolver {
    /// A manual resolver for targets `scheme:anything`.
    pub fn new(scheme: &str) -> ManualResolver {
        ManualResolver {
            scheme: scheme.to_owned(),
            inner: Arc::default(),
        }
    }

    /// Sets the addresses (`host:port` or `unix:path`) of every channel using it.
    pub fn update<S: AsRef<str>>(&self, addresses: &[S]) {
        let addresses: Vec<String> = addresses.iter().map(|a| a.as_ref().to_owned()).collect();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for sink in &inner.sinks {
            sink.update(&addresses);
        }
        inner.addresses = Some(addresses);
    }
}

impl ResolverBuilder for ManualResolver {
    fn scheme(&self) -> &str {
        &self.scheme
    }

    fn build(&self, _endpoint: &str, sink: AddressSink) -> Result<Box<dyn Resolver>, Status> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(addresses) = &inner.addresses {
            sink.update(addresses);
        }
        inner.sinks.push(sink);
        Ok(Box::new(Fixed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_the_naming_document() {
        let t = |s| Target::parse(s, None);
        assert_eq!(t("localhost:50051"), Target::dns("localhost:50051"));
        assert_eq!(t("http://127.0.0.1:1/"), Target::dns("127.0.0.1:1"));
        assert_eq!(t("dns:foo:80").scheme, "dns");
        assert_eq!(t("ipv4:1.2.3.4:5,6.7.8.9:10").scheme, "ipv4");
        assert_eq!(t("unix:/tmp/s").endpoint, "/tmp/s");
        assert_eq!(
            t("custom:x"),
            Target::dns("custom:x"),
            "unknown scheme: a dns name"
        );
        assert_eq!(Target::parse("custom:x", Some("custom")).scheme, "custom");
        assert_eq!(t("dns:foo:80").authority().as_str(), "foo:80");
        assert_eq!(t("dns://8.8.8.8/foo").authority().as_str(), "foo:443");
        assert_eq!(t("unix:/tmp/s").authority().as_str(), "localhost");
    }

    #[test]
    fn host_and_port_forms() {
        assert_eq!(dns_host_port("foo"), Ok(("foo".into(), 443)));
        assert_eq!(dns_host_port("foo:8080"), Ok(("foo".into(), 8080)));
        assert_eq!(dns_host_port("//1.1.1.1/foo:1"), Ok(("foo".into(), 1)));
        assert_eq!(host_port("[::1]:5", 443), Ok(("::1".into(), 5)));
        assert_eq!(host_port("::1", 443), Ok(("::1".into(), 443)));
        assert!(host_port("foo:bar", 443).is_err());
        assert!(host_port("", 443).is_err());
        assert!(host_port("[::1", 443).is_err());
    }

    #[test]
    fn fixed_lists_report_every_address() {
        let got = Arc::new(Mutex::new(None));
        let put = got.clone();
        let sink = AddressSink::new(move |r| *put.lock().unwrap() = Some(r));
        let target = Target::parse("ipv4:127.0.0.1:1,127.0.0.2", None);
        build(&target, None, sink.clone()).unwrap();
        let addresses = got.lock().unwrap().take().unwrap().unwrap();
        assert_eq!(
            addresses,
            vec![
                Address::Tcp("127.0.0.1:1".into()),
                Address::Tcp("127.0.0.2:443".into())
            ]
        );
        let target = Target::parse("ipv6:[::1]:7", None);
        build(&target, None, sink.clone()).unwrap();
        let addresses = got.lock().unwrap().take().unwrap().unwrap();
        assert_eq!(addresses, vec![Address::Tcp("[::1]:7".into())]);
        sink.update(&["not an address"]);
        assert!(got.lock().unwrap().take().unwrap().is_err());
        assert!(build(&Target::parse("ipv4:x:y", None), None, sink).is_err());
    }

    #[tokio::test]
    async fn dns_resolves_localhost() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = AddressSink::new(move |r| {
            let _ = tx.send(r);
        });
        let _resolver = build(&Target::parse("localhost:50051", None), None, sink).unwrap();
        let addresses = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            addresses
                .iter()
                .any(|a| *a == Address::Tcp("127.0.0.1:50051".into())),
            "{addresses:?}"
        );
    }
}
