//! Generation options and the parser for protoc's `--rgrpc_opt=k=v,k=v` string.
//!
//! The escaping rule for values with commas and `=` is documented on
//! [`Options::parse`].

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
    /// `(path, attribute)`: an attribute put on every message and enum under
    /// the protobuf path (`type_attribute=PATH=ATTR`, repeatable), prost-build's
    /// `Config::type_attribute`. `.` matches everything.
    pub type_attributes: Vec<(String, String)>,
    /// `(path, attribute)` for messages only (`message_attribute=PATH=ATTR`),
    /// prost-build's `Config::message_attribute`.
    pub message_attributes: Vec<(String, String)>,
    /// `(path, attribute)` for enums only (`enum_attribute=PATH=ATTR`),
    /// prost-build's `Config::enum_attribute`.
    pub enum_attributes: Vec<(String, String)>,
    /// `(path, attribute)` for fields (`field_attribute=PATH=ATTR`, the path
    /// naming fields such as `.pkg.Msg.field`), prost-build's
    /// `Config::field_attribute`.
    pub field_attributes: Vec<(String, String)>,
    /// `(protobuf path, Rust path)`: types under the protobuf path are not
    /// generated but named by the Rust path (`extern_path=.pkg=::other_crate::pkg`),
    /// in messages and in service code alike; prost-build's `Config::extern_path`.
    pub extern_paths: Vec<(String, String)>,
    /// Generate the `google.protobuf` types instead of naming them in
    /// `::prost_types` (`compile_well_known_types`, default off), prost-build's
    /// `Config::compile_well_known_types`.
    pub compile_well_known_types: bool,
    /// Map fields under these paths become `BTreeMap` instead of `HashMap`
    /// (`btree_map=PATH`, repeatable; `.` for all), prost-build's
    /// `Config::btree_map`.
    pub btree_map: Vec<String>,
    /// Message fields under these paths are boxed (`boxed=PATH`, repeatable),
    /// prost-build's `Config::boxed`.
    pub boxed: Vec<String>,
    /// Proto comments under these paths do not become doc comments on messages
    /// (`disable_comments=PATH`, repeatable), prost-build's
    /// `Config::disable_comments`. Service code keeps its comments.
    pub disable_comments: Vec<String>,
    /// Messages and enums under these paths get no `Debug` derive, so that the
    /// user can implement it (`skip_debug=PATH`, repeatable), prost-build's
    /// `Config::skip_debug`.
    pub skip_debug: Vec<String>,
    /// The name of one more generated file that declares the nested `pub mod`
    /// tree of every generated package and `include!`s each package's file in
    /// its module (`include_file=NAME`, default none), prost-build's
    /// `Config::include_file`. A plain file name, written beside the others.
    pub include_file: Option<String>,
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
            type_attributes: Vec::new(),
            message_attributes: Vec::new(),
            enum_attributes: Vec::new(),
            field_attributes: Vec::new(),
            extern_paths: Vec::new(),
            compile_well_known_types: false,
            btree_map: Vec::new(),
            boxed: Vec::new(),
            disable_comments: Vec::new(),
            skip_debug: Vec::new(),
            include_file: None,
        }
    }
}

/// Every parameter the plugin knows, for the unknown-parameter error.
const KNOWN: &str = "messages, client, server, runtime_path, bytes, type_attribute, \
                     message_attribute, enum_attribute, field_attribute, extern_path, \
                     compile_well_known_types, btree_map, boxed, disable_comments, skip_debug, \
                     include_file";

