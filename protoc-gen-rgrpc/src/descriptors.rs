//! The encoded file descriptors in generated code: one `pub static` per generated
//! `.proto` file in its package's module, and each `ServiceDesc`'s `files` list, which
//! points at the descriptor of the service's file and those of its transitive
//! imports, for server reflection.
//!
//! Where an import's descriptor lives:
//! - generated in the same run: its package module's static, reached by a relative
//!   path (`super::other::X_FILE_DESCRIPTOR`), the module layout prost-build assumes
//!   for message types too, so each such file is in the binary once;
//! - not generated in this run (well-known types from `prost-types`, files whose
//!   types come from another crate through `extern_path`): a private copy in the
//!   package file of the service that needs it, once per package file. A selected
//!   file counts as not generated when it declares types and no service and every
//!   one of its types is extern (the build.rs path selects imports too).
//!
//! Source info (comments and spans) is stripped, as protoc-gen-go does for the
//! descriptors it embeds and grpc-go's reflection serves: it is often larger than the
//! rest of the descriptor, and no runtime consumer reads it.

use std::collections::{BTreeMap, HashMap, HashSet};

use heck::ToShoutySnakeCase;
use prost::Message;
use prost_types::FileDescriptorProto;
use quote::quote;

use crate::error::Error;
use crate::include;
use crate::resolve::ExternPaths;

/// The descriptor constants of one run.
pub(crate) struct Descriptors<'a> {
    /// Every file of the request, by name.
    by_name: HashMap<&'a str, &'a FileDescriptorProto>,
    /// The static's name and the package of each generated file.
    generated: HashMap<&'a str, (String, &'a str)>,
}

impl<'a> Descriptors<'a> {
    /// Names a static for every file of `selected` (files generated in this run)
    /// that is not extern; `files` holds them and every file they import.
    pub(crate) fn new(
        files: &'a [FileDescriptorProto],
        selected: &[&'a FileDescriptorProto],
        externs: &ExternPaths,
    ) -> Descriptors<'a> {
        let by_name = files.iter().map(|f| (f.name(), f)).collect();
        let selected: Vec<&FileDescriptorProto> = selected
            .iter()
            .copied()
            .filter(|file| !is_extern(file, externs))
            .collect();
        // Stems shared by two files of one package name both files by full path.
        let mut stems: HashMap<(&str, String), usize> = HashMap::new();
        for file in &selected {
            *stems
                .entry((file.package(), stem(file.name())))
                .or_default() += 1;
        }
        let generated = selected
            .iter()
            .map(|file| {
                let base = match stems[&(file.package(), stem(file.name()))] {
                    1 => stem(file.name()),
                    _ => without_extension(file.name()).to_owned(),
                };
                let name = format!("{}_FILE_DESCRIPTOR", base.to_shouty_snake_case());
                (file.name(), (name, file.package()))
            })
            .collect();
        Descriptors { by_name, generated }
    }

    /// The `pub static` of each generated file of `package`, in file-name order.
    pub(crate) fn package_statics(&self, package: &str) -> Result<String, Error> {
        let mut files: Vec<(&str, &String)> = self
            .generated
            .iter()
            .filter(|(_, (_, p))| *p == package)
            .map(|(file, (name, _))| (*file, name))
            .collect();
        files.sort();
        let mut tokens = proc_macro2::TokenStream::new();
        for (file, name) in files {
            let ident = ident(name)?;
            let bytes = proc_macro2::Literal::byte_string(&encode(self.by_name[file]));
            let doc = format!(
                " The encoded `google.protobuf.FileDescriptorProto` of `{file}` (source info stripped)."
            );
            tokens.extend(quote! {
                #[doc = #doc]
                pub static #ident: &[u8] = #bytes;
            });
        }
        print(tokens)
    }

    /// `file` and every file it imports, directly or not, each once: `file` first,
    /// then its imports depth first in declaration order.
    pub(crate) fn closure(&self, file: &'a str) -> Result<Vec<&'a str>, Error> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![file];
        while let Some(name) = stack.pop() {
            if !seen.insert(name) {
                continue;
            }
            let descriptor = self.by_name.get(name).ok_or_else(|| {
                Error::input(format!(
                    "`{name}` is imported, but the request does not contain that file"
                ))
            })?;
            out.push(name);
            stack.extend(descriptor.dependency.iter().rev().map(String::as_str));
        }
        Ok(out)
    }

