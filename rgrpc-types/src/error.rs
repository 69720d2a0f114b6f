//! The error of reading details: what was wrong, never a panic.

use std::fmt;

/// The details of a status could not be read: they are not a `google.rpc.Status`,
/// its code or message differ from the status's own, or a standard detail's bytes do
/// not decode as the type its URL names.
#[derive(Clone, Debug)]
pub struct DetailsError {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    /// `grpc-status-details-bin` is not a `google.rpc.Status`.
    Malformed(prost::DecodeError),
    /// The `google.rpc.Status` disagrees with the status it came with.
    Mismatch {
        field: &'static str,
        details: String,
        status: String,
    },
    /// Detail `index` names a known type but does not decode as it.
    Detail {
        index: usize,
        type_url: String,
        error: prost::DecodeError,
    },
}

impl DetailsError {
    pub(crate) fn malformed(error: prost::DecodeError) -> Self {
        DetailsError {
            kind: Kind::Malformed(error),
        }
    }

    pub(crate) fn mismatch(field: &'static str, details: String, status: String) -> Self {
        DetailsError {
            kind: Kind::Mismatch {
                field,
                details,
                status,
            },
        }
    }

    pub(crate) fn detail(index: usize, type_url: &str, error: prost::DecodeError) -> Self {
        DetailsError {
            kind: Kind::Detail {
                index,
                type_url: type_url.to_owned(),
                error,
            },
        }
    }

    /// The `google.rpc.Status` decoded but its code or message is not the status's
    /// (grpcio's `rpc_status.from_call` raises `ValueError` in this case).
    pub fn is_mismatch(&self) -> bool {
        matches!(self.kind, Kind::Mismatch { .. })
    }

    /// The bytes did not decode: the whole `google.rpc.Status`, or one detail.
    pub fn is_decode(&self) -> bool {
        matches!(self.kind, Kind::Malformed(_) | Kind::Detail { .. })
    }
}

impl fmt::Display for DetailsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Malformed(error) => {
                write!(
                    f,
                    "grpc-status-details-bin is not a google.rpc.Status: {error}"
                )
            }
            Kind::Mismatch {
                field,
                details,
                status,
            } => write!(
                f,
                "the {field} in grpc-status-details-bin ({details:?}) is not the status's ({status:?})"
            ),
            Kind::Detail {
                index,
                type_url,
                error,
            } => {
                write!(
                    f,
                    "status detail {index} ({type_url}) does not decode: {error}"
                )
            }
        }
    }
}

impl std::error::Error for DetailsError {}
