//! Rust type paths for protobuf type names, exactly as prost-build writes them.
//!
//! prost-build resolves a method's `.pkg.Msg` relative to the package of the
//! file being generated (`code_generator.rs`, `resolve_ident`) after checking
//! its extern paths (`extern_paths.rs`; by default `.google.protobuf` maps to
//! `::prost_types`, and a few wrappers to Rust primitives, and the user's
//! `extern_path`s come first). This module repeats that algorithm so that
//! service code can be generated without prost (`messages=false`); a test
//! checks it against prost-build's own answer.

use std::collections::{HashMap, HashSet};

use prost_types::{DescriptorProto, FileDescriptorProto, field_descriptor_proto::Type};

use crate::error::Error;
use crate::names::{to_snake, to_upper_camel};
use crate::params::Options;

/// Every message and enum defined in a request, by fully-qualified name
/// (`.pkg.Outer.Inner`).
#[derive(Debug, Default)]
pub(crate) struct TypeIndex {
    messages: HashSet<String>,
    enums: HashSet<String>,
}

impl TypeIndex {
    /// Indexes all types of `files` (the files to generate and their imports).
    pub(crate) fn new<'a>(files: impl IntoIterator<Item = &'a FileDescriptorProto>) -> Self {
        let mut index = Self::default();
        for file in files {
            let prefix = match file.package() {
                "" => String::new(),
                package => format!(".{package}"),
            };
            for enumeration in &file.enum_type {
                index
                    .enums
                    .insert(format!("{prefix}.{}", enumeration.name()));
            }
            for message in &file.message_type {
                index.add_message(&prefix, message);
            }
        }
        index
    }

    fn add_message(&mut self, prefix: &str, message: &DescriptorProto) {
        let name = format!("{prefix}.{}", message.name());
        for enumeration in &message.enum_type {
            self.enums.insert(format!("{name}.{}", enumeration.name()));
        }
        for nested in &message.nested_type {
            self.add_message(&name, nested);
        }
        self.messages.insert(name);
    }

    /// True if `name` (fully qualified) is a message of the request.
    pub(crate) fn is_message(&self, name: &str) -> bool {
        self.messages.contains(name)
    }

    /// Checks that every message- or enum-typed field of `file` names a type
    /// the request defines. prost-build assumes this and panics otherwise.
    pub(crate) fn check_fields(&self, file: &FileDescriptorProto) -> Result<(), Error> {
        fn walk(
            index: &TypeIndex,
            file: &FileDescriptorProto,
            messages: &[DescriptorProto],
        ) -> Result<(), Error> {
            for message in messages {
                for field in &message.field {
                    let known = match field.r#type() {
                        Type::Message | Type::Group => index.is_message(field.type_name()),
                        Type::Enum => index.enums.contains(field.type_name()),
                        _ => true,
                    };
                    if !known {
                        return Err(Error::input(format!(
                            "{}: field `{}` of message `{}` has type `{}`, which no file of the request defines",
                            file.name(),
                            field.name(),
                            message.name(),
                            field.type_name()
                        )));
                    }
                }
                walk(index, file, &message.nested_type)?;
            }
            Ok(())
        }
        walk(self, file, &file.message_type)
    }
}

/// prost-build's extern paths: protobuf paths (`.pkg`, `.pkg.Msg`) whose
/// types are named by a Rust path instead of being generated. The user's
/// `extern_path`s, plus, unless `compile_well_known_types`, `.google.protobuf`
/// in `::prost_types` with the wrappers and `Empty` as Rust types.
#[derive(Debug, Default)]
pub(crate) struct ExternPaths {
    paths: HashMap<String, String>,
}

