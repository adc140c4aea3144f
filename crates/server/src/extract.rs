//! Body extractors that answer in our error format: size limits give `PAYLOAD_TOO_LARGE`,
//! malformed JSON gives `INVALID_INPUT` naming the field where serde can tell.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use holactl_types::ErrorCode;
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest JSON body of a configuration request.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

/// Reads a body of at most `limit` bytes; `what` names it in the error.
pub async fn read_limited(body: Body, limit: usize, what: &str) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) => {
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("{what} is larger than {limit} bytes"),
                ))
            } else {
                Err(ApiError::new(
                    ErrorCode::InvalidInput,
                    format!("cannot read {what}: {err}"),
                ))
            }
        }
    }
}

/// Parses JSON, naming the offending field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // A syntax error has no field path ("." or "?" for the document itself).
        if path.is_empty() || path == "." || path == "?" {
            ApiError::invalid("body", format!("malformed JSON: {inner}"))
        } else {
            ApiError::invalid(path.clone(), format!("{path}: {inner}"))
        }
    })
}

/// A JSON body, limited to [`MAX_JSON_BYTES`].
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_limited(req.into_body(), MAX_JSON_BYTES, "request body").await?;
        // An empty body stands for `{}` (requests whose fields are all optional).
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return parse_json(b"{}").map(Json);
        }
        parse_json(&bytes).map(Json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holactl_types::api::CreateFunctionRequest;

    #[test]
    fn json_errors_name_the_field() {
        let err = parse_json::<CreateFunctionRequest>(
            br#"{"name":"a","code_sha256":"x","memory_mb":"big"}"#,
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("memory_mb"));
        let err =
            parse_json::<CreateFunctionRequest>(br#"{"name":"a","code_sha256":"x","bogus":1}"#)
                .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidInput);
        assert!(err.message.contains("bogus"), "{}", err.message);
        let err = parse_json::<CreateFunctionRequest>(b"{not json").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("body"));
    }
}
