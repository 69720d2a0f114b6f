//! protoc handing the well-known types themselves (`google/protobuf/*.proto`) to the
//! plugin: they are generated (as prost-build's `compile_well_known_types` does),
//! and the output, with its include file, builds as a crate of its own.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::FreshCrate;

/// protoc's include directory, which holds `google/protobuf/*.proto`.
fn include() -> PathBuf {
    protoc_bin_vendored::include_path().expect("protoc-bin-vendored has includes")
}

/// Every `.proto` under `google/protobuf/` (and `compiler/`), relative to the include
/// directory, split into proto2/proto3 files and editions files.
fn well_known_files() -> (Vec<String>, Vec<String>) {
    let root = include();
    let mut classic = Vec::new();
    let mut editions = Vec::new();
    for dir in ["google/protobuf", "google/protobuf/compiler"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("the include dir is readable") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "proto") {
                continue;
            }
            let name = format!("{dir}/{}", path.file_name().unwrap().to_string_lossy());
            let text = std::fs::read_to_string(&path).expect("readable proto");
            if text.lines().any(|l| l.trim_start().starts_with("edition ")) {
                editions.push(name);
            } else {
                classic.push(name);
            }
        }
    }
    classic.sort();
    editions.sort();
    (classic, editions)
}

/// Runs protoc with the plugin on `files`, writing into `out`.
fn protoc(out: &Path, parameter: &str, files: &[String]) -> std::process::Output {
    let mut cmd = Command::new(protoc_bin_vendored::protoc_bin_path().expect("a protoc"));
    cmd.arg(format!(
        "--plugin=protoc-gen-rgrpc={}",
        env!("CARGO_BIN_EXE_protoc-gen-rgrpc")
    ))
    .arg(format!("--rgrpc_out={}", out.display()))
    .arg("-I")
    .arg(include())
    .env("RUST_BACKTRACE", "0");
    if !parameter.is_empty() {
        cmd.arg(format!("--rgrpc_opt={parameter}"));
    }
    cmd.args(files).output().expect("protoc runs")
}

#[test]
fn protoc_handing_the_well_known_types_generates_them_and_they_build() {
    let (classic, editions) = well_known_files();
    for expected in [
        "google/protobuf/any.proto",
        "google/protobuf/timestamp.proto",
        "google/protobuf/descriptor.proto",
        "google/protobuf/compiler/plugin.proto",
    ] {
        assert!(
            classic.iter().any(|f| f == expected),
            "{expected}: {classic:?}"
        );
    }
    let krate = FreshCrate::new("well-known-types");
    let out = krate.dir.join("src/gen");
    std::fs::create_dir_all(&out).unwrap();
    let output = protoc(&out, "include_file=mod.rs", &classic);
    assert!(
        output.status.success(),
        "protoc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated = std::fs::read_to_string(out.join("google.protobuf.rs")).expect("written");
    for ty in [
        "Timestamp",
        "Duration",
        "Any",
        "Struct",
        "FileDescriptorProto",
        "Empty",
    ] {
        assert!(
            generated.contains(&format!("pub struct {ty} ")),
            "{ty} not generated"
        );
    }
    let compiler = std::fs::read_to_string(out.join("google.protobuf.compiler.rs")).unwrap();
    // The plugin protocol names descriptor.proto's types, generated next to it.
    assert!(
        compiler.contains("super::FileDescriptorProto"),
        "{compiler}"
    );
    krate.write(
        "Cargo.toml",
        "[package]\nname = \"wkt-generated\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [dependencies]\nprost = \"0.14\"\n",
    );
    krate.write(
        "src/lib.rs",
        "//! protoc-gen-rgrpc's output for google/protobuf/*.proto.\n\
         #![allow(clippy::all, missing_docs, rustdoc::all)]\n\
         include!(\"gen/mod.rs\");\n\
         \n\
         /// Uses a generated type, so the build checks more than declarations.\n\
         pub fn encoded_timestamp() -> Vec<u8> {\n\
         \x20   use prost::Message;\n\
         \x20   google::protobuf::Timestamp { seconds: 1, nanos: 2 }.encode_to_vec()\n\
         }\n",
    );
    let (built, log) = krate.build();
    assert!(built, "the generated well-known types do not build:\n{log}");

    // Editions files are a clear error, not a prost-build panic.
    let bad = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wkt-editions");
    let _ = std::fs::remove_dir_all(&bad);
    std::fs::create_dir_all(&bad).unwrap();
    if let Some(file) = editions.first() {
        let output = protoc(&bad, "", std::slice::from_ref(file));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.contains("uses protobuf editions"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Without protoc naming them, imported well-known types stay `::prost_types`.
#[test]
fn imported_well_known_types_stay_prost_types() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wkt-imported");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let protos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let output = Command::new(protoc_bin_vendored::protoc_bin_path().unwrap())
        .arg(format!(
            "--plugin=protoc-gen-rgrpc={}",
            env!("CARGO_BIN_EXE_protoc-gen-rgrpc")
        ))
        .arg(format!("--rgrpc_out={}", out.display()))
        .arg("-I")
        .arg(&protos)
        .arg("-I")
        .arg(include())
        .arg("codegen/wkt/wkt.proto")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["codegen.wkt.rs"]);
    let code = std::fs::read_to_string(out.join("codegen.wkt.rs")).unwrap();
    assert!(code.contains("::prost_types::"), "{code}");
}
