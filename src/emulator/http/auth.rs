//! Who is calling: ESB credentials from the `X-Bkapi-Authorization` header when it is
//! there, else from the body or query (`bk_app_code`, `bk_app_secret`, `bk_token` |
//! `bk_username`, and their older `app_code` / `app_secret` / `username` spellings), as
//! ESB's channel reads them; and the gateway's `X-Bkapi-Authorization` header (JSON,
//! app code + secret + user or token, or an `access_token`), checked against the
//! world's credentials. With no credentials in the world any non-empty app code and
//! secret pass, and a user name or token is still required, as JOB requires one.

use serde_json::Value;

use crate::emulator::http::params::Params;
use crate::emulator::model::caller::Caller;
use crate::emulator::model::inventory::Inventory;

/// Why ESB refused the credentials: its 1306000 message (1306406 for a bad header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EsbRefusal {
    /// An `X-Bkapi-Authorization` header that is not JSON.
    #[error("request header X-Bkapi-Authorization is not a valid JSON format string")]
    HeaderNotJson,
    /// No `bk_app_code`.
    #[error("APP Code [bk_app_code] cannot be empty")]
    NoAppCode,
    /// A missing or wrong `bk_app_secret`.
    #[error("APP Secret verification failed, please check whether bk_app_secret is correct")]
    BadSecret,
    /// No user name or token that the world accepts.
    #[error(
        "User authentication failed, please provide a valid user identity, such as bk_token, bk_username"
    )]
    NoUser,
}

/// Why the gateway refused the `X-Bkapi-Authorization` header: the reason inside its
/// 1640001 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GatewayRefusal {
    /// No header, or no app code in it.
    #[error("app code cannot be empty")]
    NoAppCode,
    /// The header is not a JSON object.
    #[error("X-Bkapi-Authorization should be a json string")]
    NotJson,
    /// An `access_token` the world does not know.
    #[error("access_token is invalid")]
    BadAccessToken,
    /// A wrong app code or secret.
    #[error("bk_app_code or bk_app_secret is incorrect")]
    BadSecret,
    /// No user name or token that the world accepts.
    #[error(
        "user authentication failed, please provide a valid user identity, such as bk_username, bk_token, access_token"
    )]
    NoUser,
}

impl EsbRefusal {
    /// ESB's code for this refusal.
    pub fn code(self) -> i64 {
        match self {
            EsbRefusal::HeaderNotJson => 1_306_406,
            _ => 1_306_000,
        }
    }
}

/// Checks ESB credentials: the header when present (even if it lacks a field: ESB then
/// does not look at the body), else the body or query; the error is ESB's message.
pub fn check_esb(
    inventory: &Inventory,
    header: Option<&str>,
    params: &Params,
) -> Result<Caller, EsbRefusal> {
    let from_header = match header {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Some(Params::from_map(map)),
            _ => return Err(EsbRefusal::HeaderNotJson),
        },
        None => None,
    };
    let source = from_header.as_ref().unwrap_or(params);
    let text = |keys: &[&str]| {
        keys.iter()
            .find_map(|key| source.opt_str(key).ok().flatten())
            .unwrap_or_default()
    };
    let app_code = text(&["bk_app_code", "app_code"]);
    let secret = text(&["bk_app_secret", "app_secret"]);
    if app_code.is_empty() {
        return Err(EsbRefusal::NoAppCode);
    }
    if secret.is_empty() || !app_ok(inventory, &app_code, &secret) {
        return Err(EsbRefusal::BadSecret);
    }
    let user = user_of(
        inventory,
        &text(&["bk_username", "username"]),
        &text(&["bk_token"]),
        "",
    )
    .ok_or(EsbRefusal::NoUser)?;
    Ok(Caller { app_code, user })
}

