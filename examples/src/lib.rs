//! Shared code of the examples: generated packages, the services, and flag parsing.

pub mod helloworld {
    //! Generated from proto/helloworld/helloworld.proto.
    #![allow(missing_docs)]
    rgrpc_runtime::include_proto!("helloworld");
}

pub mod routeguide {
    //! Generated from proto/routeguide/route_guide.proto.
    #![allow(missing_docs)]
    rgrpc_runtime::include_proto!("routeguide");
}

pub mod demo;
pub mod greeter;
pub mod interceptors;
pub mod route_guide;
pub mod stats;

/// What `--addr` takes, for usage and error messages.
pub const ADDR_USAGE: &str = "--addr HOST:PORT | unix:PATH (unix:/abs/path, unix:rel/path)";

/// Reads `--addr ADDR` (or `--addr=ADDR`) from the command line: `host:port` for TCP,
/// or `unix:path` for a Unix domain socket (grpc's naming, doc/naming.md). The value
/// is passed as is to `Listener::bind` or `Channel::connect`, which check it.
pub fn addr_flag(default: &str) -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    let mut addr = default.to_owned();
    while let Some(arg) = args.next() {
        if arg == "--addr" {
            addr = args
                .next()
                .ok_or_else(|| format!("--addr needs a value: {ADDR_USAGE}"))?;
        } else if let Some(v) = arg.strip_prefix("--addr=") {
            addr = v.to_owned();
        } else if arg != "--name" && !arg.starts_with("--name=") {
            // --name is read by the client only.
            if !arg.starts_with("--") {
                continue;
            }
            return Err(format!("unknown flag {arg} (flags: {ADDR_USAGE})"));
        }
    }
    Ok(addr)
}
