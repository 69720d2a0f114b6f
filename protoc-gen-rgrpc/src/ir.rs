//! The intermediate representation of service code: what to generate, with
//! every name and type path already resolved. Built from descriptors alone,
//! so it does not depend on prost-build having generated the messages.

use std::collections::HashMap;

use prost_types::{FileDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto};

use crate::comments::{FILE_SERVICE, SERVICE_METHOD, doc_lines};
use crate::error::Error;
use crate::names::{self, ServiceNames};
use crate::resolve::{ExternPaths, TypeIndex, rust_type_path};

/// One protobuf service, ready to be turned into tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Service {
    /// Full protobuf name, `pkg.Service` (`Service` without a package).
    pub full_name: String,
    /// Names of the generated items.
    pub names: ServiceNames,
    /// Doc lines from the proto comments.
    pub doc: Vec<String>,
    /// `option deprecated = true` on the service.
    pub deprecated: bool,
    /// The .proto file that defines it, as protoc names it (the descriptor's
    /// `metadata`, like grpc-go's).
    pub source_file: String,
    /// Rust paths, from the service's module, of the encoded descriptors of
    /// `source_file` and its transitive imports (filled by the pipeline, which
    /// knows where each file's descriptor is; see `descriptors`).
    pub descriptor_paths: Vec<String>,
    /// The methods, in .proto order.
    pub methods: Vec<Method>,
}

/// One RPC of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Method {
    /// The name in the .proto file, e.g. `SayHello`.
    pub proto_name: String,
    /// The Rust method name, snake_case and escaped, e.g. `say_hello`, `r#type`.
    pub rust_name: String,
    /// Name of the full-method-name constant.
    pub const_name: String,
    /// The full method name, `/pkg.Service/Method`.
    pub full_method_name: String,
    /// Doc lines from the proto comments.
    pub doc: Vec<String>,
    /// `option deprecated = true` on the method.
    pub deprecated: bool,
    /// Rust path of the request message, as prost names it.
    pub input_type: String,
    /// Rust path of the response message, as prost names it.
    pub output_type: String,
    /// The client sends a stream of requests.
    pub client_streaming: bool,
    /// The server sends a stream of responses.
    pub server_streaming: bool,
}

impl Service {
    /// True if the service or any of its methods is deprecated, so generated
    /// code that uses them must allow the lint.
    pub(crate) fn uses_deprecated(&self) -> bool {
        self.deprecated || self.methods.iter().any(|m| m.deprecated)
    }
}

/// Builds the IR of every service in `file`. `index` holds every type of the
/// request, to check that method types exist; `externs` names the types that
/// live outside the generated code.
pub(crate) fn services(
    file: &FileDescriptorProto,
    index: &TypeIndex,
    externs: &ExternPaths,
) -> Result<Vec<Service>, Error> {
    let mut services = Vec::with_capacity(file.service.len());
    for (i, service) in file.service.iter().enumerate() {
        let path = [FILE_SERVICE, index_i32(i)?];
        services.push(build_service(file, service, &path, index, externs)?);
    }
    Ok(services)
}

fn build_service(
    file: &FileDescriptorProto,
    service: &ServiceDescriptorProto,
    path: &[i32],
    index: &TypeIndex,
    externs: &ExternPaths,
) -> Result<Service, Error> {
    let full_name = match file.package() {
        "" => service.name().to_owned(),
        package => format!("{package}.{}", service.name()),
    };
    let mut methods = Vec::with_capacity(service.method.len());
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (i, method) in service.method.iter().enumerate() {
        let method_path = [path[0], path[1], SERVICE_METHOD, index_i32(i)?];
        let built = build_method(
            file,
            service,
            &full_name,
            method,
            &method_path,
            index,
            externs,
        )?;
        if let Some(other) = seen.insert(built.rust_name.clone(), method.name()) {
            return Err(Error::input(format!(
                "{}: methods `{other}` and `{}` of service `{full_name}` both become Rust method `{}`",
                file.name(),
                method.name(),
                built.rust_name
            )));
        }
        methods.push(built);
    }
    Ok(Service {
        names: ServiceNames::new(service.name()),
        doc: doc_lines(file, path),
        deprecated: service.options.as_ref().is_some_and(|o| o.deprecated()),
        source_file: file.name().to_owned(),
        descriptor_paths: Vec::new(),
        methods,
        full_name,
    })
}