    /// The Rust expression, from the module of `package`, of `file`'s descriptor; a
    /// file not generated in this run names its private copy, which the caller
    /// emits with [`Descriptors::import_copies`].
    pub(crate) fn path_from(&self, package: &str, file: &str) -> String {
        match self.generated.get(file) {
            Some((name, target)) if *target == package => name.clone(),
            Some((name, target)) => {
                let mut parts: Vec<String> = include::module_path(package)
                    .iter()
                    .map(|_| "super".to_owned())
                    .collect();
                parts.extend(include::module_path(target));
                parts.push(name.clone());
                parts.join("::")
            }
            None => import_name(file),
        }
    }

    /// The private copies of the descriptors among `files` that were not generated
    /// in this run, sorted by name, each once.
    pub(crate) fn import_copies<'f>(
        &self,
        files: impl IntoIterator<Item = &'f str>,
    ) -> Result<String, Error> {
        let copies: BTreeMap<String, &str> = files
            .into_iter()
            .filter(|file| !self.generated.contains_key(file))
            .map(|file| (import_name(file), file))
            .collect();
        let mut tokens = proc_macro2::TokenStream::new();
        for (name, file) in copies {
            let ident = ident(&name)?;
            // `closure` checked that every file it returns is in the request.
            let descriptor = self.by_name.get(file).ok_or_else(|| {
                Error::input(format!(
                    "`{file}` is imported, but the request does not contain that file"
                ))
            })?;
            let bytes = proc_macro2::Literal::byte_string(&encode(descriptor));
            let doc = format!(" The encoded descriptor of the imported `{file}`, for reflection.");
            tokens.extend(quote! {
                #[doc = #doc]
                static #ident: &[u8] = #bytes;
            });
        }
        print(tokens)
    }
}

/// Whether `file`'s code lives elsewhere: it has types, no service, and every
/// type is under an extern path.
fn is_extern(file: &FileDescriptorProto, externs: &ExternPaths) -> bool {
    let prefix = match file.package() {
        "" => String::new(),
        package => format!(".{package}"),
    };
    let names: Vec<&str> = file
        .message_type
        .iter()
        .map(|m| m.name())
        .chain(file.enum_type.iter().map(|e| e.name()))
        .collect();
    file.service.is_empty()
        && !names.is_empty()
        && names
            .iter()
            .all(|name| externs.covers(&format!("{prefix}.{name}")))
}

/// The descriptor as served: encoded, without source info, and without empty
/// options messages (protoc keeps `{}` after an rpc as an empty `MethodOptions`,
/// protox drops it; they mean the same, and both front ends must emit the same
/// bytes).
fn encode(file: &FileDescriptorProto) -> Vec<u8> {
    let mut file = file.clone();
    file.source_code_info = None;
    clear_empty(&mut file.options);
    file.message_type.iter_mut().for_each(clear_message);
    file.enum_type.iter_mut().for_each(clear_enum);
    file.extension
        .iter_mut()
        .for_each(|f| clear_empty(&mut f.options));
    for service in &mut file.service {
        clear_empty(&mut service.options);
        for method in &mut service.method {
            clear_empty(&mut method.options);
        }
    }
    file.encode_to_vec()
}

fn clear_message(message: &mut prost_types::DescriptorProto) {
    clear_empty(&mut message.options);
    for field in message.field.iter_mut().chain(&mut message.extension) {
        clear_empty(&mut field.options);
    }
    for oneof in &mut message.oneof_decl {
        clear_empty(&mut oneof.options);
    }
    for range in &mut message.extension_range {
        clear_empty(&mut range.options);
    }
    message.nested_type.iter_mut().for_each(clear_message);
    message.enum_type.iter_mut().for_each(clear_enum);
}

fn clear_enum(e: &mut prost_types::EnumDescriptorProto) {
    clear_empty(&mut e.options);
    for value in &mut e.value {
        clear_empty(&mut value.options);
    }
}

fn clear_empty<T: Default + PartialEq>(options: &mut Option<T>) {
    if options.as_ref().is_some_and(|o| *o == T::default()) {
        *options = None;
    }
}

