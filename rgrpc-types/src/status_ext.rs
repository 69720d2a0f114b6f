//! Attaching details to an `rgrpc_runtime::Status` and reading them back.
//!
//! grpc-go's `status.WithDetails` / `Status.Details()` and tonic-types' `StatusExt`
//! do the same: the status's `grpc-status-details-bin` is a serialized
//! `google.rpc.Status` with the status's code and message and a list of `Any`s.

use prost::{Message, Name};
use rgrpc_runtime::{Bytes, Code, Status};

use crate::detail::{ErrorDetail, type_name};
use crate::error::DetailsError;
use crate::pb;

mod sealed {
    pub trait Sealed {}
    impl Sealed for rgrpc_runtime::Status {}
}

/// Rich error details on [`Status`]: import the trait and call these on a status.
///
/// Writing always puts the status's own code and message in the `google.rpc.Status`,
/// so peers that check them (grpcio's `rpc_status.from_call`) accept it. Reading
/// checks them too and reports a difference as an error, as grpcio does; reading never
/// panics, whatever the bytes.
pub trait StatusExt: sealed::Sealed {
    /// A status with `code`, `message` and `details` (in order) as its
    /// `grpc-status-details-bin`.
    fn with_error_details(
        code: Code,
        message: impl Into<String>,
        details: impl IntoIterator<Item = ErrorDetail>,
    ) -> Status;

    /// The status a `google.rpc.Status` describes (grpc-go `status.FromProto`). A
    /// code outside gRPC's 0..=16 becomes UNKNOWN, in the details too, so that they
    /// match the status.
    fn from_rpc_status(status: pb::Status) -> Status;

    /// The `google.rpc.Status` in the details; `None` when there are no details.
    /// An error when they are not a `google.rpc.Status` or its code or message is not
    /// this status's.
    fn rpc_status(&self) -> Result<Option<pb::Status>, DetailsError>;

    /// Every detail in order (grpc-go `Status.Details()`): the standard `google.rpc`
    /// types decoded, other types kept as [`ErrorDetail::Other`]. Empty without
    /// details; an error as for [`rpc_status`](Self::rpc_status), or when a standard
    /// detail does not decode as its type.
    fn error_details(&self) -> Result<Vec<ErrorDetail>, DetailsError>;

    /// The first detail of type `T` (by its full protobuf name, whatever the URL's
    /// domain), decoded; `None` if there is none. Works for the standard types and
    /// for your own messages that implement [`prost::Name`].
    fn detail<T: Name + Default>(&self) -> Result<Option<T>, DetailsError>;
}

impl StatusExt for Status {
    fn with_error_details(
        code: Code,
        message: impl Into<String>,
        details: impl IntoIterator<Item = ErrorDetail>,
    ) -> Status {
        let message = message.into();
        let rpc = pb::Status {
            code: code as i32,
            message: message.clone(),
            details: details.into_iter().map(|d| d.to_any()).collect(),
        };
        Status::with_details(code, message, Bytes::from(rpc.encode_to_vec()))
    }

    fn from_rpc_status(mut status: pb::Status) -> Status {
        let code = Code::from_i32(status.code);
        status.code = code as i32;
        let bytes = Bytes::from(status.encode_to_vec());
        Status::with_details(code, status.message, bytes)
    }

    fn rpc_status(&self) -> Result<Option<pb::Status>, DetailsError> {
        let bytes = self.details();
        if bytes.is_empty() {
            return Ok(None);
        }
        let rpc = pb::Status::decode(bytes.as_ref()).map_err(DetailsError::malformed)?;
        if rpc.code != self.code() as i32 {
            return Err(DetailsError::mismatch(
                "code",
                rpc.code.to_string(),
                (self.code() as i32).to_string(),
            ));
        }
        if rpc.message != self.message() {
            return Err(DetailsError::mismatch(
                "message",
                rpc.message,
                self.message().to_owned(),
            ));
        }
        Ok(Some(rpc))
    }

    fn error_details(&self) -> Result<Vec<ErrorDetail>, DetailsError> {
        let Some(rpc) = self.rpc_status()? else {
            return Ok(Vec::new());
        };
        rpc.details
            .into_iter()
            .enumerate()
            .map(|(index, any)| ErrorDetail::from_any(index, any))
            .collect()
    }