/// prost-build's default extern paths besides `.google.protobuf` itself.
const WELL_KNOWN: [(&str, &str); 10] = [
    (".google.protobuf.BoolValue", "bool"),
    (
        ".google.protobuf.BytesValue",
        "::prost::alloc::vec::Vec<u8>",
    ),
    (".google.protobuf.DoubleValue", "f64"),
    (".google.protobuf.Empty", "()"),
    (".google.protobuf.FloatValue", "f32"),
    (".google.protobuf.Int32Value", "i32"),
    (".google.protobuf.Int64Value", "i64"),
    (
        ".google.protobuf.StringValue",
        "::prost::alloc::string::String",
    ),
    (".google.protobuf.UInt32Value", "u32"),
    (".google.protobuf.UInt64Value", "u64"),
];

impl ExternPaths {
    /// The extern paths of `options`. A protobuf path given twice (or one of
    /// the well-known defaults given again) is an error, as in prost-build.
    pub(crate) fn new(options: &Options) -> Result<Self, Error> {
        let mut externs = Self::default();
        for (proto, rust) in &options.extern_paths {
            externs.insert(proto, rust)?;
        }
        if !options.compile_well_known_types {
            externs.insert(".google.protobuf", "::prost_types")?;
            for (proto, rust) in WELL_KNOWN {
                externs.insert(proto, rust)?;
            }
        }
        Ok(externs)
    }

    fn insert(&mut self, proto: &str, rust: &str) -> Result<(), Error> {
        if self
            .paths
            .insert(proto.to_owned(), rust.to_owned())
            .is_some()
        {
            return Err(Error::parameter(format!(
                "parameter `extern_path`: `{proto}` is given twice (the well-known types \
                 `.google.protobuf` are extern unless `compile_well_known_types` is set)"
            )));
        }
        Ok(())
    }

    /// Whether `type_name` (fully qualified, with a leading dot) lies under an
    /// extern path, so its code lives in another crate.
    pub(crate) fn covers(&self, type_name: &str) -> bool {
        self.resolve(type_name).is_some()
    }

    /// The Rust path for `type_name` (fully qualified) if it lies under an
    /// extern path: the longest matching protobuf prefix wins, and the rest of
    /// the name is appended as modules and a type (`extern_paths.rs`,
    /// `resolve_ident`, including its snake_casing of the Rust path).
    fn resolve(&self, type_name: &str) -> Option<String> {
        if let Some(rust) = self.paths.get(type_name) {
            return Some(rust.clone());
        }
        for (dot, _) in type_name.rmatch_indices('.') {
            let Some(rust) = self.paths.get(&type_name[..dot]) else {
                continue;
            };
            let mut rest: Vec<&str> = type_name[dot + 1..].split('.').collect();
            // `rmatch_indices` found a dot, so `rest` has at least one element.
            let type_ident = rest.pop().unwrap_or_default();
            let path: Vec<String> = rust
                .split("::")
                .chain(rest)
                .enumerate()
                .map(|(i, segment)| match (i, segment) {
                    (0, "crate") => segment.to_owned(),
                    _ => to_snake(segment),
                })
                .chain(std::iter::once(to_upper_camel(type_ident)))
                .collect();
            return Some(path.join("::"));
        }
        None
    }
}