fn import_name(file: &str) -> String {
    format!(
        "IMPORTED_{}_FILE_DESCRIPTOR",
        without_extension(file).to_shouty_snake_case()
    )
}

fn without_extension(file: &str) -> &str {
    file.strip_suffix(".proto").unwrap_or(file)
}

/// The file name without directories and `.proto`.
fn stem(file: &str) -> String {
    let name = without_extension(file);
    name.rsplit('/').next().unwrap_or(name).to_owned()
}

fn ident(name: &str) -> Result<proc_macro2::Ident, Error> {
    syn::parse_str(name)
        .map_err(|_| Error::input(format!("`{name}` is not a valid Rust identifier")))
}

fn print(tokens: proc_macro2::TokenStream) -> Result<String, Error> {
    let file: syn::File = syn::parse2(tokens)
        .map_err(|e| Error::generate(format!("generated descriptor code does not parse: {e}")))?;
    Ok(prettyplease::unparse(&file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, package: &str, deps: &[&str]) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(name.into()),
            package: (!package.is_empty()).then(|| package.into()),
            dependency: deps.iter().map(|d| (*d).to_owned()).collect(),
            source_code_info: Some(prost_types::SourceCodeInfo::default()),
            ..Default::default()
        }
    }

    #[test]
    fn names_paths_and_closure() {
        let files = [
            file("a/x.proto", "a.b", &["c/y.proto", "w.proto"]),
            file("c/y.proto", "c", &["w.proto"]),
            file("w.proto", "", &[]),
            file("d/x.proto", "a.b", &[]),
        ];
        let selected: Vec<&FileDescriptorProto> = vec![&files[0], &files[1], &files[3]];
        let d = Descriptors::new(&files, &selected, &ExternPaths::default());
        assert_eq!(
            d.closure("a/x.proto").unwrap(),
            ["a/x.proto", "c/y.proto", "w.proto"]
        );
        // Two `x.proto` in package a.b: named by path.
        assert_eq!(
            d.path_from("c", "a/x.proto"),
            "super::a::b::A_X_FILE_DESCRIPTOR"
        );
        assert_eq!(
            d.path_from("a.b", "c/y.proto"),
            "super::super::c::Y_FILE_DESCRIPTOR"
        );
        assert_eq!(d.path_from("a.b", "d/x.proto"), "D_X_FILE_DESCRIPTOR");
        assert_eq!(d.path_from("", "c/y.proto"), "c::Y_FILE_DESCRIPTOR");
        assert_eq!(d.path_from("a.b", "w.proto"), "IMPORTED_W_FILE_DESCRIPTOR");
        let copies = d
            .import_copies(["w.proto", "c/y.proto", "w.proto"])
            .unwrap();
        assert_eq!(
            copies.matches("static IMPORTED_W_FILE_DESCRIPTOR").count(),
            1
        );
        assert!(!copies.contains("Y_FILE"), "{copies}");
        let statics = d.package_statics("a.b").unwrap();
        assert!(
            statics.contains("pub static A_X_FILE_DESCRIPTOR: &[u8]"),
            "{statics}"
        );
        assert!(
            statics.contains("pub static D_X_FILE_DESCRIPTOR: &[u8]"),
            "{statics}"
        );
    }

    #[test]
    fn source_info_is_stripped_and_the_rest_kept() {
        let mut f = file("w.proto", "p", &["v.proto"]);
        f.options = Some(prost_types::FileOptions::default());
        f.service.push(prost_types::ServiceDescriptorProto {
            method: vec![prost_types::MethodDescriptorProto {
                options: Some(Default::default()),
                ..Default::default()
            }],
            ..Default::default()
        });
        let decoded = FileDescriptorProto::decode(encode(&f).as_slice()).unwrap();
        assert_eq!(decoded.source_code_info, None);
        assert_eq!(decoded.dependency, ["v.proto"]);
        assert_eq!(decoded.package(), "p");
        assert_eq!(
            (decoded.options, &decoded.service[0].method[0].options),
            (None, &None)
        );
    }

    #[test]
    fn a_missing_import_is_an_error() {
        let files = [file("a.proto", "a", &["gone.proto"])];
        let d = Descriptors::new(&files, &[&files[0]], &ExternPaths::default());
        let error = d.closure("a.proto").unwrap_err();
        assert!(error.to_string().contains("`gone.proto`"), "{error}");
    }
}
