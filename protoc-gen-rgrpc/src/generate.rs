//! Service code from the IR: `quote!` builds the tokens, prettyplease prints
//! them. The shape of every item is the contract in `docs/generated-code.md`.

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use crate::error::Error;
use crate::ir::{Method, Service};
use crate::params::Options;

/// The formatted service code for `services` (one package), or an empty
/// string when there is nothing to emit.
pub(crate) fn services(services: &[Service], options: &Options) -> Result<String, Error> {
    let runtime: syn::Path = syn::parse_str(&options.runtime_path).map_err(|_| {
        Error::parameter(format!(
            "runtime_path `{}` is not a Rust path",
            options.runtime_path
        ))
    })?;
    let mut tokens = TokenStream::new();
    for service in services {
        tokens.extend(service_tokens(service, &runtime, options)?);
    }
    let file: syn::File = syn::parse2(tokens)
        .map_err(|e| Error::generate(format!("generated service code does not parse: {e}")))?;
    // prettyplease puts no blank line between items; print them one by one so
    // that each top-level item stands apart.
    let items: Vec<String> = file
        .items
        .into_iter()
        .map(|item| {
            prettyplease::unparse(&syn::File {
                shebang: None,
                attrs: Vec::new(),
                items: vec![item],
            })
        })
        .collect();
    Ok(items.join("\n"))
}

/// The kind of an RPC, from its two streaming flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unary,
    ServerStreaming,
    ClientStreaming,
    Bidi,
}

impl Kind {
    fn of(method: &Method) -> Self {
        match (method.client_streaming, method.server_streaming) {
            (false, false) => Kind::Unary,
            (false, true) => Kind::ServerStreaming,
            (true, false) => Kind::ClientStreaming,
            (true, true) => Kind::Bidi,
        }
    }
}

/// Tokens of one method's resolved names and types.
struct MethodTokens {
    name: Ident,
    path_const: Ident,
    req: syn::Type,
    resp: syn::Type,
    doc: TokenStream,
    deprecated: TokenStream,
    kind: Kind,
}

impl MethodTokens {
    fn new(method: &Method) -> Result<Self, Error> {
        Ok(Self {
            name: ident(&method.rust_name)?,
            path_const: ident(&method.const_name)?,
            req: rust_type(&method.input_type)?,
            resp: rust_type(&method.output_type)?,
            doc: doc(&method.doc),
            deprecated: deprecated(method.deprecated),
            kind: Kind::of(method),
        })
    }
}

fn service_tokens(
    service: &Service,
    rt: &syn::Path,
    options: &Options,
) -> Result<TokenStream, Error> {
    let methods = service
        .methods
        .iter()
        .map(MethodTokens::new)
        .collect::<Result<Vec<_>, _>>()?;
    let mut tokens = TokenStream::new();
    if options.client || options.server {
        tokens.extend(constants(service)?);
    }
    if options.client {
        tokens.extend(client(service, &methods, rt)?);
    }
    if options.server {
        tokens.extend(server(service, &methods, rt)?);
    }
    Ok(tokens)
}

fn constants(service: &Service) -> Result<TokenStream, Error> {
    let mut tokens = TokenStream::new();
    for method in &service.methods {
        let name = ident(&method.const_name)?;
        let doc = format!(
            " Full method name of `{}.{}`.",
            service.full_name, method.proto_name
        );
        let value = &method.full_method_name;
        tokens.extend(quote! {
            #[doc = #doc]
            pub const #name: &str = #value;
        });
    }
    Ok(tokens)
}

