//! Registry credentials, found where `docker login` and `podman login` leave them.
//!
//! Order: `--username` with `--password-stdin`; `$REGISTRY_AUTH_FILE`; then
//! `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`): `credHelpers[host]`,
//! `auths[host]`, `credsStore`. Nothing found means anonymous access.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

use super::RegistryError;

/// A password or token. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic { username: String, password: Secret },
}

impl Credentials {
    /// Where they came from, for `--verbose` style messages: never the secret.
    pub fn describe(&self) -> &'static str {
        match self {
            Credentials::Anonymous => "anonymous",
            Credentials::Basic { .. } => "username and password",
        }
    }
}

#[derive(Deserialize, Default)]
struct AuthFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

#[derive(Deserialize)]
struct HelperReply {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// How long a credential helper may take before we give up on it.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// Docker Hub's credentials are stored under its legacy index URL.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

pub struct AuthSources {
    pub explicit: Option<(String, Secret)>,
    pub auth_files: Vec<PathBuf>,
}

impl AuthSources {
    /// The files docker and podman read, in their order, from the environment.
    pub fn from_env(explicit: Option<(String, Secret)>) -> Self {
        let mut auth_files = Vec::new();
        if let Some(file) = std::env::var_os("REGISTRY_AUTH_FILE") {
            auth_files.push(PathBuf::from(file));
        }
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            auth_files.push(PathBuf::from(dir).join("config.json"));
        } else if let Some(home) = std::env::var_os("HOME") {
            auth_files.push(PathBuf::from(home).join(".docker").join("config.json"));
        }
        Self {
            explicit,
            auth_files,
        }
    }

    pub fn credentials_for(&self, registry: &str) -> Result<Credentials, RegistryError> {
        if let Some((username, password)) = &self.explicit {
            return Ok(Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            });
        }
        for file in &self.auth_files {
            if let Some(found) = credentials_from_file(file, registry)? {
                return Ok(found);
            }
        }
        Ok(Credentials::Anonymous)
    }
}

fn credentials_from_file(
    path: &Path,
    registry: &str,
) -> Result<Option<Credentials>, RegistryError> {
    let text = match crate::input::read_capped(path, crate::input::CONFIG_LIMIT) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RegistryError::AuthConfig {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    let file: AuthFile = serde_json::from_slice(&text).map_err(|e| RegistryError::AuthConfig {
        path: path.to_path_buf(),
        // serde's message names the line and column, never the value.
        reason: e.to_string(),
    })?;
    let keys = lookup_keys(registry);
    for key in &keys {
        if let Some(helper) = file
            .cred_helpers
            .iter()
            .find(|(host, _)| normalise_host(host) == *key)
            .map(|(_, helper)| helper)
        {
            return run_helper(helper, &helper_server_url(registry)).map(Some);
        }
    }
    for key in &keys {
        if let Some(entry) = file
            .auths
            .iter()
            .find(|(host, _)| normalise_host(host) == *key)
            .map(|(_, entry)| entry)
        {
            if let Some(found) = decode_entry(entry, path)? {
                return Ok(Some(found));
            }
        }
    }
    if let Some(store) = &file.creds_store {
        if !store.is_empty() {
            return run_helper(store, &helper_server_url(registry)).map(|c| match c {
                Credentials::Anonymous => None,
                found => Some(found),
            });
        }
    }
    Ok(None)
}

fn decode_entry(entry: &AuthEntry, path: &Path) -> Result<Option<Credentials>, RegistryError> {
    if let Some(encoded) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| RegistryError::AuthConfig {
                path: path.to_path_buf(),
                reason: "an \"auth\" entry is not base64 of username:password".into(),
            })?;
        let (username, password) =
            decoded
                .split_once(':')
                .ok_or_else(|| RegistryError::AuthConfig {
                    path: path.to_path_buf(),
                    reason: "an \"auth\" entry has no ':' between username and password".into(),
                })?;
        return Ok(Some(Credentials::Basic {
            username: username.to_string(),
            password: Secret::new(password.to_string()),
        }));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials::Basic {
            username: username.clone(),
            password: Secret::new(password.clone()),
        }));
    }
    if entry.identity_token.is_some() {
        // An OAuth2 refresh token (from `docker login` against some registries): the
        // token service accepts it as the password of the magic user `<token>`.
        return Ok(entry
            .identity_token
            .as_ref()
            .map(|token| Credentials::Basic {
                username: "<token>".to_string(),
                password: Secret::new(token.clone()),
            }));
    }
    Ok(None)
}