/// Checks the gateway header; the error is the reason inside the 1640001 message.
pub fn check_gateway(
    inventory: &Inventory,
    header: Option<&str>,
) -> Result<Caller, GatewayRefusal> {
    let Some(header) = header.filter(|h| !h.trim().is_empty()) else {
        return Err(GatewayRefusal::NoAppCode);
    };
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(header) else {
        return Err(GatewayRefusal::NotJson);
    };
    let field = |key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let access_token = field("access_token");
    let app_code = field("bk_app_code");
    let secret = field("bk_app_secret");
    if !access_token.is_empty() && app_code.is_empty() {
        let user =
            user_of(inventory, "", "", &access_token).ok_or(GatewayRefusal::BadAccessToken)?;
        return Ok(Caller {
            app_code: "access_token".into(),
            user,
        });
    }
    if app_code.is_empty() {
        return Err(GatewayRefusal::NoAppCode);
    }
    if secret.is_empty() || !app_ok(inventory, &app_code, &secret) {
        return Err(GatewayRefusal::BadSecret);
    }
    let user = user_of(
        inventory,
        &field("bk_username"),
        &field("bk_token"),
        &access_token,
    )
    .ok_or(GatewayRefusal::NoUser)?;
    Ok(Caller { app_code, user })
}

fn app_ok(inventory: &Inventory, code: &str, secret: &str) -> bool {
    let apps = &inventory.world().credentials.apps;
    apps.is_empty() || apps.iter().any(|a| a.code == code && a.secret == secret)
}

/// The user named by a user name or a token, if the world accepts it.
fn user_of(inventory: &Inventory, username: &str, token: &str, access: &str) -> Option<String> {
    let creds = &inventory.world().credentials;
    for candidate in [token, access] {
        if candidate.is_empty() {
            continue;
        }
        if let Some(t) = creds.tokens.iter().find(|t| t.token == candidate) {
            return Some(t.user.clone());
        }
        if creds.tokens.is_empty() && username.is_empty() {
            // No tokens declared: any token logs in a user named after nobody in
            // particular; JOB would show the token's owner.
            return Some("admin".into());
        }
    }
    if username.is_empty() {
        return None;
    }
    if creds.users.is_empty() || creds.users.iter().any(|u| u == username) {
        Some(username.to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::model::world::World;

    fn inv(yaml: &str) -> Inventory {
        Inventory::new(World::parse(yaml).unwrap()).unwrap()
    }

    #[test]
    fn open_world_needs_non_empty_values() {
        let i = inv("");
        let ok = Params::from_body(br#"{"bk_app_code":"a","bk_app_secret":"b","bk_token":"t"}"#)
            .unwrap();
        assert!(check_esb(&i, None, &ok).is_ok());
        let bad = Params::from_body(br#"{"bk_app_code":"a","bk_token":"t"}"#).unwrap();
        assert_eq!(
            check_esb(&i, None, &bad).unwrap_err(),
            EsbRefusal::BadSecret
        );
        assert!(check_gateway(&i, None).is_err());
        assert!(
            check_gateway(
                &i,
                Some(r#"{"bk_app_code":"a","bk_app_secret":"b","bk_username":"u"}"#)
            )
            .is_ok()
        );
    }

    #[test]
    fn world_credentials_are_enforced() {
        let i = inv("credentials: {apps: [{code: a, secret: s}], users: [alice]}");
        let header = |s: &str| {
            check_gateway(
                &i,
                Some(&format!(
                    r#"{{"bk_app_code":"a","bk_app_secret":"{s}","bk_username":"alice"}}"#
                )),
            )
        };
        assert!(header("s").is_ok());
        assert!(header("x").is_err());
    }

    #[test]
    fn esb_reads_the_header_first_and_only_it_when_present() {
        let i = inv("credentials: {apps: [{code: a, secret: s}], users: [alice]}");
        let body =
            Params::from_body(br#"{"bk_app_code":"a","bk_app_secret":"s","bk_username":"alice"}"#)
                .unwrap();
        let header = r#"{"bk_app_code":"a","bk_app_secret":"s","bk_username":"alice"}"#;
        assert_eq!(
            check_esb(&i, Some(header), &Params::default())
                .unwrap()
                .user,
            "alice"
        );
        assert_eq!(check_esb(&i, None, &body).unwrap().app_code, "a");
        // A header without a user hides the body's user, as ESB's channel does.
        let partial = r#"{"bk_app_code":"a","bk_app_secret":"s"}"#;
        assert_eq!(
            check_esb(&i, Some(partial), &body).unwrap_err(),
            EsbRefusal::NoUser
        );
        assert_eq!(
            check_esb(&i, Some("nope"), &body).unwrap_err().code(),
            1_306_406
        );
        let old =
            Params::from_body(br#"{"app_code":"a","app_secret":"s","username":"alice"}"#).unwrap();
        assert!(check_esb(&i, None, &old).is_ok());
    }
}
