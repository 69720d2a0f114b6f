//! The `build.rs` API: parse `.proto` files in pure Rust (protox, no protoc
//! needed) and write the generated code to `OUT_DIR`.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::params::{Options, parse_path};
use crate::pipeline::{GeneratedFile, generate_files};

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
/// types, which prost maps to `::prost_types`. The options mirror the plugin's
/// `--rgrpc_opt=` parameters and the output is byte-for-byte the plugin's.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    options: Options,
    out_dir: Option<PathBuf>,
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
            .map(|(files, _)| files)
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
        let (files, sources) = self.load_and_generate(protos, includes)?;
        for source in sources {
            println!("cargo:rerun-if-changed={}", source.display());
        }
        std::fs::create_dir_all(&out_dir)
            .map_err(|e| Error::io(format!("creating {}: {e}", out_dir.display())))?;
        for file in files {
            let path = out_dir.join(&file.name);
            if std::fs::read(&path).is_ok_and(|old| old == file.content.as_bytes()) {
                continue;
            }
            std::fs::write(&path, &file.content)
                .map_err(|e| Error::io(format!("writing {}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// Generated files, and the paths of the `.proto` files that were read.
    fn load_and_generate(
        &self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<(Vec<GeneratedFile>, Vec<PathBuf>), Error> {
        parse_path(&self.options.runtime_path)?;
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
        let files = generate_files(&set.file, &names, &self.options)?;
        Ok((files, sources))
    }
}

fn protox_error(error: protox::Error) -> Error {
    match error.file() {
        Some(file) if !error.to_string().contains(file) => Error::input(format!("{file}: {error}")),
        _ => Error::input(error.to_string()),
    }
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
