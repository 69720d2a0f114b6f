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
            // Only the descriptor, which the other packages' ServiceDescs name.
            include!("golden/services_only/codegen.common.rs");
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

/// The `configured` variant: prost-build options from a plugin parameter
/// string (`CONFIGURED` in tests/golden.rs). `codegen.common` is an extern
/// path to `crate::default::codegen::common`, so messages and service code
/// name the types generated there. Its module tree is the generated
/// `include_file=_includes.rs`, which includes the others by relative paths,
/// as protoc's output directory would hold them.
#[allow(dead_code)]
mod configured {
    include!("golden/configured/_includes.rs");

    /// `skip_debug=.helloworld.HelloReply` leaves this to us.
    impl ::core::fmt::Debug for helloworld::HelloReply {
        fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
            f.write_str("HelloReply(..)")
        }
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
impl configured::codegen::multi::BetaServer for Unimplemented {}

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

#[test]
fn configured_options_take_effect() {
    use configured::helloworld::{HelloReply, HelloRequest};
    use configured::routeguide::{Feature, Point};

    // `type_attribute=.helloworld=#[derive(PartialOrd)]`.
    let (a, b) = (
        HelloRequest { name: "a".into() },
        HelloRequest { name: "b".into() },
    );
    assert!(a < b);
    // `type_attribute=.helloworld.HelloRequest=#[derive(serde::Serialize\, ..)]`.
    let json = serde_json::to_string(&a).expect("serializes");
    assert_eq!(json, r#"{"name":"a"}"#);
    let back: HelloRequest = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, a);
    assert_eq!(format!("{:?}", HelloReply::default()), "HelloReply(..)");
    // `boxed=.routeguide.Feature.location`.
    let feature = Feature {
        name: String::new(),
        location: Some(Box::new(Point::default())),
    };
    assert!(feature.location.is_some());
    let mut server = rgrpc_runtime::Server::new();
    configured::codegen::multi::register_beta_server(&mut server, Unimplemented);
    let _ = MockBeta;
}

/// `extern_path=.codegen.common=crate::default::codegen::common`: the
/// configured service takes `default`'s `Page`, so this impl only compiles if
/// the service code followed the extern path.
struct MockBeta;
impl configured::codegen::multi::BetaClient for MockBeta {
    async fn unary(
        &self,
        request: rgrpc_runtime::Request<default::codegen::common::Page>,
    ) -> Result<rgrpc_runtime::Response<configured::codegen::multi::Reply>, rgrpc_runtime::Status>
    {
        let _ = request;
        Err(rgrpc_runtime::Status::unimplemented("mock"))
    }

    async fn bidi(
        &self,
        options: rgrpc_runtime::CallOptions,
    ) -> Result<
        rgrpc_runtime::BidiStreamingCall<
            default::codegen::common::Envelope,
            default::codegen::common::Envelope,
        >,
        rgrpc_runtime::Status,
    > {
        let _ = options;
        Err(rgrpc_runtime::Status::unimplemented("mock"))
    }
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
