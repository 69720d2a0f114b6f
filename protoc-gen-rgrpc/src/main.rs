//! `protoc-gen-rgrpc`: the protoc plugin. Reads a `CodeGeneratorRequest` on
//! stdin and writes a `CodeGeneratorResponse` on stdout.

use std::io::{Read, Write};
use std::process::ExitCode;

const USAGE: &str = "protoc-gen-rgrpc: a protoc plugin; protoc runs it, with no arguments.
usage: protoc --plugin=protoc-gen-rgrpc=PATH --rgrpc_out=OUT_DIR \\
              [--rgrpc_opt=messages=true|false,client=true|false,server=true|false,runtime_path=PATH,bytes=.PROTO_PATH...] \\
              -I INCLUDE file.proto...";

fn main() -> ExitCode {
    // protoc passes no arguments; anyone else gets the usage instead of a
    // plugin silently waiting for a request on stdin.
    if std::env::args_os().len() > 1 {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let mut request = Vec::new();
    if let Err(error) = std::io::stdin().read_to_end(&mut request) {
        eprintln!("protoc-gen-rgrpc: reading stdin: {error}");
        return ExitCode::FAILURE;
    }
    let response = match protoc_gen_rgrpc::plugin::run(&request) {
        Ok(response) => response,
        Err(error) => {
            eprintln!("protoc-gen-rgrpc: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_all(&response).and_then(|()| stdout.flush()) {
        eprintln!("protoc-gen-rgrpc: writing stdout: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
