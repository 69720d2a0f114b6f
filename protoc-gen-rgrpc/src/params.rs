//! Generation options and the parser for protoc's `--rgrpc_opt=k=v,k=v` string.

use crate::error::Error;

/// What to generate. The same options drive the protoc plugin (as
/// `--rgrpc_opt=` parameters) and the `build.rs` [`Builder`](crate::Builder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Emit prost messages (`messages=true`, the default). With `false` only the
    /// service code is written; it names messages by the paths prost would.
    pub messages: bool,
    /// Emit the client trait and stub (`client=true`, the default).
    pub client: bool,
    /// Emit the server trait, service descriptor and register function
    /// (`server=true`, the default).
    pub server: bool,
    /// Rust path of the runtime crate (`runtime_path=::rgrpc_runtime`, the
    /// default).
    pub runtime_path: String,
    /// Protobuf paths whose `bytes` fields become `bytes::Bytes` instead of
    /// `Vec<u8>` (`bytes=.` for all, `bytes=.pkg.Msg.field` for one; repeatable),
    /// passed to prost-build's `Config::bytes`. Decoding such a field from a
    /// received message slices it instead of copying it.
    pub bytes: Vec<String>,
}

/// The runtime crate's path when none is given.
pub const DEFAULT_RUNTIME_PATH: &str = "::rgrpc_runtime";

impl Default for Options {
    fn default() -> Self {
        Self {
            messages: true,
            client: true,
            server: true,
            runtime_path: DEFAULT_RUNTIME_PATH.to_owned(),
            bytes: Vec::new(),
        }
    }
}

impl Options {
    /// Parses protoc's parameter string: comma-separated `key=value` pairs.
    /// Empty entries are ignored; an unknown key or a bad value is an error that
    /// names it.
    pub fn parse(parameter: &str) -> Result<Self, Error> {
        let mut options = Self::default();
        for entry in parameter
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (key, value) = entry.split_once('=').ok_or_else(|| {
                Error::parameter(format!(
                    "parameter `{entry}` has no value: expected key=value"
                ))
            })?;
            let (key, value) = (key.trim(), value.trim());
            match key {
                "messages" => options.messages = parse_bool(key, value)?,
                "client" => options.client = parse_bool(key, value)?,
                "server" => options.server = parse_bool(key, value)?,
                "runtime_path" => options.runtime_path = parse_path(value)?,
                "bytes" if value.starts_with('.') => options.bytes.push(value.to_owned()),
                "bytes" => {
                    return Err(Error::parameter(format!(
                        "parameter `bytes` must be a protobuf path starting with `.`, not `{value}`"
                    )));
                }
                _ => {
                    return Err(Error::parameter(format!(
                        "unknown parameter `{key}` (known: messages, client, server, runtime_path, bytes)"
                    )));
                }
            }
        }
        Ok(options)
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::parameter(format!(
            "parameter `{key}` must be true or false, not `{value}`"
        ))),
    }
}

/// Checks that `value` parses as a Rust path such as `::rgrpc_runtime` or
/// `crate::rt`, so that a typo fails here rather than in generated code.
pub(crate) fn parse_path(value: &str) -> Result<String, Error> {
    match syn::parse_str::<syn::Path>(value) {
        Ok(_) => Ok(value.to_owned()),
        Err(_) => Err(Error::parameter(format!(
            "parameter `runtime_path` must be a Rust path such as ::rgrpc_runtime, not `{value}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_default() {
        assert_eq!(Options::parse("").unwrap(), Options::default());
        assert_eq!(Options::parse(" , ").unwrap(), Options::default());
    }

    #[test]
    fn all_keys() {
        let options = Options::parse(
            "messages=false,client=false, server=true,runtime_path=crate::rt,bytes=.,bytes=.a.M.f",
        )
        .unwrap();
        assert_eq!(
            options,
            Options {
                messages: false,
                client: false,
                server: true,
                runtime_path: "crate::rt".to_owned(),
                bytes: vec![".".to_owned(), ".a.M.f".to_owned()],
            }
        );
        assert!(Options::parse("bytes=a.M").unwrap_err().is_parameter());
    }

    #[test]
    fn unknown_key_is_named() {
        let error = Options::parse("client=true,flavour=mint").unwrap_err();
        assert!(error.is_parameter());
        assert!(error.to_string().contains("`flavour`"), "{error}");
    }

    #[test]
    fn bad_values_are_named() {
        let error = Options::parse("server=yes").unwrap_err();
        assert!(error.to_string().contains("`server`"), "{error}");
        assert!(error.to_string().contains("`yes`"), "{error}");
        let error = Options::parse("client").unwrap_err();
        assert!(error.to_string().contains("`client`"), "{error}");
        let error = Options::parse("runtime_path=not a path").unwrap_err();
        assert!(error.to_string().contains("runtime_path"), "{error}");
    }
}
