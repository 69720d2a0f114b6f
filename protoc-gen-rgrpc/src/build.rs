//! The `build.rs` API: parse `.proto` files in pure Rust (protox, no protoc
//! needed) and write the generated code to `OUT_DIR`.

use std::path::{Path, PathBuf};

use crate::diagnostic::protox_error;
use crate::error::Error;
use prost::Message as _;

use crate::include::IncludePaths;
use crate::params::Options;
use crate::pipeline::{GeneratedFile, generate_files_with, options_for_named};

/// Generates rgrpc code from `.proto` files in a `build.rs`.
///
/// ```no_run
/// // build.rs
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     protoc_gen_rgrpc::Builder::new()
///         .compile(&["../proto/helloworld/helloworld.proto"], &["../proto"])?;
///     Ok(())
/// }
/// ```
///
/// Each protobuf package becomes `<package>.rs` in the output directory (`_.rs`
/// without a package), prost's naming, ready for `include!`. Like prost-build,
/// the files a listed file imports are generated too, except the well-known
/// types, which prost maps to `::prost_types` (unless
/// [`compile_well_known_types`](Self::compile_well_known_types)). The options
/// mirror the plugin's `--rgrpc_opt=` parameters, and the output is byte for
/// byte the plugin's for the same files. Unlike prost-build's `Config`, the
/// methods take and return the builder by value, so a chain starts at
/// [`Builder::new`].
///
/// Errors read like protoc's, `path:line:column: message`, with the path as
/// it was passed to [`compile`](Self::compile) (or an include directory
/// joined with an import's name); a missing file's error lists the include
/// path searched. The error's `Debug` is the same line, so a `main` that
/// returns it prints that.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    options: Options,
    out_dir: Option<PathBuf>,
    file_descriptor_set_path: Option<PathBuf>,
}

impl Builder {
    /// A builder with the default options: messages, client and server, with
    /// the runtime at `::rgrpc_runtime`, written to `$OUT_DIR`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether to emit prost messages (plugin parameter `messages`).
    pub fn messages(mut self, enabled: bool) -> Self {
        self.options.messages = enabled;
        self
    }

    /// Whether to emit the client trait and stub (plugin parameter `client`).
    pub fn client(mut self, enabled: bool) -> Self {
        self.options.client = enabled;
        self
    }

    /// Whether to emit the server trait, descriptor and register function
    /// (plugin parameter `server`).
    pub fn server(mut self, enabled: bool) -> Self {
        self.options.server = enabled;
        self
    }

    /// The Rust path of the runtime crate (plugin parameter `runtime_path`).
    pub fn runtime_path(mut self, path: impl Into<String>) -> Self {
        self.options.runtime_path = path.into();
        self
    }

    /// Generates the `bytes` fields under `paths` as `bytes::Bytes` instead of
    /// `Vec<u8>` (plugin parameter `bytes`; `"."` for every field), as
    /// prost-build's `Config::bytes`.
    pub fn bytes<P: AsRef<str>>(mut self, paths: impl IntoIterator<Item = P>) -> Self {
        self.options
            .bytes
            .extend(paths.into_iter().map(|p| p.as_ref().to_owned()));
        self
    }

    /// Adds `attribute` (such as `#[derive(serde::Serialize)]`) to every
    /// message and enum under the protobuf `path` (`.` for all; plugin
    /// parameter `type_attribute=PATH=ATTR`), as prost-build's
    /// `Config::type_attribute`. Repeatable.
    pub fn type_attribute<P: AsRef<str>, A: AsRef<str>>(mut self, path: P, attribute: A) -> Self {
        self.options
            .type_attributes
            .push((path.as_ref().to_owned(), attribute.as_ref().to_owned()));
        self
    }

    /// Adds `attribute` to the messages under `path` (plugin parameter
    /// `message_attribute`), as prost-build's `Config::message_attribute`.
    pub fn message_attribute<P: AsRef<str>, A: AsRef<str>>(
        mut self,
        path: P,
        attribute: A,
    ) -> Self {
        self.options
            .message_attributes
            .push((path.as_ref().to_owned(), attribute.as_ref().to_owned()));
        self
    }

