//! Golden-file snapshot tests: the code generated for every `.proto` under
//! `proto/` (except `proto/grpc/`, vendored separately) must equal the files
//! committed under `tests/golden/<variant>/`.
//!
//! Regenerate them with:
//!
//! ```text
//! RGRPC_BLESS=1 cargo test -p protoc-gen-rgrpc --test golden
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use protoc_gen_rgrpc::{Builder, GeneratedFile, Options};

const BLESS_COMMAND: &str = "RGRPC_BLESS=1 cargo test -p protoc-gen-rgrpc --test golden";

fn proto_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto")
}

fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Every `.proto` file under `proto/`, relative to it, sorted; `grpc/` is
/// skipped.
fn proto_files() -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).expect("proto/ and its subdirectories are readable");
        for entry in entries {
            let path = entry.expect("directory entries are readable").path();
            let relative = path.strip_prefix(root).expect("walk stays under root");
            if path.is_dir() {
                if relative != Path::new("grpc") {
                    walk(root, &path, out);
                }
            } else if path.extension().is_some_and(|e| e == "proto") {
                out.push(relative.to_path_buf());
            }
        }
    }
    let root = proto_root();
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// The `configured` variant's prost-build options, as a plugin parameter
/// string (so it exercises the escaping too). `tests/compiles.rs` builds the
/// result: `crate::default` holds the extern `codegen.common` types.
const CONFIGURED: &str = "extern_path=.codegen.common=crate::default::codegen::common,\
    type_attribute=.helloworld=#[derive(PartialOrd)],\
    type_attribute=.helloworld.HelloRequest=#[derive(serde::Serialize\\, serde::Deserialize)],\
    type_attribute=.helloworld.HelloRequest=#[serde(rename_all = \"camelCase\")],\
    message_attribute=.helloworld.HelloRequest=#[doc = \"Commas\\, and = signs.\"],\
    field_attribute=.helloworld.HelloReply.message=#[doc = \"A field attribute.\"],\
    boxed=.routeguide.Feature.location,\
    btree_map=.,\
    disable_comments=.routeguide,\
    skip_debug=.helloworld.HelloReply,\
    include_file=_includes.rs";

