//! Rust names for protobuf names: casing (via heck) and keyword escaping.
//!
//! The casing and escaping rules are prost-build's (`ident.rs`), because the
//! type paths we emit must name exactly the items prost generates.

use heck::{ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};

/// Escapes a Rust keyword: `r#` for the ones that can be raw identifiers, a
/// trailing `_` for those that cannot (`self`, `Self`, `super`, `crate`,
/// `extern`, `_`), a leading `_` for names that start with a digit.
pub(crate) fn sanitize(ident: &str) -> String {
    match ident {
        // Strict and reserved keywords of editions 2015 to 2024.
        "as" | "break" | "const" | "continue" | "else" | "enum" | "false" | "fn" | "for" | "if"
        | "impl" | "in" | "let" | "loop" | "match" | "mod" | "move" | "mut" | "pub" | "ref"
        | "return" | "static" | "struct" | "trait" | "true" | "type" | "unsafe" | "use"
        | "where" | "while" | "dyn" | "abstract" | "become" | "box" | "do" | "final" | "macro"
        | "override" | "priv" | "typeof" | "unsized" | "virtual" | "yield" | "async" | "await"
        | "try" | "gen" => format!("r#{ident}"),
        // Keywords that cannot be raw identifiers.
        "_" | "super" | "self" | "Self" | "extern" | "crate" => format!("{ident}_"),
        s if s.starts_with(|c: char| c.is_ascii_digit()) => format!("_{ident}"),
        _ => ident.to_owned(),
    }
}

/// snake_case, escaped: module names and method names (prost's `to_snake`).
pub(crate) fn to_snake(ident: &str) -> String {
    sanitize(&ident.to_snake_case())
}

/// UpperCamelCase, escaped: type names (prost's `to_upper_camel`).
pub(crate) fn to_upper_camel(ident: &str) -> String {
    sanitize(&ident.to_upper_camel_case())
}

/// The Rust method name of an RPC: snake_case, escaped. `new` would collide
/// with the stub's constructor, so it becomes `new_` (everywhere, so the client
/// trait, stub and server trait agree).
pub(crate) fn method(proto_name: &str) -> String {
    match to_snake(proto_name).as_str() {
        "new" => "new_".to_owned(),
        other => other.to_owned(),
    }
}

/// Per-service item names, all derived from the proto service name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceNames {
    /// `{Service}Client`: the client trait.
    pub client_trait: String,
    /// `{Service}Stub`: the client stub over a channel.
    pub stub: String,
    /// `{Service}Server`: the server trait.
    pub server_trait: String,
    /// `{SERVICE}_SERVICE_DESC`: the static service descriptor.
    pub desc: String,
    /// `register_{service}_server`: the registration function.
    pub register: String,
}

impl ServiceNames {
    /// Names for a service called `proto_name` in the .proto file.
    pub(crate) fn new(proto_name: &str) -> Self {
        let camel = proto_name.to_upper_camel_case();
        Self {
            client_trait: format!("{camel}Client"),
            stub: format!("{camel}Stub"),
            server_trait: format!("{camel}Server"),
            desc: format!("{}_SERVICE_DESC", proto_name.to_shouty_snake_case()),
            register: format!("register_{}_server", proto_name.to_snake_case()),
        }
    }
}

/// `{SERVICE}_{METHOD}_FULL_METHOD_NAME`: the constant holding `/pkg.Svc/Method`.
pub(crate) fn full_method_name_const(service: &str, method: &str) -> String {
    format!(
        "{}_{}_FULL_METHOD_NAME",
        service.to_shouty_snake_case(),
        method.to_shouty_snake_case()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_escaped() {
        assert_eq!(method("Type"), "r#type");
        assert_eq!(method("Match"), "r#match");
        assert_eq!(method("Self"), "self_");
        assert_eq!(method("Super"), "super_");
        assert_eq!(method("Crate"), "crate_");
        assert_eq!(method("Gen"), "r#gen");
        assert_eq!(method("New"), "new_");
        assert_eq!(method("SayHello"), "say_hello");
        assert_eq!(method("HTTPGet"), "http_get");
        assert_eq!(to_upper_camel("Self"), "Self_");
        assert_eq!(to_upper_camel("lower_snake_message"), "LowerSnakeMessage");
        assert_eq!(to_snake("Self"), "self_");
        assert_eq!(sanitize("3d"), "_3d");
    }

    #[test]
    fn service_names() {
        let names = ServiceNames::new("Greeter");
        assert_eq!(names.client_trait, "GreeterClient");
        assert_eq!(names.stub, "GreeterStub");
        assert_eq!(names.server_trait, "GreeterServer");
        assert_eq!(names.desc, "GREETER_SERVICE_DESC");
        assert_eq!(names.register, "register_greeter_server");
        let names = ServiceNames::new("lower_case_service");
        assert_eq!(names.client_trait, "LowerCaseServiceClient");
        assert_eq!(names.register, "register_lower_case_service_server");
    }

    #[test]
    fn full_method_name_constants() {
        assert_eq!(
            full_method_name_const("Greeter", "SayHello"),
            "GREETER_SAY_HELLO_FULL_METHOD_NAME"
        );
        assert_eq!(
            full_method_name_const("RouteGuide", "GetFeature"),
            "ROUTE_GUIDE_GET_FEATURE_FULL_METHOD_NAME"
        );
    }
}
