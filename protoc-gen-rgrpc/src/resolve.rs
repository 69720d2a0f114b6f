//! Rust type paths for protobuf type names, exactly as prost-build writes them.
//!
//! prost-build resolves a method's `.pkg.Msg` relative to the package of the
//! file being generated (`code_generator.rs`, `resolve_ident`) after checking
//! its extern paths (`extern_paths.rs`; by default `.google.protobuf` maps to
//! `::prost_types`, and a few wrappers to Rust primitives). This module repeats
//! that algorithm so that service code can be generated without prost
//! (`messages=false`); a test checks it against prost-build's own answer.

use std::collections::HashSet;

use prost_types::{DescriptorProto, FileDescriptorProto, field_descriptor_proto::Type};

use crate::error::Error;
use crate::names::{to_snake, to_upper_camel};

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

/// The Rust path prost-build uses, from code generated for `package`, to name
/// the message `type_name` (fully qualified, with a leading dot).
///
/// `None` if `type_name` is not fully qualified (protoc always qualifies it).
pub(crate) fn rust_type_path(package: &str, type_name: &str) -> Option<String> {
    let name = type_name.strip_prefix('.')?;
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return None;
    }
    if let Some(path) = well_known(name) {
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

/// prost-build's default extern paths: the well-known types live in
/// `::prost_types`, and the wrappers and `Empty` become Rust types.
fn well_known(name: &str) -> Option<String> {
    let rest = name.strip_prefix("google.protobuf.")?;
    let primitive = match rest {
        "BoolValue" => "bool",
        "BytesValue" => "::prost::alloc::vec::Vec<u8>",
        "DoubleValue" => "f64",
        "Empty" => "()",
        "FloatValue" => "f32",
        "Int32Value" => "i32",
        "Int64Value" => "i64",
        "StringValue" => "::prost::alloc::string::String",
        "UInt32Value" => "u32",
        "UInt64Value" => "u64",
        _ => {
            let mut parts: Vec<&str> = rest.split('.').collect();
            // `rest` is non-empty (checked by the caller), so there is a last part.
            let last = parts.pop().unwrap_or_default();
            let mut path = vec!["::prost_types".to_owned()];
            path.extend(parts.into_iter().map(to_snake));
            path.push(to_upper_camel(last));
            return Some(path.join("::"));
        }
    };
    Some(primitive.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

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
                rust_type_path(package, type_name).unwrap(),
                expected,
                "{type_name} from {package}"
            );
        }
    }

    #[test]
    fn well_known_types() {
        assert_eq!(rust_type_path("p", ".google.protobuf.Empty").unwrap(), "()");
        assert_eq!(
            rust_type_path("p", ".google.protobuf.Timestamp").unwrap(),
            "::prost_types::Timestamp"
        );
        assert_eq!(
            rust_type_path("p", ".google.protobuf.StringValue").unwrap(),
            "::prost::alloc::string::String"
        );
        assert_eq!(
            rust_type_path("p", ".google.protobuf.FieldDescriptorProto.Type").unwrap(),
            "::prost_types::field_descriptor_proto::Type"
        );
    }

    #[test]
    fn unqualified_names_are_rejected() {
        assert_eq!(rust_type_path("p", "p.Msg"), None);
        assert_eq!(rust_type_path("p", "."), None);
        assert_eq!(rust_type_path("p", ".p..Msg"), None);
        assert_eq!(rust_type_path("p", ""), None);
    }

    /// Our resolution must give prost-build's answer for every method of every
    /// test proto: prost-build's `ServiceGenerator` hook hands us its own.
    #[test]
    fn matches_prost_build_for_test_protos() {
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
        prost_build::Config::new()
            .service_generator(Box::new(Capture(seen.clone())))
            .generate(requests)
            .unwrap();

        let mut ours = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for m in &service.method {
                    let key = format!("{}.{}.{}", file.package(), service.name(), m.name());
                    let input = rust_type_path(file.package(), m.input_type()).unwrap();
                    let output = rust_type_path(file.package(), m.output_type()).unwrap();
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