/// Keys to look a registry up under in `auths`/`credHelpers`.
fn lookup_keys(registry: &str) -> Vec<String> {
    let host = normalise_host(registry);
    if host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io" {
        vec![
            "index.docker.io".into(),
            "docker.io".into(),
            "registry-1.docker.io".into(),
        ]
    } else {
        vec![host]
    }
}

/// `https://host:5000/v1/` → `host:5000`.
fn normalise_host(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_ascii_lowercase()
}

fn helper_server_url(registry: &str) -> String {
    match lookup_keys(registry).first().map(String::as_str) {
        Some("index.docker.io") => DOCKER_HUB_KEY.to_string(),
        _ => registry.to_string(),
    }
}

/// Runs `docker-credential-NAME get` with the server URL on stdin. What the helper
/// prints on failure is never repeated: it may hold a secret.
fn run_helper(name: &str, server_url: &str) -> Result<Credentials, RegistryError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(RegistryError::CredentialHelper {
            helper: name.to_string(),
            reason: "invalid helper name".into(),
        });
    }
    let program = format!("docker-credential-{name}");
    let helper_error = |reason: String| RegistryError::CredentialHelper {
        helper: program.clone(),
        reason,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| helper_error(format!("could not run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading stdin is not an error by itself.
        let _ = stdin.write_all(server_url.as_bytes());
    }
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > HELPER_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(helper_error(format!(
                    "no answer within {}s",
                    HELPER_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(helper_error(e.to_string())),
        }
    }
    let output = child
        .wait_with_output()
        .map_err(|e| helper_error(e.to_string()))?;
    if !output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        if stdout.contains("credentials not found in native keychain") {
            return Ok(Credentials::Anonymous);
        }
        return Err(helper_error(format!(
            "exited with {} (its output is not shown, as it may contain secrets)",
            output.status
        )));
    }
    let reply: HelperReply = serde_json::from_slice(&output.stdout).map_err(|_| {
        helper_error("printed something that is not {\"Username\",\"Secret\"} JSON".into())
    })?;
    Ok(Credentials::Basic {
        username: reply.username,
        password: Secret::new(reply.secret),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let credentials = Credentials::Basic {
            username: "me".into(),
            password: Secret::new("hunter2".into()),
        };
        assert!(!format!("{credentials:?}").contains("hunter2"));
        assert!(!Secret::new("hunter2".into())
            .to_string()
            .contains("hunter2"));
    }

    #[test]
    fn host_keys() {
        assert_eq!(
            normalise_host("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(normalise_host("localhost:5000"), "localhost:5000");
        assert_eq!(lookup_keys("docker.io")[0], "index.docker.io");
        assert_eq!(helper_server_url("docker.io"), DOCKER_HUB_KEY);
    }

    #[test]
    fn reads_auths_entries() {
        let dir = std::env::temp_dir().join(format!("ballast-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("config.json");
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"http://127.0.0.1:5000":{{"auth":"{encoded}"}}}}}}"#),
        )
        .expect("write");
        let found = credentials_from_file(&path, "127.0.0.1:5000").expect("parses");
        assert_eq!(
            found,
            Some(Credentials::Basic {
                username: "alice".into(),
                password: Secret::new("s3cret".into())
            })
        );
        assert_eq!(
            credentials_from_file(&path, "ghcr.io").expect("parses"),
            None
        );
        std::fs::write(&path, "{ not json").expect("write");
        let error = credentials_from_file(&path, "ghcr.io").expect_err("malformed");
        assert!(error.to_string().contains("config.json"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
