//! One error detail: a standard `google.rpc` message or any other, and its
//! `google.protobuf.Any` form.

use prost::{Message, Name};
use prost_types::Any;

use crate::error::DetailsError;
use crate::pb::{
    BadRequest, DebugInfo, ErrorInfo, Help, LocalizedMessage, PreconditionFailure, QuotaFailure,
    RequestInfo, ResourceInfo, RetryInfo,
};

/// The type URL prefix of the details this crate writes, as protobuf's `Any.pack`
/// and grpc-go write it. When reading, only the part after the last `/` counts
/// (`google/protobuf/any.proto`: the name of the type is the URL's last segment).
pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// The full protobuf name of an `Any`'s type: its URL after the last `/`.
pub(crate) fn type_name(type_url: &str) -> &str {
    type_url.rsplit('/').next().unwrap_or(type_url)
}

macro_rules! standard_details {
    ($($ty:ident),* $(,)?) => {
        /// One detail of a status: one of the standard `google.rpc` error details,
        /// or any other message as the `google.protobuf.Any` it came in.
        #[derive(Clone, Debug, PartialEq)]
        pub enum ErrorDetail {
            $(
                #[doc = concat!("`google.rpc.", stringify!($ty), "`.")]
                $ty($ty),
            )*
            /// A detail of another type, kept as it came (your own messages, or a
            /// newer standard type): read it with [`Any::to_msg`] or
            /// [`StatusExt::detail`](crate::StatusExt::detail).
            Other(Any),
        }

        $(
            impl Name for $ty {
                const NAME: &'static str = stringify!($ty);
                const PACKAGE: &'static str = "google.rpc";
                fn type_url() -> String {
                    concat!("type.googleapis.com/google.rpc.", stringify!($ty)).to_owned()
                }
            }

            impl From<$ty> for ErrorDetail {
                fn from(detail: $ty) -> ErrorDetail {
                    ErrorDetail::$ty(detail)
                }
            }
        )*

        impl ErrorDetail {
            /// The detail as a `google.protobuf.Any` with a
            /// `type.googleapis.com/google.rpc.<Type>` URL (an `Other` as it is).
            pub fn to_any(&self) -> Any {
                match self {
                    $(
                        ErrorDetail::$ty(detail) => Any {
                            type_url: <$ty as Name>::type_url(),
                            value: detail.encode_to_vec(),
                        },
                    )*
                    ErrorDetail::Other(any) => any.clone(),
                }
            }

            /// The protobuf type URL of the detail.
            pub fn type_url(&self) -> String {
                match self {
                    $( ErrorDetail::$ty(_) => <$ty as Name>::type_url(), )*
                    ErrorDetail::Other(any) => any.type_url.clone(),
                }
            }

            /// Decodes an `Any`: a standard type by the name its URL ends with, any
            /// other kept as `Other`. `index` (its place in the list) is for the error.
            pub(crate) fn from_any(index: usize, any: Any) -> Result<ErrorDetail, DetailsError> {
                let name = type_name(&any.type_url);
                $(
                    if name == concat!("google.rpc.", stringify!($ty)) {
                        return $ty::decode(any.value.as_slice())
                            .map(ErrorDetail::$ty)
                            .map_err(|e| DetailsError::detail(index, &any.type_url, e));
                    }
                )*
                Ok(ErrorDetail::Other(any))
            }
        }
    };
}

standard_details!(
    ErrorInfo,
    RetryInfo,
    DebugInfo,
    QuotaFailure,
    PreconditionFailure,
    BadRequest,
    RequestInfo,
    ResourceInfo,
    Help,
    LocalizedMessage,
);

impl From<Any> for ErrorDetail {
    /// An `Any` as it is; [`StatusExt`](crate::StatusExt) decodes standard types
    /// when reading.
    fn from(any: Any) -> ErrorDetail {
        ErrorDetail::Other(any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_the_last_segment() {
        assert_eq!(
            type_name("type.googleapis.com/google.rpc.ErrorInfo"),
            "google.rpc.ErrorInfo"
        );
        assert_eq!(type_name("example.com/a/b/x.Y"), "x.Y");
        assert_eq!(type_name("x.Y"), "x.Y");
        assert_eq!(type_name(""), "");
    }

    #[test]
    fn standard_details_round_trip_through_any() {
        let info = ErrorDetail::from(ErrorInfo {
            reason: "STOCKOUT".into(),
            domain: "example.com".into(),
            metadata: [("region".to_owned(), "eu".to_owned())].into(),
        });
        let any = info.to_any();
        assert_eq!(any.type_url, "type.googleapis.com/google.rpc.ErrorInfo");
        assert_eq!(ErrorDetail::from_any(0, any).unwrap(), info);
        // Another domain in the URL names the same type.
        let help = Help { links: vec![] };
        let any = Any {
            type_url: "example.com/google.rpc.Help".into(),
            value: help.encode_to_vec(),
        };
        assert_eq!(
            ErrorDetail::from_any(0, any).unwrap(),
            ErrorDetail::Help(help)
        );
    }

    #[test]
    fn unknown_types_are_kept() {
        let any = Any {
            type_url: "type.googleapis.com/acme.v1.Quota".into(),
            value: vec![0xff, 0xff],
        };
        let detail = ErrorDetail::from_any(3, any.clone()).unwrap();
        assert_eq!(detail, ErrorDetail::Other(any.clone()));
        assert_eq!(detail.to_any(), any);
        assert_eq!(detail.type_url(), "type.googleapis.com/acme.v1.Quota");
    }

    #[test]
    fn a_known_type_that_does_not_decode_is_an_error() {
        let any = Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            // Field 1 (retry_delay, a message) with a length past the end.
            value: vec![0x0a, 0x05, 0x08],
        };
        let error = ErrorDetail::from_any(2, any).unwrap_err();
        assert!(error.is_decode());
        let text = error.to_string();
        assert!(text.contains("detail 2"), "{text}");
        assert!(text.contains("google.rpc.RetryInfo"), "{text}");
    }
}
