//! The golden files compile against the runtime: each variant is included in a
//! module tree that mirrors the protobuf packages, so prost's relative
//! cross-package paths (`super::super::codegen::common::Id`) resolve.
//!
//! If this fails after a runtime change, either the runtime broke the contract
//! in `docs/generated-code.md` or the generator must follow it (then
//! regenerate the goldens: `RGRPC_BLESS=1 cargo test -p protoc-gen-rgrpc --test golden`).
#![deny(warnings)]
// rpc `FromRoot` becomes `fn from_root(&self, ..)`: clippy's naming advice
// does not apply to names that come from a .proto file.
#![allow(clippy::wrong_self_convention)]

/// All packages, default options (messages, client and server).
#[allow(dead_code)]
mod default {
    include!("golden/default/_.rs");
    pub mod a {
        pub mod b {
            pub mod c {
                include!("golden/default/a.b.c.rs");
            }
        }
    }
    pub mod codegen {
        pub mod common {
            include!("golden/default/codegen.common.rs");
        }
        pub mod docs {
            include!("golden/default/codegen.docs.rs");
        }
        pub mod keywords {
            include!("golden/default/codegen.keywords.rs");
        }
        pub mod multi {
            include!("golden/default/codegen.multi.rs");
        }
        pub mod wkt {
            include!("golden/default/codegen.wkt.rs");
        }
    }
    pub mod helloworld {
        include!("golden/default/helloworld.rs");
    }
    pub mod routeguide {
        include!("golden/default/routeguide.rs");
    }
}

/// The same packages from `messages=false` service code next to
/// `client=false,server=false` message code: the service code names the
/// messages by the paths prost gives them.
#[allow(dead_code)]
mod split {
    include!("golden/messages_only/_.rs");
    include!("golden/services_only/_.rs");
    pub mod a {
        pub mod b {
            pub mod c {
                include!("golden/messages_only/a.b.c.rs");
                include!("golden/services_only/a.b.c.rs");
            }
        }
    }
    pub mod codegen {
        pub mod common {
            include!("golden/messages_only/codegen.common.rs");
        }
        pub mod docs {
            include!("golden/messages_only/codegen.docs.rs");
            include!("golden/services_only/codegen.docs.rs");
        }
        pub mod keywords {
            include!("golden/messages_only/codegen.keywords.rs");
            include!("golden/services_only/codegen.keywords.rs");
        }
        pub mod multi {
            include!("golden/messages_only/codegen.multi.rs");
            include!("golden/services_only/codegen.multi.rs");
        }
        pub mod wkt {
            include!("golden/messages_only/codegen.wkt.rs");
            include!("golden/services_only/codegen.wkt.rs");
        }
    }
    pub mod helloworld {
        include!("golden/messages_only/helloworld.rs");
        include!("golden/services_only/helloworld.rs");
    }
    pub mod routeguide {
        include!("golden/messages_only/routeguide.rs");
        include!("golden/services_only/routeguide.rs");
    }
}

/// `runtime_path=crate::runtime` (client only) resolves through this module.
mod runtime {
    pub use rgrpc_runtime::*;
}

#[allow(dead_code)]
mod client_only {
    pub mod routeguide {
        include!("golden/client_only/routeguide.rs");
    }
}

#[allow(dead_code)]
mod server_only {
    pub mod routeguide {
        include!("golden/server_only/routeguide.rs");
    }
}

use default::helloworld::{
    GREETER_SAY_HELLO_FULL_METHOD_NAME, GREETER_SERVICE_DESC, GreeterClient, GreeterServer,
    HelloReply, HelloRequest,
};

/// A server that implements nothing: every method has a default body.
struct Unimplemented;
impl GreeterServer for Unimplemented {}
impl default::routeguide::RouteGuideServer for Unimplemented {}
impl default::codegen::keywords::ImplServer for Unimplemented {}
impl default::codegen::multi::GammaServer for Unimplemented {}

/// The client trait can be implemented by a mock, without a channel.
struct MockGreeter;
impl GreeterClient for MockGreeter {
    async fn say_hello(
        &self,
        request: rgrpc_runtime::Request<HelloRequest>,
    ) -> Result<rgrpc_runtime::Response<HelloReply>, rgrpc_runtime::Status> {
        let _ = request;
        Err(rgrpc_runtime::Status::unimplemented("mock"))
    }
}

#[test]
fn descriptors_and_constants() {
    assert_eq!(
        GREETER_SAY_HELLO_FULL_METHOD_NAME,
        "/helloworld.Greeter/SayHello"
    );
    assert_eq!(GREETER_SERVICE_DESC.service_name, "helloworld.Greeter");
    assert_eq!(GREETER_SERVICE_DESC.methods.len(), 1);
    assert_eq!(GREETER_SERVICE_DESC.metadata, "helloworld/helloworld.proto");
    let route_guide = &default::routeguide::ROUTE_GUIDE_SERVICE_DESC;
    assert_eq!(route_guide.methods.len(), 1);
    let streams: Vec<(&str, bool, bool)> = route_guide
        .streams
        .iter()
        .map(|s| (s.stream_name, s.client_streams, s.server_streams))
        .collect();
    assert_eq!(
        streams,
        [
            ("ListFeatures", false, true),
            ("RecordRoute", true, false),
            ("RouteChat", true, true),
        ]
    );
    assert_eq!(default::ROOT_SERVICE_DESC.service_name, "Root");
    let _ = MockGreeter;
}

#[test]
fn services_register_on_a_server() {
    let mut server = rgrpc_runtime::Server::new();
    default::helloworld::register_greeter_server(&mut server, Unimplemented);
    default::routeguide::register_route_guide_server(&mut server, Unimplemented);
    default::codegen::keywords::register_impl_server(&mut server, Unimplemented);
    default::codegen::multi::register_gamma_server(&mut server, Unimplemented);
}

/// Every default golden file is included above, so a new package cannot be
/// forgotten here.
#[test]
fn every_default_golden_file_is_compiled() {
    let source = include_str!("compiles.rs");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/default");
    for entry in std::fs::read_dir(dir).expect("tests/golden/default exists") {
        let name = entry.expect("readable entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            source.contains(&format!("\"golden/default/{name}\"")),
            "tests/compiles.rs does not include golden/default/{name}"
        );
    }
}