/// The Rust path prost-build uses, from code generated for `package`, to name
/// the message `type_name` (fully qualified, with a leading dot).
///
/// `None` if `type_name` is not fully qualified (protoc always qualifies it).
pub(crate) fn rust_type_path(
    package: &str,
    type_name: &str,
    externs: &ExternPaths,
) -> Option<String> {
    let name = type_name.strip_prefix('.')?;
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return None;
    }
    if let Some(path) = externs.resolve(type_name) {
        return Some(path);
    }

    let mut local = package.split('.').filter(|p| !p.is_empty()).peekable();
    let mut parts: Vec<&str> = name.split('.').collect();
    // Checked above: `name` is non-empty, so `parts` has at least one element.
    let type_ident = parts.pop().unwrap_or_default();
    let mut remote = parts.into_iter().peekable();

    // Skip the leading path elements both sides have in common.
    while local.peek().is_some() && local.peek() == remote.peek() {
        local.next();
        remote.next();
    }

    let path: Vec<String> = local
        .map(|_| "super".to_owned())
        .chain(remote.map(to_snake))
        .chain(std::iter::once(to_upper_camel(type_ident)))
        .collect();
    Some(path.join("::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_path(package: &str, type_name: &str) -> Option<String> {
        let externs = ExternPaths::new(&Options::default()).unwrap();
        rust_type_path(package, type_name, &externs)
    }

    fn options_with_externs(paths: &[(&str, &str)]) -> Options {
        Options {
            extern_paths: paths
                .iter()
                .map(|(p, r)| ((*p).to_owned(), (*r).to_owned()))
                .collect(),
            ..Options::default()
        }
    }

    #[test]
    fn extern_paths_follow_prost() {
        // The cases of prost-build's own `test_extern_paths`.
        let options = options_with_externs(&[
            (".foo", "::foo1"),
            (".foo.bar", "::foo2"),
            (".foo.baz", "::foo3"),
            (".foo.Fuzz", "::foo4::Fuzz"),
            (".a.b.c.d.e.f", "::abc::def"),
            (".crated", "crate::pb"),
        ]);
        let externs = ExternPaths::new(&options).unwrap();
        for (type_name, expected) in [
            (".foo", "::foo1"),
            (".foo.Foo", "::foo1::Foo"),
            (".foo.bar", "::foo2"),
            (".foo.Bas", "::foo1::Bas"),
            (".foo.bar.Bar", "::foo2::Bar"),
            (".foo.Fuzz.Bar", "::foo4::fuzz::Bar"),
            (".a.b.c.d.e.f", "::abc::def"),
            (".a.b.c.d.e.f.g.FooBar.Baz", "::abc::def::g::foo_bar::Baz"),
            (".crated.Msg", "crate::pb::Msg"),
            (".google.protobuf.Empty", "()"),
            // Not extern: prost's relative path from package `a`.
            (".a.b.Local", "b::Local"),
        ] {
            assert_eq!(
                rust_type_path("a", type_name, &externs).unwrap(),
                expected,
                "{type_name}"
            );
        }
    }

    #[test]
    fn well_known_types_can_be_compiled() {
        let options = Options {
            compile_well_known_types: true,
            ..Options::default()
        };
        let externs = ExternPaths::new(&options).unwrap();
        assert_eq!(
            rust_type_path("p", ".google.protobuf.Empty", &externs).unwrap(),
            "super::google::protobuf::Empty"
        );
    }

    #[test]
    fn duplicate_extern_paths_are_an_error() {
        let options = options_with_externs(&[(".a", "::x"), (".a", "::y")]);
        assert!(ExternPaths::new(&options).unwrap_err().is_parameter());
        let options = options_with_externs(&[(".google.protobuf", "::x")]);
        let error = ExternPaths::new(&options).unwrap_err();
        assert!(
            error.to_string().contains("compile_well_known_types"),
            "{error}"
        );
    }

    #[test]
    fn local_and_relative_paths() {
        for (package, type_name, expected) in [
            ("helloworld", ".helloworld.HelloRequest", "HelloRequest"),
            ("a.b.c", ".a.b.c.Thing.Part", "thing::Part"),
            (
                "a.b.c",
                ".codegen.common.Envelope.Header",
                "super::super::super::codegen::common::envelope::Header",
            ),
            ("codegen.multi", ".codegen.common.Id", "super::common::Id"),
            ("a.b.c", ".Ping", "super::super::super::Ping"),
            ("", ".codegen.common.Id", "codegen::common::Id"),
            ("", ".Ping", "Ping"),
            (
                "codegen.keywords",
                ".codegen.keywords.Self.Inner",
                "self_::Inner",
            ),
            ("codegen.keywords", ".codegen.keywords.Self", "Self_"),
            ("x", ".x.lower_snake_message", "LowerSnakeMessage"),
        ] {
            assert_eq!(
                default_path(package, type_name).unwrap(),
                expected,
                "{type_name} from {package}"
            );
        }
    }

    #[test]
    fn well_known_types() {
        assert_eq!(default_path("p", ".google.protobuf.Empty").unwrap(), "()");
        assert_eq!(
            default_path("p", ".google.protobuf.Timestamp").unwrap(),
            "::prost_types::Timestamp"
        );
        assert_eq!(
            default_path("p", ".google.protobuf.StringValue").unwrap(),
            "::prost::alloc::string::String"
        );
        assert_eq!(
            default_path("p", ".google.protobuf.FieldDescriptorProto.Type").unwrap(),
            "::prost_types::field_descriptor_proto::Type"
        );
    }

    #[test]
    fn unqualified_names_are_rejected() {
        assert_eq!(default_path("p", "p.Msg"), None);
        assert_eq!(default_path("p", "."), None);
        assert_eq!(default_path("p", ".p..Msg"), None);
        assert_eq!(default_path("p", ""), None);
    }

    /// Our resolution must give prost-build's answer for every method of every
    /// test proto: prost-build's `ServiceGenerator` hook hands us its own.
    #[test]
    fn matches_prost_build_for_test_protos() {
        matches_prost_build(&Options::default());
        matches_prost_build(&options_with_externs(&[
            (".codegen.common", "::common_crate::pb"),
            (".codegen.common.Envelope.Header", "crate::Header"),
            (".helloworld.HelloReply", "::greet::Reply"),
        ]));
        matches_prost_build(&Options {
            compile_well_known_types: true,
            ..Options::default()
        });
    }

    fn matches_prost_build(options: &Options) {
        use std::cell::RefCell;
        use std::rc::Rc;

        type Seen = Rc<RefCell<Vec<(String, String, String)>>>;
        struct Capture(Seen);
        impl prost_build::ServiceGenerator for Capture {
            fn generate(&mut self, service: prost_build::Service, _: &mut String) {
                for m in service.methods {
                    let key = format!(
                        "{}.{}.{}",
                        service.package, service.proto_name, m.proto_name
                    );
                    self.0.borrow_mut().push((key, m.input_type, m.output_type));
                }
            }
        }

        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
        let protos = [
            "helloworld/helloworld.proto",
            "routeguide/route_guide.proto",
            "codegen/abc/abc.proto",
            "codegen/docs/docs.proto",
            "codegen/keywords/keywords.proto",
            "codegen/multi/multi.proto",
            "codegen/nopackage.proto",
            "codegen/wkt/wkt.proto",
        ];
        let set = protox::compile(protos, [&root]).unwrap();
        let seen: Seen = Rc::default();
        let requests = set
            .file
            .iter()
            .map(|f| {
                (
                    prost_build::Module::from_protobuf_package_name(f.package()),
                    f.clone(),
                )
            })
            .collect();
        let mut config = prost_build::Config::new();
        for (proto, rust) in &options.extern_paths {
            config.extern_path(proto, rust);
        }
        if options.compile_well_known_types {
            config.compile_well_known_types();
        }
        config
            .service_generator(Box::new(Capture(seen.clone())))
            .generate(requests)
            .unwrap();

        let externs = ExternPaths::new(options).unwrap();
        let mut ours = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for m in &service.method {
                    let key = format!("{}.{}.{}", file.package(), service.name(), m.name());
                    let input = rust_type_path(file.package(), m.input_type(), &externs).unwrap();
                    let output = rust_type_path(file.package(), m.output_type(), &externs).unwrap();
                    ours.push((key, input, output));
                }
            }
        }
        let mut theirs = seen.borrow().clone();
        ours.sort();
        theirs.sort();
        assert!(ours.len() > 30, "too few methods checked: {}", ours.len());
        assert_eq!(ours, theirs);
    }

    #[test]
    fn index_finds_nested_types() {
        let file = FileDescriptorProto {
            package: Some("p".into()),
            message_type: vec![DescriptorProto {
                name: Some("Outer".into()),
                nested_type: vec![DescriptorProto {
                    name: Some("Inner".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let index = TypeIndex::new([&file]);
        assert!(index.is_message(".p.Outer"));
        assert!(index.is_message(".p.Outer.Inner"));
        assert!(!index.is_message(".p.Inner"));
        assert!(index.check_fields(&file).is_ok());
    }
}
