//! Who baton is to JOB: the [`Credentials`] (an app with its user, or a gateway access
//! token), the [`User`] the calls run as, and the [`Secret`] strings among them, which
//! print as `******` in every `Debug` output and are revealed only where they are sent.

use std::fmt;

use serde_json::{Map, Value, json};

use super::build::MASK;

/// A secret string: only [`Secret::expose`] reveals it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place it is sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Who the calls run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// `bk_username`: for apps on the login-exempt whitelist.
    Username(String),
    /// `bk_token`: a user's login token.
    BkToken(Secret),
}

/// How baton authenticates to JOB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A BlueKing app and the user it acts for.
    App {
        /// `bk_app_code`.
        app_code: String,
        /// `bk_app_secret`.
        app_secret: Secret,
        /// `bk_username` or `bk_token`.
        user: User,
    },
    /// A gateway OAuth `access_token` (v3/v4 only).
    AccessToken(Secret),
}

impl Credentials {
    /// The auth fields as a JSON object: the body fields on v2, the header value on the
    /// gateway.
    pub(super) fn fields(&self) -> Map<String, Value> {
        match self {
            Credentials::App {
                app_code,
                app_secret,
                user,
            } => {
                let mut map = Map::new();
                map.insert("bk_app_code".into(), json!(app_code));
                map.insert("bk_app_secret".into(), json!(app_secret.expose()));
                match user {
                    User::Username(name) => map.insert("bk_username".into(), json!(name)),
                    User::BkToken(token) => map.insert("bk_token".into(), json!(token.expose())),
                };
                map
            }
            Credentials::AccessToken(token) => {
                let mut map = Map::new();
                map.insert("access_token".into(), json!(token.expose()));
                map
            }
        }
    }
}
