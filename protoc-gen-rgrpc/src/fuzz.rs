//! The fuzz-target body of the plugin, behind the off-by-default `fuzzing` feature. Not
//! an API: the cargo-fuzz package in `fuzz/` and the smoke test in
//! `tests/tests/fuzz_smoke.rs` call it.

use prost::Message;
use prost_types::compiler::{CodeGeneratorRequest, CodeGeneratorResponse};

/// The plugin on arbitrary bytes as its stdin: an error for bytes that are no
/// `CodeGeneratorRequest`, otherwise a response that decodes, with either an error and
/// no files, or files with distinct `.rs` names whose contents are valid Rust.
/// Panics are what the fuzzer looks for.
pub fn plugin(data: &[u8]) {
    let is_request = CodeGeneratorRequest::decode(data).is_ok();
    match crate::plugin::run(data) {
        Err(error) => {
            assert!(!is_request, "a decodable request failed: {error}");
            assert!(error.is_input(), "{error}");
        }
        Ok(bytes) => {
            assert!(is_request, "bytes that are no request were answered");
            let response = CodeGeneratorResponse::decode(&bytes[..]).expect("the response decodes");
            if response.error.is_some() {
                assert!(response.file.is_empty(), "files beside an error");
            }
            let mut names = std::collections::HashSet::new();
            for file in &response.file {
                let name = file.name();
                assert!(name.ends_with(".rs"), "{name:?}");
                assert!(names.insert(name.to_owned()), "{name:?} generated twice");
                if let Err(error) = syn::parse_file(file.content()) {
                    panic!("{name} is not valid Rust: {error}\n{}", file.content());
                }
            }
        }
    }
}