impl Options {
    /// Parses protoc's parameter string: comma-separated `key=value` pairs.
    /// Empty entries are ignored; an unknown key or a bad value is an error
    /// that names it.
    ///
    /// # Escaping
    ///
    /// protoc joins every `--rgrpc_opt` with commas, and attribute values such as
    /// `#[derive(Eq, Hash)]` contain commas and `=` themselves, so the parameter
    /// string is read like this:
    ///
    /// 1. It is split into entries at every comma that is not escaped. `\,` stands
    ///    for a literal comma and `\\` for a backslash; any other character after
    ///    a backslash is an error (write `\\n` for a literal `\n`).
    /// 2. An entry is split at its first `=` into key and value; spaces around
    ///    both are trimmed.
    /// 3. The value of a two-part option (`type_attribute`, `message_attribute`,
    ///    `enum_attribute`, `field_attribute`, `extern_path`) is split again at
    ///    its first `=`: `PATH=ATTRIBUTE`. Protobuf paths never contain `=`, so
    ///    the attribute may: `type_attribute=.=#[serde(rename_all = "camelCase")]`.
    ///
    /// `compile_well_known_types` is a flag: bare, or `=true` / `=false`.
    pub fn parse(parameter: &str) -> Result<Self, Error> {
        let mut options = Self::default();
        for entry in split_entries(parameter)? {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let (key, value) = match entry.split_once('=') {
                Some((key, value)) => (key.trim(), value.trim()),
                None if entry == "compile_well_known_types" => (entry, "true"),
                None => {
                    return Err(Error::parameter(format!(
                        "parameter `{entry}` has no value: expected key=value"
                    )));
                }
            };
            match key {
                "messages" => options.messages = parse_bool(key, value)?,
                "client" => options.client = parse_bool(key, value)?,
                "server" => options.server = parse_bool(key, value)?,
                "runtime_path" => options.runtime_path = parse_path(key, value)?,
                "bytes" if value.starts_with('.') => options.bytes.push(value.to_owned()),
                "bytes" => {
                    return Err(Error::parameter(format!(
                        "parameter `bytes` must be a protobuf path starting with `.`, not `{value}`"
                    )));
                }
                "type_attribute" => options.type_attributes.push(split_pair(key, value)?),
                "message_attribute" => options.message_attributes.push(split_pair(key, value)?),
                "enum_attribute" => options.enum_attributes.push(split_pair(key, value)?),
                "field_attribute" => options.field_attributes.push(split_pair(key, value)?),
                "extern_path" => {
                    let (proto, rust) = split_pair(key, value)?;
                    options.extern_paths.push(parse_extern_path(&proto, &rust)?);
                }
                "compile_well_known_types" => {
                    options.compile_well_known_types = parse_bool(key, value)?;
                }
                "btree_map" => options.btree_map.push(nonempty(key, value)?),
                "boxed" => options.boxed.push(nonempty(key, value)?),
                "disable_comments" => options.disable_comments.push(nonempty(key, value)?),
                "skip_debug" => options.skip_debug.push(nonempty(key, value)?),
                "include_file" => options.include_file = Some(parse_file_name(key, value)?),
                "file_descriptor_set_path" => {
                    return Err(Error::parameter(
                        "parameter `file_descriptor_set_path` is for build.rs only: with protoc, \
                         use `--descriptor_set_out=FILE --include_imports`"
                            .to_owned(),
                    ));
                }
                _ => {
                    return Err(Error::parameter(format!(
                        "unknown parameter `{key}` (known: {KNOWN})"
                    )));
                }
            }
        }
        Ok(options)
    }

    /// Checks the values that only fail later, in generated code or in
    /// prost-build: the runtime path and the extern paths. [`parse`](Self::parse)
    /// checks them as it reads them; the `build.rs` builder calls this.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        parse_path("runtime_path", &self.runtime_path)?;
        for (proto, rust) in &self.extern_paths {
            parse_extern_path(proto, rust)?;
        }
        if let Some(name) = &self.include_file {
            parse_file_name("include_file", name)?;
        }
        Ok(())
    }
}

/// Splits the parameter string at unescaped commas and resolves `\,` and
/// `\\`.
fn split_entries(parameter: &str) -> Result<Vec<String>, Error> {
    let mut entries = Vec::new();
    let mut current = String::new();
    let mut chars = parameter.chars();
    while let Some(c) = chars.next() {
        match c {
            ',' => entries.push(std::mem::take(&mut current)),
            '\\' => match chars.next() {
                Some(escaped @ (',' | '\\')) => current.push(escaped),
                other => {
                    let after = other.map_or("the end".to_owned(), |c| format!("`{c}`"));
                    return Err(Error::parameter(format!(
                        "parameter `{current}\\...`: a backslash must be followed by `,` or `\\`, \
                         not {after} (write `\\\\` for a literal backslash)"
                    )));
                }
            },
            _ => current.push(c),
        }
    }
    entries.push(current);
    Ok(entries)
}