    /// Adds `attribute` to the enums under `path` (plugin parameter
    /// `enum_attribute`), as prost-build's `Config::enum_attribute`.
    pub fn enum_attribute<P: AsRef<str>, A: AsRef<str>>(mut self, path: P, attribute: A) -> Self {
        self.options
            .enum_attributes
            .push((path.as_ref().to_owned(), attribute.as_ref().to_owned()));
        self
    }

    /// Adds `attribute` to the fields under `path`, such as `.pkg.Msg.field`
    /// (plugin parameter `field_attribute`), as prost-build's
    /// `Config::field_attribute`.
    pub fn field_attribute<P: AsRef<str>, A: AsRef<str>>(mut self, path: P, attribute: A) -> Self {
        self.options
            .field_attributes
            .push((path.as_ref().to_owned(), attribute.as_ref().to_owned()));
        self
    }

    /// Names the types under the protobuf `proto_path` (`.pkg` or
    /// `.pkg.Msg`) by `rust_path` instead of generating them, in messages and
    /// in service code (plugin parameter `extern_path=PROTO_PATH=RUST_PATH`),
    /// as prost-build's `Config::extern_path`.
    pub fn extern_path(
        mut self,
        proto_path: impl Into<String>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.options
            .extern_paths
            .push((proto_path.into(), rust_path.into()));
        self
    }

    /// Generates the `google.protobuf` types instead of naming them in
    /// `::prost_types` (plugin parameter `compile_well_known_types`), as
    /// prost-build's `Config::compile_well_known_types`.
    pub fn compile_well_known_types(mut self) -> Self {
        self.options.compile_well_known_types = true;
        self
    }

