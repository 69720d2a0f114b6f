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
pub mod route_guide;

/// Reads `--addr HOST:PORT` (or `--addr=HOST:PORT`) from the command line.
pub fn addr_flag(default: &str) -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    let mut addr = default.to_owned();
    while let Some(arg) = args.next() {
        if arg == "--addr" {
            addr = args.next().ok_or("--addr needs a value")?;
        } else if let Some(v) = arg.strip_prefix("--addr=") {
            addr = v.to_owned();
        } else if arg != "--name" && !arg.starts_with("--name=") {
            // --name is read by the client only.
            if !arg.starts_with("--") {
                continue;
            }
            return Err(format!("unknown flag {arg}"));
        }
    }
    Ok(addr)
}
