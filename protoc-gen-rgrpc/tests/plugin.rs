//! The real protoc driving the built plugin binary: its output must equal the
//! build.rs path's (protox) for the same files, and its failures must be
//! clear messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use protoc_gen_rgrpc::{Builder, Options};

const PROTOS: &[&str] = &[
    "helloworld/helloworld.proto",
    "routeguide/route_guide.proto",
    "codegen/abc/abc.proto",
    "codegen/common/common.proto",
    "codegen/docs/docs.proto",
    "codegen/keywords/keywords.proto",
    "codegen/multi/multi.proto",
    "codegen/multi/types.proto",
    "codegen/nopackage.proto",
    "codegen/wkt/wkt.proto",
];

fn proto_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto")
}

fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("plugin-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("CARGO_TARGET_TMPDIR is writable");
    dir
}

/// Runs protoc with our plugin on `PROTOS`, writing to `out`.
fn protoc(out: &Path, parameter: &str) -> Output {
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("protoc-bin-vendored has a protoc");
    let include = protoc_bin_vendored::include_path().expect("protoc-bin-vendored has includes");
    let mut cmd = Command::new(protoc);
    cmd.arg(format!(
        "--plugin=protoc-gen-rgrpc={}",
        env!("CARGO_BIN_EXE_protoc-gen-rgrpc")
    ))
    .arg(format!("--rgrpc_out={}", out.display()))
    .arg("-I")
    .arg(proto_root())
    .arg("-I")
    .arg(include);
    if !parameter.is_empty() {
        cmd.arg(format!("--rgrpc_opt={parameter}"));
    }
    cmd.args(PROTOS).output().expect("protoc runs")
}

fn check_same_as_builder(name: &str, parameter: &str, options: Options) {
    let out = out_dir(name);
    let output = protoc(&out, parameter);
    assert!(
        output.status.success(),
        "protoc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // With an out_dir, an include file names the others relatively, as the
    // plugin does.
    let expected = Builder::new()
        .options(options)
        .out_dir(&out)
        .generate(PROTOS, &[proto_root()])
        .expect("the build.rs path generates");
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .expect("protoc wrote the output dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let names: Vec<String> = expected.iter().map(|f| f.name.clone()).collect();
    assert_eq!(written, names);
    for file in expected {
        let actual = std::fs::read_to_string(out.join(&file.name)).expect("written file");
        assert!(
            actual == file.content,
            "{name}: {} differs between protoc+plugin and the build.rs path",
            file.name
        );
    }
}

#[test]
fn protoc_plugin_matches_build_rs_path() {
    check_same_as_builder("default", "", Options::default());
}

#[test]
fn protoc_plugin_matches_build_rs_path_with_options() {
    check_same_as_builder(
        "services-only",
        "messages=false,runtime_path=crate::rt",
        Options {
            messages: false,
            runtime_path: "crate::rt".to_owned(),
            ..Options::default()
        },
    );
}

/// prost-build's options through protoc: several `--rgrpc_opt`s (protoc joins
/// them with commas), an escaped comma and `=` inside an attribute.
/// (`compile_well_known_types` is left out: the plugin generates only the
/// files protoc names, the build.rs path their imports too.)
#[test]
fn protoc_plugin_passes_prost_build_options() {
    let pair = |p: &str, v: &str| (p.to_owned(), v.to_owned());
    check_same_as_builder(
        "prost-options",
        "type_attribute=.helloworld=#[derive(PartialOrd)],\
         message_attribute=.routeguide.Point=#[doc = \"x\\, y = 1\"],\
         extern_path=.codegen.common=::common::pb,\
         btree_map=.,boxed=.routeguide.Feature.location,disable_comments=.helloworld,\
         skip_debug=.routeguide.Point,include_file=_includes.rs",
        Options {
            type_attributes: vec![pair(".helloworld", "#[derive(PartialOrd)]")],
            message_attributes: vec![pair(".routeguide.Point", "#[doc = \"x, y = 1\"]")],
            extern_paths: vec![pair(".codegen.common", "::common::pb")],
            btree_map: vec![".".to_owned()],
            boxed: vec![".routeguide.Feature.location".to_owned()],
            disable_comments: vec![".helloworld".to_owned()],
            skip_debug: vec![".routeguide.Point".to_owned()],
            include_file: Some("_includes.rs".to_owned()),
            ..Options::default()
        },
    );
    // `check_same_as_builder` wrote there; `out_dir` would empty it.
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-prost-options");
    let multi = std::fs::read_to_string(out.join("codegen.multi.rs")).expect("written");
    assert!(multi.contains("request: ::common::pb::Page"), "{multi}");
}

#[test]
fn unknown_parameter_fails_protoc_with_its_name() {
    let output = protoc(&out_dir("unknown"), "client=false,flavour=mint");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("flavour"), "{stderr}");
}

#[test]
fn garbage_on_stdin_is_a_clear_error() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_protoc-gen-rgrpc"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the plugin binary runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(b"\xff\xff\xff\xff not a request")
            .expect("the plugin reads stdin");
    }
    let output = child.wait_with_output().expect("the plugin exits");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CodeGeneratorRequest"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn arguments_get_the_usage() {
    let output = Command::new(env!("CARGO_BIN_EXE_protoc-gen-rgrpc"))
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .expect("the plugin binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--rgrpc_out"), "{stderr}");
}