/// The variants checked: a directory name under `tests/golden/`, the
/// options, and which protos (`None`: all of them).
fn variants() -> Vec<(&'static str, Options, Option<&'static [&'static str]>)> {
    vec![
        ("default", Options::default(), None),
        (
            "services_only",
            Options {
                messages: false,
                ..Options::default()
            },
            None,
        ),
        (
            "messages_only",
            Options {
                client: false,
                server: false,
                ..Options::default()
            },
            None,
        ),
        (
            "client_only",
            Options {
                server: false,
                runtime_path: "crate::runtime".to_owned(),
                ..Options::default()
            },
            Some(&["routeguide/route_guide.proto"]),
        ),
        (
            "server_only",
            Options {
                client: false,
                ..Options::default()
            },
            Some(&["routeguide/route_guide.proto"]),
        ),
        (
            "configured",
            Options::parse(CONFIGURED).expect("CONFIGURED parses"),
            Some(&[
                "helloworld/helloworld.proto",
                "routeguide/route_guide.proto",
                "codegen/abc/abc.proto",
                "codegen/multi/multi.proto",
            ]),
        ),
    ]
}

fn generate(options: &Options, only: Option<&[&str]>) -> Vec<GeneratedFile> {
    let files = match only {
        Some(files) => files.iter().map(PathBuf::from).collect(),
        None => proto_files(),
    };
    // With an out_dir, an include file names the others relatively, as the
    // plugin does (`generate` itself writes nothing).
    Builder::new()
        .options(options.clone())
        .out_dir(golden_root())
        .generate(&files, &[proto_root()])
        .unwrap_or_else(|e| panic!("generation failed: {e}"))
}

/// A short report of where `actual` first departs from `expected`.
fn first_difference(expected: &str, actual: &str) -> String {
    let (expected, actual): (Vec<&str>, Vec<&str>) =
        (expected.lines().collect(), actual.lines().collect());
    let line = expected
        .iter()
        .zip(&actual)
        .position(|(e, a)| e != a)
        .unwrap_or(expected.len().min(actual.len()));
    let mut out = format!("first difference at line {}:\n", line + 1);
    for (sign, lines) in [("-", &expected), ("+", &actual)] {
        for text in lines.iter().skip(line).take(5) {
            let _ = writeln!(out, "{sign} {text}");
        }
    }
    out
}

#[test]
fn golden_files_are_up_to_date() {
    let bless = std::env::var_os("RGRPC_BLESS").is_some();
    let mut failures = Vec::new();
    for (variant, options, only) in variants() {
        let dir = golden_root().join(variant);
        let generated = generate(&options, only);
        assert!(!generated.is_empty(), "{variant}: nothing generated");
        if bless {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("tests/golden is writable");
        }
        let mut expected_names: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .map(|e| {
                        e.expect("readable entry")
                            .file_name()
                            .to_string_lossy()
                            .into_owned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        expected_names.sort();
        for file in &generated {
            let path = dir.join(&file.name);
            if bless {
                std::fs::write(&path, &file.content).expect("tests/golden is writable");
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(expected) if expected == file.content => {}
                Ok(expected) => failures.push(format!(
                    "{variant}/{}: differs from the golden file\n{}",
                    file.name,
                    first_difference(&expected, &file.content)
                )),
                Err(_) => failures.push(format!("{variant}/{}: no golden file", file.name)),
            }
        }
        if !bless {
            for name in expected_names {
                if !generated.iter().any(|f| f.name == name) {
                    failures.push(format!("{variant}/{name}: golden file no longer generated"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\nIf the change is intended, regenerate the golden files with:\n    {BLESS_COMMAND}\n",
        failures.join("\n")
    );
}

/// The `configured` variant's include file declares the module tree of the
/// packages generated there (`tests/compiles.rs` compiles it).
#[test]
fn include_file_declares_the_tree() {
    // Generated rather than read, so that this holds while blessing too.
    let (_, options, only) = variants()
        .into_iter()
        .find(|(name, ..)| *name == "configured")
        .expect("the configured variant");
    let files = generate(&options, only);
    let include = files
        .iter()
        .find(|f| f.name == "_includes.rs")
        .expect("include_file is generated");
    assert_eq!(
        include.content,
        "// This file is @generated by protoc-gen-rgrpc. Do not edit.
include!(\"_.rs\");
pub mod a {
    pub mod b {
        pub mod c {
            include!(\"a.b.c.rs\");
        }
    }
}
pub mod codegen {
    pub mod multi {
        include!(\"codegen.multi.rs\");
    }
}
pub mod helloworld {
    include!(\"helloworld.rs\");
}
pub mod routeguide {
    include!(\"routeguide.rs\");
}
"
    );
}

/// The service code of the `configured` variant follows its extern path.
#[test]
fn extern_path_reaches_service_code() {
    let dir = golden_root().join("configured");
    let multi = std::fs::read_to_string(dir.join("codegen.multi.rs")).expect("golden file");
    assert!(
        multi.contains("request: crate::default::codegen::common::Page"),
        "{multi}"
    );
    assert!(!multi.contains("super::common::"), "{multi}");
    assert!(
        !dir.join("codegen.common.rs").exists(),
        "extern types are not generated"
    );
}

#[test]
fn every_package_has_a_golden_file() {
    let names: Vec<String> = generate(&Options::default(), None)
        .into_iter()
        .map(|f| f.name)
        .collect();
    for expected in [
        "_.rs",
        "a.b.c.rs",
        "codegen.common.rs",
        "codegen.docs.rs",
        "codegen.keywords.rs",
        "codegen.multi.rs",
        "codegen.wkt.rs",
        "helloworld.rs",
        "routeguide.rs",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}