/// Splits `PATH=VALUE` at the first `=`.
fn split_pair(key: &str, value: &str) -> Result<(String, String), Error> {
    match value.split_once('=') {
        Some((path, rest)) if !path.trim().is_empty() && !rest.trim().is_empty() => {
            Ok((path.trim().to_owned(), rest.trim().to_owned()))
        }
        _ => Err(Error::parameter(format!(
            "parameter `{key}` must be PATH=VALUE, not `{value}`"
        ))),
    }
}

fn nonempty(key: &str, value: &str) -> Result<String, Error> {
    if value.is_empty() {
        return Err(Error::parameter(format!(
            "parameter `{key}` needs a protobuf path (`.` for all)"
        )));
    }
    Ok(value.to_owned())
}

/// An extern path maps a fully-qualified protobuf path (as prost-build
/// requires, `extern_paths.rs`) to a Rust path or type (`::bytes::Bytes`,
/// `crate::pb`, `()`).
fn parse_extern_path(proto: &str, rust: &str) -> Result<(String, String), Error> {
    let qualified = proto
        .strip_prefix('.')
        .is_some_and(|name| !name.split('.').any(str::is_empty));
    if !qualified {
        return Err(Error::parameter(format!(
            "parameter `extern_path`: `{proto}` must be a fully-qualified protobuf path such as `.pkg` or `.pkg.Msg`"
        )));
    }
    if syn::parse_str::<syn::Type>(rust).is_err() {
        return Err(Error::parameter(format!(
            "parameter `extern_path`: `{rust}` (for `{proto}`) must be a Rust path such as ::other_crate::pkg"
        )));
    }
    Ok((proto.to_owned(), rust.to_owned()))
}

