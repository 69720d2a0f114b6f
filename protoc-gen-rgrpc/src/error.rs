//! The crate's error type: opaque, with a private kind and predicate methods.

use std::fmt;

/// Why code generation failed.
///
/// The message (its `Display`) is meant for a person: it names the parameter,
/// file, method or type at fault. Predicates tell the broad class apart.
pub struct Error {
    kind: Kind,
    message: String,
}

/// The private classification behind [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A plugin parameter or builder option is malformed or unknown.
    Parameter,
    /// The descriptors are inconsistent: a missing file, an unresolvable type,
    /// two methods that map to the same Rust name, an undecodable request.
    Input,
    /// Reading `.proto` files or writing generated files failed.
    Io,
    /// Code generation itself failed (prost-build, or our own token output).
    Generate,
}

impl Error {
    pub(crate) fn parameter(message: impl Into<String>) -> Self {
        Self::new(Kind::Parameter, message)
    }

    pub(crate) fn input(message: impl Into<String>) -> Self {
        Self::new(Kind::Input, message)
    }

    pub(crate) fn io(message: impl Into<String>) -> Self {
        Self::new(Kind::Io, message)
    }

    pub(crate) fn generate(message: impl Into<String>) -> Self {
        Self::new(Kind::Generate, message)
    }

    fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// True if a plugin parameter or builder option was malformed or unknown.
    pub fn is_parameter(&self) -> bool {
        self.kind == Kind::Parameter
    }

    /// True if the input descriptors (or the bytes they came in) were bad.
    pub fn is_input(&self) -> bool {
        self.kind == Kind::Input
    }

    /// True if reading `.proto` files or writing output failed.
    pub fn is_io(&self) -> bool {
        self.kind == Kind::Io
    }

    /// True if code generation itself failed.
    pub fn is_generate(&self) -> bool {
        self.kind == Kind::Generate
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The same text as `Display`, as anyhow's `Error` does: a `build.rs` whose
/// `main` returns `Result<(), Box<dyn Error>>` prints the error with `Debug`,
/// and should print `path:line:column: message`, not a struct.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    /// Lets a `build.rs` that returns `std::io::Result` use `?` on our errors.
    fn from(error: Error) -> Self {
        std::io::Error::other(error.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_follow_kind() {
        assert!(Error::parameter("p").is_parameter());
        assert!(Error::input("i").is_input());
        assert!(Error::io("o").is_io());
        assert!(Error::generate("g").is_generate());
        assert!(!Error::input("i").is_parameter());
    }

    #[test]
    fn display_is_the_message() {
        assert_eq!(Error::input("bad type .x.Y").to_string(), "bad type .x.Y");
    }

    #[test]
    fn debug_is_display() {
        let error = Error::input("a.proto:1:2: bad");
        assert_eq!(format!("{error:?}"), error.to_string());
    }
}
