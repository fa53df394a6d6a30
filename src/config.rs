//! Where baton talks to and as whom: the JOB endpoint, the protocol generation, the
//! credentials, and the callback receiver's listen address and public URL.
//!
//! Values come from three layers with a fixed precedence — command-line flag, then
//! environment variable, then an optional profile file (`--profile NAME` or
//! `--profile-file PATH`). Credentials are never taken from flags (they would show in
//! `ps`) nor from the plan (plans are committed to repositories); only from the
//! environment or a profile. Every type that holds a secret masks it in `Debug`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::job_api::types::Protocol;

pub use crate::executor::wait::WaitMode;
pub use crate::job_api::credentials::{Credentials, Secret, User};

/// The secret values inside `credentials`, so output can be scrubbed of them.
pub fn credential_secrets(credentials: &Credentials) -> Vec<String> {
    match credentials {
        Credentials::App {
            app_secret, user, ..
        } => {
            let mut values = vec![app_secret.expose().to_owned()];
            if let User::BkToken(token) = user {
                values.push(token.expose().to_owned());
            }
            values
        }
        Credentials::AccessToken(token) => vec![token.expose().to_owned()],
    }
}

/// Configuration-related command-line flags, as parsed.
#[derive(Debug, Clone, Default)]
pub struct ConfigFlags {
    /// `--endpoint`.
    pub endpoint: Option<String>,
    /// `--api`.
    pub api: Option<Protocol>,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--profile-file`.
    pub profile_file: Option<PathBuf>,
    /// `--callback-listen`.
    pub callback_listen: Option<String>,
    /// `--callback-url`.
    pub callback_url: Option<String>,
    /// `--wait`.
    pub wait: Option<WaitMode>,
}

/// The profile file's shape (`~/.config/baton/profiles/<name>.yaml`).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// JOB base URL (ESB `{PAAS}` or gateway `{BKAPI}/api/bk-job/{stage}`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Protocol generation.
    #[serde(default)]
    pub api: Option<Protocol>,
    /// `bk_app_code`.
    #[serde(default)]
    pub app_code: Option<String>,
    /// `bk_app_secret`.
    #[serde(default)]
    pub app_secret: Option<String>,
    /// `bk_username`.
    #[serde(default)]
    pub username: Option<String>,
    /// `bk_token`.
    #[serde(default)]
    pub token: Option<String>,
    /// Gateway `access_token`.
    #[serde(default)]
    pub access_token: Option<String>,
    /// Callback receiver listen address.
    #[serde(default)]
    pub callback_listen: Option<String>,
    /// Public base URL JOB posts callbacks to.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// `callback`, `poll` or `both`.
    #[serde(default)]
    pub wait: Option<String>,
    /// JOB's web address, so reports link each job instance to its page.
    #[serde(default)]
    pub job_web_url: Option<String>,
    /// Where to send notifications; their URLs hold tokens and stay out of plans.
    #[serde(default)]
    pub notify: Vec<crate::notify::Channel>,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mask = |v: &Option<String>| v.as_ref().map(|_| "******");
        f.debug_struct("Profile")
            .field("endpoint", &self.endpoint)
            .field("api", &self.api)
            .field("app_code", &self.app_code)
            .field("app_secret", &mask(&self.app_secret))
            .field("username", &self.username)
            .field("token", &mask(&self.token))
            .field("access_token", &mask(&self.access_token))
            .field("callback_listen", &self.callback_listen)
            .field("callback_url", &self.callback_url)
            .field("wait", &self.wait)
            .field("job_web_url", &self.job_web_url)
            .field("notify", &self.notify.len())
            .finish()
    }
}

/// Why the configuration could not be resolved (all exit 2: nothing was sent).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The profile file could not be read.
    #[error("cannot read profile {path}: {source}")]
    ProfileRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The profile file is not valid YAML of the expected shape.
    #[error("invalid profile {path}: {message}")]
    ProfileParse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is malformed.
    #[error("invalid {what} `{value}` (from {source_name}): {reason}")]
    Invalid {
        /// The setting.
        what: &'static str,
        /// The offending value (never a secret).
        value: String,
        /// Flag, variable or profile it came from.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// A remote endpoint is configured but credentials are incomplete.
    #[error("{0}")]
    MissingCredentials(String),
    /// No home folder to find a profile in.
    #[error("cannot locate profile `{0}`: neither XDG_CONFIG_HOME nor HOME is set")]
    NoConfigHome(String),
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The remote JOB base URL, or `None` for the embedded emulator.
    pub endpoint: Option<String>,
    /// Protocol generation (`None`: the plan's, else v3).
    pub protocol: Option<Protocol>,
    /// Credentials for a remote JOB (`None` for the emulator, which generates its own).
    pub credentials: Option<Credentials>,
    /// Where the callback receiver listens.
    pub callback_listen: SocketAddr,
    /// Public base URL of the callback receiver, if set.
    pub callback_url: Option<String>,
    /// How completion is awaited.
    pub wait: WaitMode,
    /// The profile file used, if any.
    pub profile_path: Option<PathBuf>,
    /// JOB's web address, for links into its UI.
    pub job_web_url: Option<String>,
    /// The profile's notification channels.
    pub notify: Vec<crate::notify::Channel>,
}

/// One value and where it came from.
struct Sourced {
    value: String,
    source: String,
}

/// Resolves configuration from flags, the environment (through `env`, injectable for
/// tests) and the profile file. Precedence: flag > environment > profile.
pub fn resolve(
    flags: &ConfigFlags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let profile_path = profile_path(flags, env)?;
    let profile = match &profile_path {
        Some(path) => read_profile(path)?,
        None => Profile::default(),
    };
    let env_value = |name: &str| env(name).filter(|v| !v.trim().is_empty());

    let pick =
        |flag: Option<&String>, env_name: &str, profile_value: Option<&String>, key: &str| {
            if let Some(v) = flag {
                return Some(Sourced {
                    value: v.clone(),
                    source: format!("--{key}"),
                });
            }
            if let Some(v) = env_value(env_name) {
                return Some(Sourced {
                    value: v,
                    source: format!("${env_name}"),
                });
            }
            profile_value.map(|v| Sourced {
                value: v.clone(),
                source: format!("profile `{}`", key.replace('-', "_")),
            })
        };

    let endpoint = pick(
        flags.endpoint.as_ref(),
        "BATON_ENDPOINT",
        profile.endpoint.as_ref(),
        "endpoint",
    )
    .map(|s| validate_url("endpoint", s))
    .transpose()?;

    let protocol = match flags.api {
        Some(p) => Some(p),
        None => {
            let raw = env_value("BATON_API")
                .map(|v| (v, "$BATON_API".to_owned()))
                .or_else(|| {
                    profile
                        .api
                        .map(|p| (p.to_string(), "profile `api`".to_owned()))
                });
            match raw {
                Some((value, source_name)) => {
                    Some(parse_protocol(&value).ok_or_else(|| ConfigError::Invalid {
                        what: "protocol",
                        value: value.clone(),
                        source_name,
                        reason: "expected v2, v3 or v4".into(),
                    })?)
                }
                None => None,
            }
        }
    };

    let listen = pick(
        flags.callback_listen.as_ref(),
        "BATON_CALLBACK_LISTEN",
        profile.callback_listen.as_ref(),
        "callback-listen",
    );
    let callback_listen = match listen {
        Some(s) => s
            .value
            .trim()
            .parse::<SocketAddr>()
            .map_err(|e| ConfigError::Invalid {
                what: "callback listen address",
                value: s.value.clone(),
                source_name: s.source.clone(),
                reason: e.to_string(),
            })?,
        None => SocketAddr::from(([127, 0, 0, 1], 0)),
    };

    let callback_url = pick(
        flags.callback_url.as_ref(),
        "BATON_CALLBACK_URL",
        profile.callback_url.as_ref(),
        "callback-url",
    )
    .map(|s| validate_url("callback URL", s))
    .transpose()?;

    let wait = match flags.wait {
        Some(w) => Some(w),
        None => {
            let raw = env_value("BATON_WAIT")
                .map(|v| (v, "$BATON_WAIT".to_owned()))
                .or_else(|| profile.wait.clone().map(|v| (v, "profile `wait`".into())));
            match raw {
                Some((value, source_name)) => {
                    Some(parse_wait(&value).ok_or_else(|| ConfigError::Invalid {
                        what: "wait mode",
                        value: value.clone(),
                        source_name,
                        reason: "expected callback, poll or both".into(),
                    })?)
                }
                None => None,
            }
        }
    };
    // A remote JOB cannot reach a loopback receiver, so without a public URL the only
    // way to learn about completion is polling.
    let wait = wait.unwrap_or(if endpoint.is_some() && callback_url.is_none() {
        WaitMode::Poll
    } else {
        WaitMode::Both
    });

    let job_web_url = pick(
        None,
        "BATON_JOB_WEB_URL",
        profile.job_web_url.as_ref(),
        "job-web-url",
    )
    .map(|s| validate_url("JOB web URL", s))
    .transpose()?;

    let credentials = if endpoint.is_some() {
        Some(resolve_credentials(&profile, &env_value)?)
    } else {
        None
    };

    Ok(Config {
        endpoint,
        protocol,
        credentials,
        callback_listen,
        callback_url,
        wait,
        profile_path,
        job_web_url,
        notify: profile.notify,
    })
}

fn resolve_credentials(
    profile: &Profile,
    env_value: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, ConfigError> {
    let get = |env_name: &str, profile_value: &Option<String>| {
        env_value(env_name).or_else(|| profile_value.clone().filter(|v| !v.trim().is_empty()))
    };
    let app_code = get("BK_APP_CODE", &profile.app_code);
    let app_secret = get("BK_APP_SECRET", &profile.app_secret);
    let username = get("BK_USERNAME", &profile.username);
    let token = get("BK_TOKEN", &profile.token);
    let access_token = get("BK_ACCESS_TOKEN", &profile.access_token);

    match (app_code, app_secret) {
        (Some(app_code), Some(app_secret)) => {
            let user = match (username, token) {
                (Some(name), _) => User::Username(name),
                (None, Some(token)) => User::BkToken(Secret::new(token)),
                (None, None) => {
                    return Err(ConfigError::MissingCredentials(
                        "BK_APP_CODE and BK_APP_SECRET are set but neither BK_USERNAME nor BK_TOKEN is"
                            .into(),
                    ));
                }
            };
            Ok(Credentials::App {
                app_code,
                app_secret: Secret::new(app_secret),
                user,
            })
        }
        (None, None) => match access_token {
            Some(token) => Ok(Credentials::AccessToken(Secret::new(token))),
            None => Err(ConfigError::MissingCredentials(
                "a JOB endpoint is configured but no credentials are: set BK_APP_CODE, BK_APP_SECRET and BK_USERNAME (or BK_TOKEN), or BK_ACCESS_TOKEN, in the environment or the profile"
                    .into(),
            )),
        },
        (Some(_), None) => Err(ConfigError::MissingCredentials(
            "BK_APP_CODE is set but BK_APP_SECRET is not".into(),
        )),
        (None, Some(_)) => Err(ConfigError::MissingCredentials(
            "BK_APP_SECRET is set but BK_APP_CODE is not".into(),
        )),
    }
}

fn validate_url(what: &'static str, s: Sourced) -> Result<String, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        what,
        value: s.value.clone(),
        source_name: s.source.clone(),
        reason,
    };
    let url = reqwest::Url::parse(s.value.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https".into()));
    }
    if url.host_str().is_none() {
        return Err(invalid("a host is required".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials in the URL are not allowed; use the environment or a profile".into(),
        ));
    }
    Ok(s.value.trim().trim_end_matches('/').to_owned())
}

/// Parses `v2`, `v3` or `v4`.
pub fn parse_protocol(value: &str) -> Option<Protocol> {
    match value.trim().to_ascii_lowercase().as_str() {
        "v2" => Some(Protocol::V2),
        "v3" => Some(Protocol::V3),
        "v4" => Some(Protocol::V4),
        _ => None,
    }
}

fn parse_wait(value: &str) -> Option<WaitMode> {
    match value.trim().to_ascii_lowercase().as_str() {
        "callback" => Some(WaitMode::Callback),
        "poll" => Some(WaitMode::Poll),
        "both" => Some(WaitMode::Both),
        _ => None,
    }
}

fn profile_path(
    flags: &ConfigFlags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<PathBuf>, ConfigError> {
    if let Some(path) = &flags.profile_file {
        return Ok(Some(path.clone()));
    }
    let Some(name) = flags
        .profile
        .clone()
        .or_else(|| env("BATON_PROFILE").filter(|v| !v.trim().is_empty()))
    else {
        return Ok(None);
    };
    // A profile name is a file stem, not a path: refusing separators keeps
    // `--profile ../../x` from reading arbitrary files.
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(ConfigError::Invalid {
            what: "profile name",
            value: name,
            source_name: "--profile".into(),
            reason: "a profile name cannot contain path separators or start with a dot".into(),
        });
    }
    let base = match env("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match env("HOME").filter(|v| !v.is_empty()) {
            Some(home) => Path::new(&home).join(".config"),
            None => return Err(ConfigError::NoConfigHome(name)),
        },
    };
    Ok(Some(
        base.join("baton")
            .join("profiles")
            .join(format!("{name}.yaml")),
    ))
}

fn read_profile(path: &Path) -> Result<Profile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ProfileRead {
        path: path.to_owned(),
        source,
    })?;
    if text.trim().is_empty() {
        return Ok(Profile::default());
    }
    serde_yaml::from_str(&text).map_err(|e| ConfigError::ProfileParse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn no_endpoint_means_emulator_without_credentials() {
        let config = resolve(&ConfigFlags::default(), &env_of(&[])).unwrap();
        assert!(config.endpoint.is_none());
        assert!(config.credentials.is_none());
        assert_eq!(config.callback_listen.to_string(), "127.0.0.1:0");
        assert_eq!(config.wait, WaitMode::Both);
    }

    #[test]
    fn flag_beats_env_beats_profile() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = dir.path().join("baton/profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        std::fs::write(
            profiles.join("prod.yaml"),
            "endpoint: https://profile.example/api\napi: v2\napp_code: pc\napp_secret: ps\nusername: pu\ncallback_url: https://cb.example\n",
        )
        .unwrap();
        let xdg = dir.path().to_str().unwrap().to_owned();
        let flags = ConfigFlags {
            profile: Some("prod".into()),
            ..Default::default()
        };
        let only_profile = resolve(&flags, &env_of(&[("XDG_CONFIG_HOME", &xdg)])).unwrap();
        assert_eq!(
            only_profile.endpoint.as_deref(),
            Some("https://profile.example/api")
        );
        assert_eq!(only_profile.protocol, Some(Protocol::V2));
        assert_eq!(only_profile.wait, WaitMode::Both);
        match only_profile.credentials.unwrap() {
            Credentials::App {
                app_code,
                app_secret,
                user,
            } => {
                assert_eq!(app_code, "pc");
                assert_eq!(app_secret.expose(), "ps");
                assert_eq!(user, User::Username("pu".into()));
            }
            other => panic!("unexpected {other:?}"),
        }

        let env = env_of(&[
            ("XDG_CONFIG_HOME", &xdg),
            ("BATON_ENDPOINT", "https://env.example"),
            ("BATON_API", "v4"),
            ("BK_APP_SECRET", "es"),
        ]);
        let with_env = resolve(&flags, &env).unwrap();
        assert_eq!(with_env.endpoint.as_deref(), Some("https://env.example"));
        assert_eq!(with_env.protocol, Some(Protocol::V4));
        let Some(Credentials::App { app_secret, .. }) = with_env.credentials else {
            panic!("app credentials expected");
        };
        assert_eq!(app_secret.expose(), "es");

        let flags = ConfigFlags {
            endpoint: Some("https://flag.example/".into()),
            api: Some(Protocol::V3),
            ..flags
        };
        let with_flag = resolve(&flags, &env).unwrap();
        assert_eq!(with_flag.endpoint.as_deref(), Some("https://flag.example"));
        assert_eq!(with_flag.protocol, Some(Protocol::V3));
    }

    #[test]
    fn the_profile_gives_the_job_web_address_and_notification_channels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(
            &path,
            "job_web_url: https://job.example.com/\nnotify:\n  - { name: team, format: wecom, url: \"https://qyapi.example/send?key=k-123456\", on: [failure] }\n",
        )
        .unwrap();
        let flags = ConfigFlags {
            profile_file: Some(path),
            ..Default::default()
        };
        let config = resolve(&flags, &env_of(&[])).unwrap();
        assert_eq!(
            config.job_web_url.as_deref(),
            Some("https://job.example.com")
        );
        assert_eq!(config.notify.len(), 1);
        assert_eq!(config.notify[0].name.as_deref(), Some("team"));
        let env = env_of(&[("BATON_JOB_WEB_URL", "https://env-job.example")]);
        assert_eq!(
            resolve(&flags, &env).unwrap().job_web_url.as_deref(),
            Some("https://env-job.example")
        );
    }

    #[test]
    fn remote_endpoint_needs_credentials_and_defaults_to_poll() {
        let flags = ConfigFlags {
            endpoint: Some("https://job.example".into()),
            ..Default::default()
        };
        assert!(matches!(
            resolve(&flags, &env_of(&[])),
            Err(ConfigError::MissingCredentials(_))
        ));
        let config = resolve(&flags, &env_of(&[("BK_ACCESS_TOKEN", "tok")])).unwrap();
        assert_eq!(config.wait, WaitMode::Poll);
        assert!(matches!(
            config.credentials,
            Some(Credentials::AccessToken(_))
        ));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let creds = Credentials::App {
            app_code: "code".into(),
            app_secret: Secret::new("hunter2"),
            user: User::BkToken(Secret::new("cookie-token")),
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("cookie-token"));
        let profile = Profile {
            app_secret: Some("hunter2".into()),
            access_token: Some("tok3n".into()),
            ..Default::default()
        };
        let shown = format!("{profile:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("tok3n"));
    }

    #[test]
    fn bad_values_are_rejected() {
        let flags = ConfigFlags {
            endpoint: Some("ftp://x".into()),
            ..Default::default()
        };
        assert!(resolve(&flags, &env_of(&[])).is_err());
        let flags = ConfigFlags {
            profile: Some("../etc".into()),
            ..Default::default()
        };
        assert!(resolve(&flags, &env_of(&[("HOME", "/tmp")])).is_err());
        assert!(resolve(&ConfigFlags::default(), &env_of(&[("BATON_API", "v9")])).is_err());
        let flags = ConfigFlags {
            callback_listen: Some("nope".into()),
            ..Default::default()
        };
        assert!(resolve(&flags, &env_of(&[])).is_err());
    }
}
