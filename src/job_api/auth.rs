//! Where each protocol takes the credentials ([`authorize`] makes an
//! [`AuthorizedRequest`]): v2 (ESB) reads `bk_app_code`, `bk_app_secret` and
//! `bk_username`/`bk_token` from the JSON body; the gateway (v3, v4) reads them only
//! from the `X-Bkapi-Authorization` header, as a JSON object.
//!
//! Secrets never reach a `Debug` or `Display` output: [`AuthorizedRequest`]'s `Debug`
//! masks the header and the body's auth and sensitive fields.

use std::fmt;

use serde_json::Value;

use super::build::{ApiCall, HttpMethod, MASK};
use super::credentials::Credentials;
use crate::job_api::types::Protocol;

/// The gateway's auth header.
pub const AUTH_HEADER: &str = "X-Bkapi-Authorization";

/// Why credentials cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// ESB v2 knows only app code, secret and user.
    #[error(
        "an access token cannot be used with protocol v2: ESB needs an app code, app secret and bk_username or bk_token"
    )]
    AccessTokenOnV2,
}

/// Body fields that carry credentials on v2, masked in `Debug`.
const BODY_AUTH_FIELDS: &[&str] = &["bk_app_secret", "bk_token", "access_token"];

/// A call with its credentials applied, ready for the HTTP client.
#[derive(Clone, PartialEq)]
pub struct AuthorizedRequest {
    /// HTTP method.
    pub method: HttpMethod,
    /// Path below the base URL.
    pub path: String,
    /// Query parameters (GET).
    pub query: Vec<(String, String)>,
    /// Headers to send, auth included.
    pub headers: Vec<(String, String)>,
    /// The JSON body (POST), auth included on v2.
    pub body: Option<Value>,
    sensitive_pointers: Vec<String>,
}

impl fmt::Debug for AuthorizedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                if name.eq_ignore_ascii_case(AUTH_HEADER) {
                    (name.as_str(), MASK)
                } else {
                    (name.as_str(), value.as_str())
                }
            })
            .collect();
        let body = self.body.as_ref().map(|body| {
            let mut body = body.clone();
            for pointer in &self.sensitive_pointers {
                if let Some(value) = body.pointer_mut(pointer) {
                    *value = Value::String(MASK.into());
                }
            }
            if let Some(object) = body.as_object_mut() {
                for field in BODY_AUTH_FIELDS {
                    if let Some(value) = object.get_mut(*field) {
                        *value = Value::String(MASK.into());
                    }
                }
            }
            body
        });
        f.debug_struct("AuthorizedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &headers)
            .field("body", &body)
            .finish()
    }
}

/// Applies `credentials` to `call` the way its protocol expects.
pub fn authorize(
    call: &ApiCall,
    credentials: &Credentials,
) -> Result<AuthorizedRequest, AuthError> {
    let mut headers = vec![("Accept".to_owned(), "application/json".to_owned())];
    if call.method == HttpMethod::Post {
        headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    }
    let mut query = call.query_pairs();
    let mut body = match call.method {
        HttpMethod::Post => Some(call.body.clone()),
        HttpMethod::Get => None,
    };
    match call.protocol() {
        Protocol::V2 => {
            if matches!(credentials, Credentials::AccessToken(_)) {
                return Err(AuthError::AccessTokenOnV2);
            }
            let fields = credentials.fields();
            match body.as_mut().and_then(Value::as_object_mut) {
                Some(object) => object.extend(fields),
                // ESB also reads credentials from the query string; used for a GET.
                None => query.extend(fields.into_iter().map(|(k, v)| {
                    let text = v.as_str().map(str::to_owned).unwrap_or_default();
                    (k, text)
                })),
            }
        }
        Protocol::V3 | Protocol::V4 => {
            headers.push((
                AUTH_HEADER.to_owned(),
                Value::Object(credentials.fields()).to_string(),
            ));
        }
    }
    Ok(AuthorizedRequest {
        method: call.method,
        path: call.path.clone(),
        query,
        headers,
        body,
        sensitive_pointers: call.sensitive_pointers.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job_api::calls;
    use crate::job_api::credentials::{Secret, User};
    use crate::job_api::types::JobInstanceId;
    use crate::job_api::types::{Scope, ScopeType};
    use serde_json::json;

    fn app() -> Credentials {
        Credentials::App {
            app_code: "baton".into(),
            app_secret: Secret::new("s3cr3t-app"),
            user: User::BkToken(Secret::new("t0ken-xyz")),
        }
    }

    fn post(protocol: Protocol) -> ApiCall {
        let mut call = ApiCall::post(
            protocol,
            "fast_execute_script",
            json!({"script_param": "cGFzcw=="})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        call.sensitive_pointers.push("/script_param".into());
        call
    }

    #[test]
    fn v2_puts_credentials_in_the_body() {
        let request = authorize(&post(Protocol::V2), &app()).unwrap();
        let body = request.body.clone().unwrap();
        assert_eq!(body["bk_app_code"], "baton");
        assert_eq!(body["bk_app_secret"], "s3cr3t-app");
        assert_eq!(body["bk_token"], "t0ken-xyz");
        assert!(request.headers.iter().all(|(n, _)| n != AUTH_HEADER));
    }

    #[test]
    fn gateway_puts_credentials_in_the_header_only() {
        let credentials = Credentials::App {
            app_code: "baton".into(),
            app_secret: Secret::new("s3cr3t-app"),
            user: User::Username("ops".into()),
        };
        let request = authorize(&post(Protocol::V3), &credentials).unwrap();
        let header = request
            .headers
            .iter()
            .find(|(n, _)| n == AUTH_HEADER)
            .map(|(_, v)| v.clone())
            .unwrap();
        let parsed: Value = serde_json::from_str(&header).unwrap();
        assert_eq!(
            parsed,
            json!({"bk_app_code": "baton", "bk_app_secret": "s3cr3t-app", "bk_username": "ops"})
        );
        assert!(request.body.unwrap().get("bk_app_secret").is_none());
        let token = authorize(
            &post(Protocol::V4),
            &Credentials::AccessToken(Secret::new("at")),
        )
        .unwrap();
        assert!(
            token
                .headers
                .contains(&(AUTH_HEADER.into(), r#"{"access_token":"at"}"#.into()))
        );
    }

    #[test]
    fn access_token_is_refused_on_v2() {
        let error = authorize(
            &post(Protocol::V2),
            &Credentials::AccessToken(Secret::new("at")),
        )
        .unwrap_err();
        assert_eq!(error, AuthError::AccessTokenOnV2);
    }

    #[test]
    fn gets_keep_their_query_and_have_no_body() {
        let scope = Scope {
            scope_type: ScopeType::Biz,
            id: 1,
        };
        let call = calls::get_job_instance_status(Protocol::V3, scope, JobInstanceId(5)).unwrap();
        let request = authorize(&call, &app()).unwrap();
        assert!(request.body.is_none());
        assert_eq!(request.query, call.query_pairs());
        assert!(
            request
                .query
                .contains(&("job_instance_id".into(), "5".into()))
        );
    }

    #[test]
    fn debug_never_prints_secrets() {
        for protocol in [Protocol::V2, Protocol::V3] {
            let request = authorize(&post(protocol), &app()).unwrap();
            let text = format!("{request:?} {:?}", app());
            for secret in ["s3cr3t-app", "t0ken-xyz", "cGFzcw=="] {
                assert!(!text.contains(secret), "{secret} leaked: {text}");
            }
            assert!(
                text.contains("baton"),
                "non-secret fields stay visible: {text}"
            );
        }
    }
}