    /// Generates the map fields under `paths` as `BTreeMap` (plugin parameter
    /// `btree_map`; `"."` for all), as prost-build's `Config::btree_map`.
    pub fn btree_map<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, paths: I) -> Self {
        self.options
            .btree_map
            .extend(paths.into_iter().map(|p| p.as_ref().to_owned()));
        self
    }

    /// Boxes the message field(s) under `path` (plugin parameter `boxed`), as
    /// prost-build's `Config::boxed`. Repeatable.
    pub fn boxed<P: AsRef<str>>(mut self, path: P) -> Self {
        self.options.boxed.push(path.as_ref().to_owned());
        self
    }

    /// Drops the doc comments of the messages under `paths` (plugin parameter
    /// `disable_comments`), as prost-build's `Config::disable_comments`.
    pub fn disable_comments<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, paths: I) -> Self {
        self.options
            .disable_comments
            .extend(paths.into_iter().map(|p| p.as_ref().to_owned()));
        self
    }

    /// Leaves `Debug` off the messages and enums under `paths`, for a
    /// hand-written impl (plugin parameter `skip_debug`), as prost-build's
    /// `Config::skip_debug`.
    pub fn skip_debug<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, paths: I) -> Self {
        self.options
            .skip_debug
            .extend(paths.into_iter().map(|p| p.as_ref().to_owned()));
        self
    }

    /// Makes [`compile`](Self::compile) also write the serialized
    /// `FileDescriptorSet` of the parsed files and their imports (with source
    /// info) to `path`, as prost-build's `Config::file_descriptor_set_path`.
    /// The plugin has no such parameter: protoc writes the same with
    /// `--descriptor_set_out=FILE --include_imports`.
    pub fn file_descriptor_set_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.file_descriptor_set_path = Some(path.into());
        self
    }

    /// Also writes `name`, a file that declares the nested `pub mod` tree of
    /// every generated package and includes each package's file in it, so
    /// that the crate needs one `include!` (plugin parameter
    /// `include_file=NAME`), as prost-build's `Config::include_file`:
    ///
    /// ```ignore
    /// include!(concat!(env!("OUT_DIR"), "/_includes.rs"));
    /// ```
    ///
    /// Written to `$OUT_DIR`, it names the files as
    /// `concat!(env!("OUT_DIR"), "/a.b.rs")`; with [`out_dir`](Self::out_dir)
    /// set, as `"a.b.rs"`, relative to itself (prost-build's rule). Files
    /// without a package are included at the top level.
    pub fn include_file(mut self, name: impl Into<String>) -> Self {
        self.options.include_file = Some(name.into());
        self
    }

    /// Sets all generation options at once.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Where [`compile`](Self::compile) writes; `$OUT_DIR` when unset.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Parses `protos` (found through `includes`, in order) and returns the
    /// generated files without writing them.
    pub fn generate(
        &self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<Vec<GeneratedFile>, Error> {
        self.load_and_generate(protos, includes)
            .map(|loaded| loaded.files)
    }

    /// Parses `protos`, writes one file per package to the output directory
    /// (leaving unchanged files untouched), and prints
    /// `cargo:rerun-if-changed` for every `.proto` file read.
    pub fn compile(
        &self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<(), Error> {
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| {
                    Error::io("OUT_DIR is not set: call compile from build.rs, or set out_dir")
                })?,
        };
        let loaded = self.load_and_generate(protos, includes)?;
        for source in &loaded.sources {
            println!("cargo:rerun-if-changed={}", source.display());
        }
        std::fs::create_dir_all(&out_dir)
            .map_err(|e| Error::io(format!("creating {}: {e}", out_dir.display())))?;
        for file in &loaded.files {
            write_if_changed(&out_dir.join(&file.name), file.content.as_bytes())?;
        }
        if let Some(path) = &self.file_descriptor_set_path {
            write_if_changed(path, &loaded.set.encode_to_vec())?;
        }
        Ok(())
    }

    /// Parses and generates.
    fn load_and_generate(
        &self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<Loaded, Error> {
        self.options.validate()?;
        let protox_error = |e: protox::Error| protox_error(&e, protos, includes);
        let mut compiler = protox::Compiler::new(includes).map_err(protox_error)?;
        // Source info carries the comments that become doc comments.
        compiler.include_source_info(true).include_imports(true);
        compiler.open_files(protos).map_err(protox_error)?;
        let sources = compiler
            .files()
            .filter_map(|f| f.path().map(Path::to_path_buf))
            .collect();
        let set = compiler.file_descriptor_set();
        let names: Vec<String> = set.file.iter().map(|f| f.name().to_owned()).collect();
        // prost-build's rule: `$OUT_DIR` by `env!`, an explicit directory
        // by paths relative to the include file.
        let include_paths = match self.out_dir {
            None => IncludePaths::OutDir,
            Some(_) => IncludePaths::Relative,
        };
        // A well-known-type file listed in `protos` (not merely imported) is
        // generated, as the plugin does with the files protoc hands it.
        let named = compiler
            .files()
            .filter(|f| !f.is_import())
            .map(|f| f.name().to_owned());
        let options = options_for_named(&self.options, &set.file, named);
        let files = generate_files_with(&set.file, &names, &options, include_paths)?;
        Ok(Loaded {
            files,
            sources,
            set,
        })
    }
}

/// What [`Builder::load_and_generate`] produces.
struct Loaded {
    files: Vec<GeneratedFile>,
    /// The paths of the `.proto` files that were read.
    sources: Vec<PathBuf>,
    /// The parsed files and their imports.
    set: prost_types::FileDescriptorSet,
}

