//! Answers built for the decoders' tests.

use super::envelope::RawResponse;

/// An answer with `status` and `body` and no rate-limit header.
pub fn raw(status: u16, body: &str) -> RawResponse<'_> {
    RawResponse {
        status,
        rate_limit_reset: None,
        body: body.as_bytes(),
    }
}