fn build_method(
    file: &FileDescriptorProto,
    service: &ServiceDescriptorProto,
    service_full_name: &str,
    method: &MethodDescriptorProto,
    path: &[i32],
    index: &TypeIndex,
    externs: &ExternPaths,
) -> Result<Method, Error> {
    let resolve = |role: &str, type_name: &str| {
        if !index.is_message(type_name) {
            return Err(Error::input(format!(
                "{}: method `{service_full_name}.{}` has {role} type `{type_name}`, which no file of the request defines",
                file.name(),
                method.name()
            )));
        }
        // A defined message name is fully qualified, so it resolves.
        rust_type_path(file.package(), type_name, externs).ok_or_else(|| {
            Error::input(format!(
                "{}: method `{service_full_name}.{}` has {role} type `{type_name}`, which is not a fully-qualified name",
                file.name(),
                method.name()
            ))
        })
    };
    Ok(Method {
        proto_name: method.name().to_owned(),
        rust_name: names::method(method.name()),
        const_name: names::full_method_name_const(service.name(), method.name()),
        full_method_name: format!("/{service_full_name}/{}", method.name()),
        doc: doc_lines(file, path),
        deprecated: method.options.as_ref().is_some_and(|o| o.deprecated()),
        input_type: resolve("input", method.input_type())?,
        output_type: resolve("output", method.output_type())?,
        client_streaming: method.client_streaming(),
        server_streaming: method.server_streaming(),
    })
}

fn index_i32(i: usize) -> Result<i32, Error> {
    i32::try_from(i).map_err(|_| Error::input("more than 2^31 services or methods"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{DescriptorProto, MethodOptions};

    fn file(methods: Vec<MethodDescriptorProto>) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some("p/x.proto".into()),
            package: Some("p".into()),
            message_type: vec![DescriptorProto {
                name: Some("M".into()),
                ..Default::default()
            }],
            service: vec![ServiceDescriptorProto {
                name: Some("Svc".into()),
                method: methods,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn method(name: &str, input: &str) -> MethodDescriptorProto {
        MethodDescriptorProto {
            name: Some(name.into()),
            input_type: Some(input.into()),
            output_type: Some(".p.M".into()),
            ..Default::default()
        }
    }

    #[test]
    fn builds_service() {
        let mut m = method("Type", ".p.M");
        m.server_streaming = Some(true);
        m.options = Some(MethodOptions {
            deprecated: Some(true),
            ..Default::default()
        });
        let f = file(vec![m]);
        let services = services(&f, &TypeIndex::new([&f]), &ExternPaths::default()).unwrap();
        let s = &services[0];
        assert_eq!(s.full_name, "p.Svc");
        assert_eq!(s.source_file, "p/x.proto");
        assert!(s.uses_deprecated());
        let m = &s.methods[0];
        assert_eq!(m.rust_name, "r#type");
        assert_eq!(m.const_name, "SVC_TYPE_FULL_METHOD_NAME");
        assert_eq!(m.full_method_name, "/p.Svc/Type");
        assert_eq!((m.input_type.as_str(), m.output_type.as_str()), ("M", "M"));
        assert!(m.server_streaming && !m.client_streaming);
    }

    #[test]
    fn unresolvable_type_is_named() {
        let f = file(vec![method("Get", ".p.Missing")]);
        let error = services(&f, &TypeIndex::new([&f]), &ExternPaths::default()).unwrap_err();
        assert!(error.is_input());
        let text = error.to_string();
        assert!(
            text.contains("`p.Svc.Get`") && text.contains("`.p.Missing`"),
            "{text}"
        );

        let f = file(vec![method("Get", "M")]);
        let error = services(&f, &TypeIndex::new([&f]), &ExternPaths::default()).unwrap_err();
        assert!(error.to_string().contains("`M`"), "{error}");
    }

    #[test]
    fn colliding_method_names_are_an_error() {
        let f = file(vec![
            method("GetThing", ".p.M"),
            method("get_thing", ".p.M"),
        ]);
        let error = services(&f, &TypeIndex::new([&f]), &ExternPaths::default()).unwrap_err();
        assert!(error.to_string().contains("get_thing"), "{error}");
    }
}
