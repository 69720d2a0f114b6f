//! The Rust side of gRPC's interop suite (grpc/grpc `doc/interop-test-descriptions.md`):
//! a `grpc.testing.TestService` server ([`server`]) and the interop client's test cases
//! ([`client`]), run by the `rgrpc-interop-server` and `rgrpc-interop-client` binaries
//! and judged against grpcio by `tests/interop/run.py`.

#![deny(missing_docs)]

pub mod pb {
    //! Generated from proto/grpc/testing/{test,messages,empty}.proto.
    #![allow(missing_docs)]
    rgrpc_runtime::include_proto!("grpc.testing");
}

mod cases;
pub mod client;
pub mod flags;
pub mod server;

pub mod testdata {
    //! The interop test credentials (interop/testdata, see its README): a test CA,
    //! `server1` for `*.test.google.fr` and a client certificate. TEST ONLY.

    /// The test CA (`--use_test_ca=true`).
    pub const CA_PEM: &[u8] = include_bytes!("../testdata/ca.pem");
    /// The server certificate `--use_tls=true` serves without cert flags.
    pub const SERVER1_PEM: &[u8] = include_bytes!("../testdata/server1.pem");
    /// Its private key.
    pub const SERVER1_KEY: &[u8] = include_bytes!("../testdata/server1.key");
    /// A client certificate signed by the test CA, for mTLS tests.
    pub const CLIENT_PEM: &[u8] = include_bytes!("../testdata/client.pem");
    /// Its private key.
    pub const CLIENT_KEY: &[u8] = include_bytes!("../testdata/client.key");
    /// The name interop clients check server1 against (`--server_host_override`).
    pub const SERVER_HOST_OVERRIDE: &str = "foo.test.google.fr";
}