/// Writes `content` to `path` unless the file already holds it, so that an
/// unchanged output does not trigger rebuilds.
fn write_if_changed(path: &Path, content: &[u8]) -> Result<(), Error> {
    if std::fs::read(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    std::fs::write(path, content).map_err(|e| Error::io(format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("protoc-gen-rgrpc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the temp dir is writable");
        dir
    }

    #[test]
    fn compiles_to_out_dir() {
        let dir = temp_dir("compile");
        std::fs::write(
            dir.join("x.proto"),
            "syntax = \"proto3\";\npackage x.y;\nmessage M {}\n// Doc.\nservice S { rpc Call(M) returns (M); }\n",
        )
        .unwrap();
        let out = dir.join("out");
        Builder::new()
            .out_dir(&out)
            .compile(&[dir.join("x.proto")], &[&dir])
            .unwrap();
        let code = std::fs::read_to_string(out.join("x.y.rs")).unwrap();
        assert!(code.contains("pub struct M"), "{code}");
        assert!(code.contains("/// Doc."), "{code}");
        assert!(code.contains("\"/x.y.S/Call\""), "{code}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bytes_fields_become_bytes_when_asked() {
        let dir = temp_dir("bytes");
        std::fs::write(
            dir.join("b.proto"),
            "syntax = \"proto3\";\npackage b;\nmessage M { bytes body = 1; }\n",
        )
        .unwrap();
        let protos = [dir.join("b.proto")];
        let plain = Builder::new().generate(&protos, &[&dir]).unwrap();
        assert!(plain[0].content.contains("::prost::alloc::vec::Vec<u8>"));
        let sliced = Builder::new()
            .bytes(["."])
            .generate(&protos, &[&dir])
            .unwrap();
        assert!(sliced[0].content.contains("::prost::bytes::Bytes"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn prost_build_options_reach_messages_and_services() {
        let dir = temp_dir("prost-options");
        std::fs::write(
            dir.join("shared.proto"),
            "syntax = \"proto3\";\npackage shared;\nmessage Id { string v = 1; }\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("svc.proto"),
            "syntax = \"proto3\";\npackage svc;\nimport \"shared.proto\";\n\
             // Node doc.\nmessage Node { Node next = 1; map<string, int32> m = 2; shared.Id id = 3; }\n\
             enum Colour { COLOUR_UNSPECIFIED = 0; }\n\
             service S { rpc Get(shared.Id) returns (Node); rpc Put(Node) returns (shared.Id); }\n",
        )
        .unwrap();
        let files = Builder::new()
            .extern_path(".shared", "::shared_crate::pb")
            .type_attribute(".svc", "#[derive(Tagged)]")
            .message_attribute(".svc.Node", "#[message_attr]")
            .enum_attribute(".svc.Colour", "#[enum_attr]")
            .field_attribute(".svc.Node.m", "#[field_attr]")
            .btree_map(["."])
            .boxed(".svc.Node.next")
            .disable_comments([".svc.Node"])
            .skip_debug([".svc.Colour"])
            .generate(&[dir.join("svc.proto")], &[&dir])
            .unwrap();
        // The extern package generates nothing.
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["svc.rs"]);
        let code = &files[0].content;
        for expected in [
            "#[derive(Tagged)]\n#[message_attr]\n#[derive(Clone, PartialEq, ::prost::Message)]\npub struct Node",
            "#[derive(Tagged)]\n#[enum_attr]\n#[derive(Clone, Copy, PartialEq",
            "#[field_attr]\n    pub m: ::prost::alloc::collections::BTreeMap<",
            "::core::option::Option<::prost::alloc::boxed::Box<Node>>",
            "pub id: ::core::option::Option<::shared_crate::pb::Id>",
            // The service code names the extern type by its Rust path.
            "request: ::shared_crate::pb::Id",
            "Response<::shared_crate::pb::Id>",
        ] {
            assert!(code.contains(expected), "{expected:?} missing:\n{code}");
        }
        assert!(!code.contains("Node doc."), "{code}");
        assert!(!code.contains("super::shared"), "{code}");
        let colour = code.find("pub enum Colour").unwrap();
        let derives = &code[code[..colour].rfind("#[derive(Clone").unwrap()..colour];
        assert!(!derives.contains("Debug"), "{derives}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn writes_the_file_descriptor_set() {
        let dir = temp_dir("fds");
        std::fs::write(
            dir.join("f.proto"),
            "syntax = \"proto3\";\npackage f;\nimport \"google/protobuf/empty.proto\";\n\
             service S { rpc Ping(google.protobuf.Empty) returns (google.protobuf.Empty); }\n",
        )
        .unwrap();
        let set_path = dir.join("out/set.bin");
        Builder::new()
            .out_dir(dir.join("out"))
            .file_descriptor_set_path(&set_path)
            .compile(&[dir.join("f.proto")], &[&dir])
            .unwrap();
        let bytes = std::fs::read(&set_path).unwrap();
        let set = prost_types::FileDescriptorSet::decode(bytes.as_slice()).unwrap();
        let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["google/protobuf/empty.proto", "f.proto"]);
        assert!(set.file[1].source_code_info.is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn well_known_types_can_be_compiled() {
        let dir = temp_dir("wkt");
        std::fs::write(
            dir.join("w.proto"),
            "syntax = \"proto3\";\npackage w;\nimport \"google/protobuf/timestamp.proto\";\n\
             service S { rpc Now(google.protobuf.Timestamp) returns (google.protobuf.Timestamp); }\n",
        )
        .unwrap();
        let protos = [dir.join("w.proto")];
        let files = Builder::new()
            .compile_well_known_types()
            .generate(&protos, &[&dir])
            .unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["google.protobuf.rs", "w.rs"]);
        assert!(files[0].content.contains("pub struct Timestamp"));
        assert!(
            files[1]
                .content
                .contains("request: super::google::protobuf::Timestamp"),
            "{}",
            files[1].content
        );
        let error = Builder::new()
            .extern_path("no.dot", "::x")
            .generate(&protos, &[&dir])
            .unwrap_err();
        assert!(error.is_parameter());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn listed_well_known_types_are_generated_imported_ones_are_not() {
        let dir = temp_dir("wkt-listed");
        std::fs::write(
            dir.join("u.proto"),
            "syntax = \"proto3\";\npackage u;\nimport \"google/protobuf/duration.proto\";\n\
             message M { google.protobuf.Duration d = 1; }\n",
        )
        .unwrap();
        let files = Builder::new()
            .generate(&[dir.join("u.proto")], &[&dir])
            .unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["u.rs"]);
        assert!(files[0].content.contains("::prost_types::Duration"));
        let files = Builder::new()
            .generate(&["google/protobuf/duration.proto"], &[&dir])
            .unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["google.protobuf.rs"]);
        assert!(files[0].content.contains("pub struct Duration "));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn include_file_names_out_dir_files_by_env() {
        let dir = temp_dir("include");
        std::fs::write(
            dir.join("i.proto"),
            "syntax = \"proto3\";\npackage outer.inner;\nmessage M {}\n",
        )
        .unwrap();
        let protos = [dir.join("i.proto")];
        let files = Builder::new()
            .include_file("_includes.rs")
            .generate(&protos, &[&dir])
            .unwrap();
        let include = files.iter().find(|f| f.name == "_includes.rs").unwrap();
        assert!(
            include.content.ends_with(
                "pub mod outer {\n    pub mod inner {\n        \
                 include!(concat!(env!(\"OUT_DIR\"), \"/outer.inner.rs\"));\n    }\n}\n"
            ),
            "{}",
            include.content
        );
        let out = dir.join("out");
        Builder::new()
            .include_file("_includes.rs")
            .out_dir(&out)
            .compile(&protos, &[&dir])
            .unwrap();
        let written = std::fs::read_to_string(out.join("_includes.rs")).unwrap();
        assert!(
            written.contains("include!(\"outer.inner.rs\");"),
            "{written}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn parse_errors_are_reported() {
        let dir = temp_dir("parse");
        std::fs::write(dir.join("bad.proto"), "syntax = \"proto3\";\nmessage {").unwrap();
        let error = Builder::new()
            .generate(&[dir.join("bad.proto")], &[&dir])
            .unwrap_err();
        assert!(error.is_input());
        let error = Builder::new()
            .generate(&["missing.proto"], &[&dir])
            .unwrap_err();
        assert!(error.to_string().contains("missing.proto"), "{error}");
        let error = Builder::new()
            .runtime_path("no such path")
            .generate(&["missing.proto"], &[&dir])
            .unwrap_err();
        assert!(error.is_parameter());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
