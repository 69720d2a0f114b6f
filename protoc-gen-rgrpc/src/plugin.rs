//! The protoc plugin protocol: `CodeGeneratorRequest` bytes in,
//! `CodeGeneratorResponse` out.

use prost::Message;
use prost_types::compiler::{
    CodeGeneratorRequest, CodeGeneratorResponse, code_generator_response::Feature,
    code_generator_response::File,
};

use crate::error::Error;
use crate::params::Options;
use crate::pipeline::{generate_files, options_for_named};

/// Decodes a serialized `CodeGeneratorRequest`, generates, and returns the
/// serialized `CodeGeneratorResponse`.
///
/// Errors in the request's content (parameters, descriptors) are reported the
/// protoc way, in `CodeGeneratorResponse.error`, so this only fails when the
/// bytes are not a request at all.
pub fn run(request: &[u8]) -> Result<Vec<u8>, Error> {
    let request = CodeGeneratorRequest::decode(request).map_err(|e| {
        Error::input(format!(
            "stdin is not a CodeGeneratorRequest ({e}); protoc-gen-rgrpc is a protoc plugin: \
             run it as `protoc --plugin=protoc-gen-rgrpc=PATH --rgrpc_out=DIR file.proto`"
        ))
    })?;
    Ok(respond(&request).encode_to_vec())
}

/// Answers a decoded request.
pub fn respond(request: &CodeGeneratorRequest) -> CodeGeneratorResponse {
    let mut response = CodeGeneratorResponse {
        supported_features: Some(Feature::Proto3Optional as u64),
        ..Default::default()
    };
    match Options::parse(request.parameter()).and_then(|options| {
        // protoc names the files it hands over: well-known types among them are
        // generated, not mapped to `::prost_types`.
        let options = options_for_named(&options, &request.proto_file, &request.file_to_generate);
        generate_files(&request.proto_file, &request.file_to_generate, &options)
    }) {
        Ok(files) => {
            response.file = files
                .into_iter()
                .map(|f| File {
                    name: Some(f.name),
                    content: Some(f.content),
                    ..Default::default()
                })
                .collect();
        }
        Err(error) => response.error = Some(error.to_string()),
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{
        DescriptorProto, FileDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto,
    };

    fn request(parameter: &str, method_input: &str) -> CodeGeneratorRequest {
        CodeGeneratorRequest {
            file_to_generate: vec!["hello.proto".into()],
            parameter: Some(parameter.into()),
            proto_file: vec![FileDescriptorProto {
                name: Some("hello.proto".into()),
                package: Some("hello".into()),
                syntax: Some("proto3".into()),
                message_type: vec![DescriptorProto {
                    name: Some("Msg".into()),
                    ..Default::default()
                }],
                service: vec![ServiceDescriptorProto {
                    name: Some("Greeter".into()),
                    method: vec![MethodDescriptorProto {
                        name: Some("SayHello".into()),
                        input_type: Some(method_input.into()),
                        output_type: Some(".hello.Msg".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn decode(bytes: &[u8]) -> CodeGeneratorResponse {
        CodeGeneratorResponse::decode(bytes).expect("run() returns an encoded response")
    }

    #[test]
    fn generates_and_declares_proto3_optional() {
        let response = decode(&run(&request("", ".hello.Msg").encode_to_vec()).unwrap());
        assert_eq!(response.error, None);
        assert_eq!(response.supported_features, Some(1));
        assert_eq!(response.file.len(), 1);
        assert_eq!(response.file[0].name(), "hello.rs");
        assert!(
            response.file[0]
                .content()
                .contains("pub trait GreeterServer")
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let error = run(b"\xff\xff\xff garbage").unwrap_err();
        assert!(error.is_input());
        assert!(
            error.to_string().contains("CodeGeneratorRequest"),
            "{error}"
        );
    }

    #[test]
    fn unknown_parameter_goes_in_response_error() {
        let response = respond(&request("client=true,colour=blue", ".hello.Msg"));
        assert!(
            response.error().contains("`colour`"),
            "{}",
            response.error()
        );
        assert!(response.file.is_empty());
    }

    #[test]
    fn missing_file_goes_in_response_error() {
        let mut req = request("", ".hello.Msg");
        req.file_to_generate.push("absent.proto".into());
        let response = respond(&req);
        assert!(
            response.error().contains("`absent.proto`"),
            "{}",
            response.error()
        );
    }

    #[test]
    fn unresolvable_type_goes_in_response_error() {
        let response = respond(&request("", ".hello.Nope"));
        assert!(
            response.error().contains("`.hello.Nope`"),
            "{}",
            response.error()
        );
    }
}
