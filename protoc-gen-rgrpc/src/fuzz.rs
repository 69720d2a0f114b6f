//! The fuzz-target body of the plugin, behind the off-by-default `fuzzing` feature. Not
//! an API: the cargo-fuzz package in `fuzz/` and the smoke test in
//! `tests/tests/fuzz_smoke.rs` call it.

use std::sync::Once;

use prost::Message;
use prost_types::compiler::{CodeGeneratorRequest, CodeGeneratorResponse};

/// The plugin on arbitrary bytes as its stdin: an error for bytes that are no
/// `CodeGeneratorRequest`, otherwise a response that decodes, with either an error and
/// no files, or files with distinct `.rs` names whose contents are valid Rust.
/// Panics are what the fuzzer looks for.
pub fn plugin(data: &[u8]) {
    ignore_prost_build_panics();
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

/// prost-build asserts instead of reporting on descriptors it cannot handle; the
/// plugin validates what it can first and catches the rest (messages.rs), turning the
/// panic into an error in the response. Such a caught panic is handled input, not a
/// finding, but libFuzzer's panic hook would abort on it before it is caught; so the
/// panics raised inside prost-build skip that hook. Every other panic still reaches it.
fn ignore_prost_build_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_prost_build = info
                .location()
                .is_some_and(|l| l.file().contains("/prost-build-"));
            if !in_prost_build {
                previous(info);
            }
        }));
    });
}