    fn detail<T: Name + Default>(&self) -> Result<Option<T>, DetailsError> {
        let Some(rpc) = self.rpc_status()? else {
            return Ok(None);
        };
        let name = T::full_name();
        let Some((index, any)) = rpc
            .details
            .iter()
            .enumerate()
            .find(|(_, any)| type_name(&any.type_url) == name)
        else {
            return Ok(None);
        };
        T::decode(any.value.as_slice())
            .map(Some)
            .map_err(|e| DetailsError::detail(index, &any.type_url, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{BadRequest, DebugInfo, RetryInfo, bad_request::FieldViolation};
    use prost_types::{Any, Duration};

    fn details() -> Vec<ErrorDetail> {
        vec![
            RetryInfo {
                retry_delay: Some(Duration {
                    seconds: 2,
                    nanos: 500,
                }),
            }
            .into(),
            BadRequest {
                field_violations: vec![FieldViolation {
                    field: "name".into(),
                    description: "empty".into(),
                    ..Default::default()
                }],
            }
            .into(),
            Any {
                type_url: "type.googleapis.com/acme.Custom".into(),
                value: vec![1, 2, 3],
            }
            .into(),
        ]
    }

    #[test]
    fn details_round_trip_in_order() {
        let status = Status::with_error_details(Code::Unavailable, "try later", details());
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "try later");
        let rpc = status.rpc_status().unwrap().unwrap();
        assert_eq!(rpc.code, Code::Unavailable as i32);
        assert_eq!(rpc.message, "try later");
        let urls: Vec<&str> = rpc.details.iter().map(|a| a.type_url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "type.googleapis.com/google.rpc.RetryInfo",
                "type.googleapis.com/google.rpc.BadRequest",
                "type.googleapis.com/acme.Custom",
            ]
        );
        assert_eq!(status.error_details().unwrap(), details());
        let retry = status.detail::<RetryInfo>().unwrap().unwrap();
        assert_eq!(retry.retry_delay.unwrap().seconds, 2);
        assert_eq!(status.detail::<DebugInfo>().unwrap(), None);
    }

    #[test]
    fn no_details_is_none_and_empty() {
        let status = Status::not_found("gone");
        assert_eq!(status.rpc_status().unwrap(), None);
        assert!(status.error_details().unwrap().is_empty());
        assert_eq!(status.detail::<RetryInfo>().unwrap(), None);
    }

    #[test]
    fn from_rpc_status_keeps_code_and_message_consistent() {
        let status = Status::from_rpc_status(pb::Status {
            code: 5,
            message: "missing".into(),
            details: vec![ErrorDetail::from(DebugInfo::default()).to_any()],
        });
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "missing");
        assert_eq!(status.error_details().unwrap().len(), 1);
        // An out-of-range code is UNKNOWN on both sides.
        let status = Status::from_rpc_status(pb::Status {
            code: 99,
            ..Default::default()
        });
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(status.rpc_status().unwrap().unwrap().code, 2);
    }

    #[test]
    fn a_code_or_message_mismatch_is_reported() {
        let inner = pb::Status {
            code: Code::NotFound as i32,
            message: "a".into(),
            details: vec![],
        };
        let bytes = Bytes::from(inner.encode_to_vec());
        let wrong_code = Status::with_details(Code::Internal, "a", bytes.clone());
        let error = wrong_code.rpc_status().unwrap_err();
        assert!(error.is_mismatch(), "{error}");
        assert!(error.to_string().contains("code"), "{error}");
        assert!(wrong_code.error_details().unwrap_err().is_mismatch());
        assert!(wrong_code.detail::<RetryInfo>().unwrap_err().is_mismatch());
        let wrong_message = Status::with_details(Code::NotFound, "b", bytes);
        let error = wrong_message.rpc_status().unwrap_err();
        assert!(error.is_mismatch());
        assert!(error.to_string().contains("message"), "{error}");
    }

    #[test]
    fn garbage_details_are_an_error_not_a_panic() {
        for garbage in [
            &b"\xff"[..],
            b"\x0a\xff\xff\xff\xff\x0f",
            b"\x1a\x03\x0a\x05x",
        ] {
            let status = Status::with_details(Code::Internal, "", Bytes::copy_from_slice(garbage));
            let error = status.rpc_status().unwrap_err();
            assert!(error.is_decode(), "{garbage:?}: {error}");
            assert!(status.error_details().is_err());
            assert!(status.detail::<RetryInfo>().is_err());
        }
        // A standard detail whose bytes are not its type.
        let rpc = pb::Status {
            code: Code::Internal as i32,
            message: String::new(),
            details: vec![Any {
                type_url: "type.googleapis.com/google.rpc.BadRequest".into(),
                value: vec![0x0a, 0x09],
            }],
        };
        let status = Status::with_details(Code::Internal, "", Bytes::from(rpc.encode_to_vec()));
        assert!(status.rpc_status().unwrap().is_some());
        let error = status.error_details().unwrap_err();
        assert!(
            error.is_decode() && error.to_string().contains("detail 0"),
            "{error}"
        );
        assert!(status.detail::<BadRequest>().unwrap_err().is_decode());
    }
}