/// A file name without directories: the include file sits beside the files
/// it includes, which its relative `include!` paths rely on.
fn parse_file_name(key: &str, value: &str) -> Result<String, Error> {
    if value.is_empty() || value.contains(['/', '\\']) || value == "." || value == ".." {
        return Err(Error::parameter(format!(
            "parameter `{key}` must be a file name such as `_includes.rs`, without directories, not `{value}`"
        )));
    }
    Ok(value.to_owned())
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
fn parse_path(key: &str, value: &str) -> Result<String, Error> {
    match syn::parse_str::<syn::Path>(value) {
        Ok(_) => Ok(value.to_owned()),
        Err(_) => Err(Error::parameter(format!(
            "parameter `{key}` must be a Rust path such as ::rgrpc_runtime, not `{value}`"
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
                ..Options::default()
            }
        );
        assert!(Options::parse("bytes=a.M").unwrap_err().is_parameter());
    }

    fn pair(path: &str, value: &str) -> (String, String) {
        (path.to_owned(), value.to_owned())
    }

    #[test]
    fn prost_build_keys() {
        let options = Options::parse(
            "type_attribute=.=#[derive(Eq\\, Hash)],\
             message_attribute=.a.M=#[serde(rename_all = \"camelCase\")],\
             enum_attribute=.a.E=#[repr(C)],field_attribute=.a.M.f=#[doc = \"x\"],\
             extern_path=.other=::other_crate::pb,extern_path=.a.Id=crate::Id,\
             compile_well_known_types,btree_map=.,boxed=.a.M.child,\
             disable_comments=.a,skip_debug=.a.M,skip_debug=.a.E",
        )
        .unwrap();
        assert_eq!(
            options,
            Options {
                type_attributes: vec![pair(".", "#[derive(Eq, Hash)]")],
                message_attributes: vec![pair(".a.M", "#[serde(rename_all = \"camelCase\")]")],
                enum_attributes: vec![pair(".a.E", "#[repr(C)]")],
                field_attributes: vec![pair(".a.M.f", "#[doc = \"x\"]")],
                extern_paths: vec![
                    pair(".other", "::other_crate::pb"),
                    pair(".a.Id", "crate::Id")
                ],
                compile_well_known_types: true,
                btree_map: vec![".".to_owned()],
                boxed: vec![".a.M.child".to_owned()],
                disable_comments: vec![".a".to_owned()],
                skip_debug: vec![".a.M".to_owned(), ".a.E".to_owned()],
                ..Options::default()
            }
        );
        let options = Options::parse("compile_well_known_types=false").unwrap();
        assert!(!options.compile_well_known_types);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            split_entries("a=1\\,2,b=x\\\\y,,c=\\\\\\,").unwrap(),
            ["a=1,2", "b=x\\y", "", "c=\\,"]
        );
        // The escaped comma does not end the entry; the plain one does.
        let options = Options::parse("type_attribute=.a=#[derive(A\\, B)],client=false").unwrap();
        assert_eq!(options.type_attributes, [pair(".a", "#[derive(A, B)]")]);
        assert!(!options.client);
        // A doc string with a backslash escape of its own.
        let options = Options::parse("type_attribute=.a=#[doc = \"x\\\\ny\"]").unwrap();
        assert_eq!(options.type_attributes, [pair(".a", "#[doc = \"x\\ny\"]")]);
        for bad in ["type_attribute=.a=#[doc = \"\\n\"]", "client=true\\"] {
            let error = Options::parse(bad).unwrap_err();
            assert!(error.is_parameter());
            assert!(error.to_string().contains("backslash"), "{error}");
        }
    }

    #[test]
    fn pairs_split_at_the_first_equals() {
        let options = Options::parse("field_attribute=.a.M.f=#[a = \"b=c\"]").unwrap();
        assert_eq!(options.field_attributes, [pair(".a.M.f", "#[a = \"b=c\"]")]);
        for bad in [
            "type_attribute=.a",
            "type_attribute==#[x]",
            "type_attribute=.a=",
        ] {
            let error = Options::parse(bad).unwrap_err();
            assert!(error.to_string().contains("PATH=VALUE"), "{bad}: {error}");
        }
    }

    #[test]
    fn extern_paths_are_checked() {
        for bad in [
            "extern_path=pkg=::x",
            "extern_path=.=::x",
            "extern_path=.a..b=::x",
            "extern_path=.a=not a path",
        ] {
            let error = Options::parse(bad).unwrap_err();
            assert!(error.to_string().contains("extern_path"), "{bad}: {error}");
        }
        let options = Options::parse("extern_path=.google.protobuf.Empty=()").unwrap();
        assert_eq!(options.extern_paths, [pair(".google.protobuf.Empty", "()")]);
    }

    #[test]
    fn unknown_key_is_named() {
        let error = Options::parse("client=true,flavour=mint").unwrap_err();
        assert!(error.is_parameter());
        assert!(error.to_string().contains("`flavour`"), "{error}");
        assert!(error.to_string().contains("skip_debug"), "{error}");
        assert!(error.to_string().contains("include_file"), "{error}");
        let error = Options::parse("file_descriptor_set_path=x.bin").unwrap_err();
        assert!(
            error.to_string().contains("--descriptor_set_out"),
            "{error}"
        );
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

    #[test]
    fn include_file_is_a_plain_file_name() {
        let options = Options::parse("include_file=_includes.rs").unwrap();
        assert_eq!(options.include_file.as_deref(), Some("_includes.rs"));
        for bad in [
            "include_file=",
            "include_file=sub/mod.rs",
            "include_file=..",
        ] {
            let error = Options::parse(bad).unwrap_err();
            assert!(error.to_string().contains("include_file"), "{error}");
        }
        let options = Options {
            include_file: Some("a/b.rs".to_owned()),
            ..Options::default()
        };
        assert!(options.validate().unwrap_err().is_parameter());
    }
}