/// Client-side signature pieces: the argument and the `Ok` type.
fn client_signature(m: &MethodTokens, rt: &syn::Path, stub: bool) -> (TokenStream, TokenStream) {
    let (req, resp) = (&m.req, &m.resp);
    let request = if stub {
        quote!(request: impl ::core::convert::Into<#rt::Request<#req>>)
    } else {
        quote!(request: #rt::Request<#req>)
    };
    let options = quote!(options: #rt::CallOptions);
    match m.kind {
        Kind::Unary => (request, quote!(#rt::Response<#resp>)),
        Kind::ServerStreaming => (request, quote!(#rt::ResponseStream<#resp>)),
        Kind::ClientStreaming => (options, quote!(#rt::ClientStreamingCall<#req, #resp>)),
        Kind::Bidi => (options, quote!(#rt::BidiStreamingCall<#req, #resp>)),
    }
}

fn client(
    service: &Service,
    methods: &[MethodTokens],
    rt: &syn::Path,
) -> Result<TokenStream, Error> {
    let client_trait = ident(&service.names.client_trait)?;
    let stub = ident(&service.names.stub)?;
    let full_name = &service.full_name;
    let deprecated = deprecated(service.deprecated);
    let allow = allow_deprecated(service);
    let trait_doc = doc_around(
        &format!(" Client API of `{full_name}`."),
        &service.doc,
        &format!(
            " Implement it to mock the service in tests; `{}` implements it over a `Channel`.",
            service.names.stub
        ),
    );
    let stub_doc = format!(" Client stub for `{full_name}` over a `Channel`.");

    let trait_methods = methods.iter().map(|m| {
        let (name, doc, dep) = (&m.name, &m.doc, &m.deprecated);
        let (arg, ok) = client_signature(m, rt, false);
        quote! {
            #doc #dep
            fn #name(&self, #arg) -> impl ::core::future::Future<
                Output = ::core::result::Result<#ok, #rt::Status>,
            > + ::core::marker::Send;
        }
    });
    let stub_methods = methods.iter().map(|m| {
        let (name, doc, dep, path) = (&m.name, &m.doc, &m.deprecated, &m.path_const);
        let (arg, ok) = client_signature(m, rt, true);
        let body = match m.kind {
            Kind::Unary => quote!(self.channel.invoke(#path, request.into()).await),
            Kind::ServerStreaming => {
                quote!(self.channel.server_streaming(#path, request.into()).await)
            }
            Kind::ClientStreaming => quote!(self.channel.client_streaming(#path, options).await),
            Kind::Bidi => quote!(self.channel.bidi_streaming(#path, options).await),
        };
        quote! {
            #doc #dep
            pub async fn #name(&self, #arg) -> ::core::result::Result<#ok, #rt::Status> {
                #body
            }
        }
    });
    let impl_methods = methods.iter().map(|m| {
        let name = &m.name;
        let (arg, ok) = client_signature(m, rt, false);
        let forward = match m.kind {
            Kind::Unary | Kind::ServerStreaming => quote!(request),
            Kind::ClientStreaming | Kind::Bidi => quote!(options),
        };
        quote! {
            fn #name(&self, #arg) -> impl ::core::future::Future<
                Output = ::core::result::Result<#ok, #rt::Status>,
            > + ::core::marker::Send {
                #stub::#name(self, #forward)
            }
        }
    });
    // A service without methods never reads the channel.
    let unread = if methods.is_empty() {
        quote!(#[allow(dead_code)])
    } else {
        quote!()
    };
    Ok(quote! {
        #trait_doc #deprecated
        pub trait #client_trait: ::core::marker::Send + ::core::marker::Sync {
            #(#trait_methods)*
        }

        #[doc = #stub_doc]
        #deprecated
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        pub struct #stub {
            #unread
            channel: #rt::Channel,
        }

        #allow
        impl #stub {
            /// Creates a stub that sends its calls on `channel`.
            pub fn new(channel: #rt::Channel) -> Self {
                Self { channel }
            }

            #(#stub_methods)*
        }

        #allow
        impl #client_trait for #stub {
            #(#impl_methods)*
        }
    })
}

fn server(
    service: &Service,
    methods: &[MethodTokens],
    rt: &syn::Path,
) -> Result<TokenStream, Error> {
    let server_trait = ident(&service.names.server_trait)?;
    let desc = ident(&service.names.desc)?;
    let register = ident(&service.names.register)?;
    let full_name = &service.full_name;
    let deprecated = deprecated(service.deprecated);
    let allow = allow_deprecated(service);
    let trait_doc = doc_around(
        &format!(" Server API of `{full_name}`."),
        &service.doc,
        " Every method has a default body that answers UNIMPLEMENTED, so adding an RPC to the proto never breaks an implementation.",
    );
    let desc_doc = format!(" Service descriptor of `{full_name}`.");
    let register_doc = format!(" Registers `service` on `server` under `{full_name}`.");
    let source_file = &service.source_file;
    let files = service
        .descriptor_paths
        .iter()
        .map(|path| {
            syn::parse_str::<syn::Path>(path)
                .map_err(|_| Error::input(format!("`{path}` is not a valid Rust path")))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let trait_methods = methods.iter().zip(&service.methods).map(|(m, ir)| {
        let (name, doc, dep, resp) = (&m.name, &m.doc, &m.deprecated, &m.resp);
        let unimplemented = format!("method {} not implemented", ir.proto_name);
        let (params, args) = server_params(m, rt);
        let ok = match m.kind {
            Kind::Unary | Kind::ClientStreaming => quote!(#resp),
            Kind::ServerStreaming | Kind::Bidi => quote!(()),
        };
        quote! {
            #doc #dep
            fn #name(
                &self,
                ctx: &#rt::ServerContext,
                #params
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<#ok, #rt::Status>,
            > + ::core::marker::Send {
                let _ = (ctx, #args);
                async { ::core::result::Result::Err(#rt::Status::unimplemented(#unimplemented)) }
            }
        }
    });

    let (unary, streams): (Vec<(&MethodTokens, &Method)>, Vec<_>) = methods
        .iter()
        .zip(&service.methods)
        .partition(|(m, _)| m.kind == Kind::Unary);
    let method_descs = unary.iter().map(|(_, ir)| {
        let name = &ir.proto_name;
        quote!(#rt::MethodDesc { method_name: #name })
    });
    let stream_descs = streams.iter().map(|(_, ir)| {
        let (name, server, client) = (&ir.proto_name, ir.server_streaming, ir.client_streaming);
        quote!(#rt::StreamDesc { stream_name: #name, server_streams: #server, client_streams: #client })
    });
    let handlers = unary.iter().chain(&streams).map(|(m, _)| handler(m, rt));
    let register_body = if methods.is_empty() {
        quote! {
            let _ = service;
            server.register_service(&#desc, ::std::vec::Vec::new());
        }
    } else {
        quote! {
            let service = ::std::sync::Arc::new(service);
            let handlers = ::std::vec::Vec::from([#(#handlers),*]);
            server.register_service(&#desc, handlers);
        }
    };

    Ok(quote! {
        #trait_doc #deprecated
        pub trait #server_trait: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#trait_methods)*
        }

        #[doc = #desc_doc]
        pub static #desc: #rt::ServiceDesc = #rt::ServiceDesc {
            service_name: #full_name,
            methods: &[#(#method_descs),*],
            streams: &[#(#stream_descs),*],
            metadata: #source_file,
            files: &[#(#files),*],
        };

        #[doc = #register_doc]
        #deprecated
        #allow
        pub fn #register<S: #server_trait>(server: &mut #rt::Server, service: S) {
            #register_body
        }
    })
}

/// One entry of the handler list: a closure that owns a clone of the service.
fn handler(m: &MethodTokens, rt: &syn::Path) -> TokenStream {
    let name = &m.name;
    let constructor = match m.kind {
        Kind::Unary => quote!(unary),
        Kind::ServerStreaming => quote!(server_streaming),
        Kind::ClientStreaming => quote!(client_streaming),
        Kind::Bidi => quote!(bidi_streaming),
    };
    let (params, args) = server_params(m, rt);
    quote! {
        {
            let service = service.clone();
            #rt::Handler::#constructor(move |ctx: #rt::ServerContext, #params| {
                let service = service.clone();
                async move { service.#name(&ctx, #args).await }
            })
        }
    }
}

/// A server method's parameters after `ctx` (e.g. `request: Req, responses:
/// SendStream<Resp>`) and the matching argument list (`request, responses`).
fn server_params(m: &MethodTokens, rt: &syn::Path) -> (TokenStream, TokenStream) {
    let (req, resp) = (&m.req, &m.resp);
    match m.kind {
        Kind::Unary => (quote!(request: #req), quote!(request)),
        Kind::ServerStreaming => (
            quote!(request: #req, responses: #rt::SendStream<#resp>),
            quote!(request, responses),
        ),
        Kind::ClientStreaming => (quote!(requests: #rt::RecvStream<#req>), quote!(requests)),
        Kind::Bidi => (
            quote!(requests: #rt::RecvStream<#req>, responses: #rt::SendStream<#resp>),
            quote!(requests, responses),
        ),
    }
}

/// An identifier, raw (`r#type`) when escaped so. Errors instead of
/// panicking (as `Ident::new` would) on a name that is not an identifier.
fn ident(name: &str) -> Result<Ident, Error> {
    syn::parse_str::<Ident>(name)
        .map_err(|_| Error::input(format!("`{name}` is not a valid Rust identifier")))
}

fn rust_type(path: &str) -> Result<syn::Type, Error> {
    syn::parse_str(path).map_err(|_| Error::input(format!("`{path}` is not a valid Rust type")))
}

fn doc(lines: &[String]) -> TokenStream {
    quote!(#(#[doc = #lines])*)
}

/// A summary line, then the proto comments and a closing note, each block
/// separated by an empty doc line.
fn doc_around(summary: &str, lines: &[String], note: &str) -> TokenStream {
    let mut all = vec![summary.to_owned()];
    if !lines.is_empty() {
        all.push(String::new());
        all.extend(lines.iter().cloned());
    }
    if !note.is_empty() {
        all.push(String::new());
        all.push(note.to_owned());
    }
    doc(&all)
}

fn deprecated(yes: bool) -> TokenStream {
    if yes { quote!(#[deprecated]) } else { quote!() }
}

fn allow_deprecated(service: &Service) -> TokenStream {
    if service.uses_deprecated() {
        quote!(#[allow(deprecated)])
    } else {
        quote!()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::ServiceNames;

    fn greeter(client_streaming: bool, server_streaming: bool) -> Service {
        Service {
            full_name: "helloworld.Greeter".into(),
            names: ServiceNames::new("Greeter"),
            doc: vec![" The greeting service.".into()],
            deprecated: false,
            source_file: "helloworld.proto".into(),
            descriptor_paths: vec!["HELLOWORLD_FILE_DESCRIPTOR".into()],
            methods: vec![Method {
                proto_name: "SayHello".into(),
                rust_name: "say_hello".into(),
                const_name: "GREETER_SAY_HELLO_FULL_METHOD_NAME".into(),
                full_method_name: "/helloworld.Greeter/SayHello".into(),
                doc: vec![],
                deprecated: false,
                input_type: "HelloRequest".into(),
                output_type: "HelloReply".into(),
                client_streaming,
                server_streaming,
            }],
        }
    }

    fn squash(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn unary_matches_contract() {
        let code = squash(&services(&[greeter(false, false)], &Options::default()).unwrap());
        for needle in [
            "pub const GREETER_SAY_HELLO_FULL_METHOD_NAME: &str = \"/helloworld.Greeter/SayHello\";",
            "pub trait GreeterClient: ::core::marker::Send + ::core::marker::Sync {",
            "self.channel.invoke(GREETER_SAY_HELLO_FULL_METHOD_NAME, request.into()).await",
            "GreeterStub::say_hello(self, request)",
            "::rgrpc_runtime::Status::unimplemented(\"method SayHello not implemented\")",
            "methods: &[ ::rgrpc_runtime::MethodDesc { method_name: \"SayHello\", }, ]",
            "streams: &[]",
            "metadata: \"helloworld.proto\"",
            "files: &[HELLOWORLD_FILE_DESCRIPTOR]",
            "pub fn register_greeter_server<S: GreeterServer>(",
            "server.register_service(&GREETER_SERVICE_DESC, handlers);",
        ] {
            assert!(code.contains(needle), "missing {needle:?} in\n{code}");
        }
    }

    #[test]
    fn bidi_is_a_stream() {
        let code = squash(&services(&[greeter(true, true)], &Options::default()).unwrap());
        for needle in [
            "stream_name: \"SayHello\", server_streams: true, client_streams: true",
            "methods: &[]",
            "self.channel.bidi_streaming(GREETER_SAY_HELLO_FULL_METHOD_NAME, options).await",
            "::rgrpc_runtime::Handler::bidi_streaming(",
        ] {
            assert!(code.contains(needle), "missing {needle:?} in\n{code}");
        }
    }

    #[test]
    fn options_select_items() {
        let only_client = Options {
            server: false,
            runtime_path: "crate::rt".into(),
            ..Options::default()
        };
        let code = services(&[greeter(false, true)], &only_client).unwrap();
        assert!(code.contains("GreeterClient") && !code.contains("GreeterServer"));
        assert!(
            code.contains("crate::rt::ResponseStream<HelloReply>"),
            "{code}"
        );
        let neither = Options {
            client: false,
            server: false,
            ..Options::default()
        };
        assert_eq!(services(&[greeter(false, false)], &neither).unwrap(), "");
    }

    #[test]
    fn bad_names_are_errors_not_panics() {
        let mut service = greeter(false, false);
        service.methods[0].rust_name = "not an ident".into();
        assert!(
            services(&[service], &Options::default())
                .unwrap_err()
                .is_input()
        );
        let mut service = greeter(false, false);
        service.methods[0].input_type = "a::<".into();
        assert!(
            services(&[service], &Options::default())
                .unwrap_err()
                .is_input()
        );
    }
}
