//! Talking to OCI registries through `oci-client`: TLS and plain-HTTP choice,
//! credentials, and turning its errors into one-line messages without secrets.

pub mod auth;
pub mod retry;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;

pub use auth::{AuthSources, Credentials, Secret};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{path}: cannot read registry credentials: {reason}")]
    AuthConfig { path: PathBuf, reason: String },
    #[error("credential helper {helper}: {reason}")]
    CredentialHelper { helper: String, reason: String },
    #[error("{registry}: authentication refused for {reference}{detail}")]
    AuthRefused {
        registry: String,
        reference: String,
        detail: String,
    },
    #[error("{reference}: not found in {registry}{detail}")]
    NotFound {
        registry: String,
        reference: String,
        detail: String,
    },
    #[error("{registry}: {detail}")]
    Transport { registry: String, detail: String },
    #[error("--ca-cert {path}: {reason}")]
    CaCert { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    CertDir { path: PathBuf, reason: String },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

/// How to reach registries: from the command line, shared by every image of a command.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Plain HTTP (and unverified TLS) for every registry, not only loopback ones.
    pub insecure: bool,
    pub ca_certs: Vec<PathBuf>,
    /// `--cert-dir`: used instead of the `certs.d/HOST[:PORT]` directories.
    pub cert_dir: Option<PathBuf>,
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub retry: retry::RetryPolicy,
    /// Where registry blobs are kept between runs (`--cache-dir`); none by default.
    pub cache_dir: Option<PathBuf>,
}

/// Loopback registries are spoken to over plain HTTP, as docker does for `localhost`.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(host, _)| host),
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

pub fn build_client(registry: &str, options: &RegistryOptions) -> Result<Client, RegistryError> {
    client_with(registry, options, false)
}

/// A client for pushing: each blob goes up in one streamed `PUT` of known length,
/// which every registry takes (chunked `PATCH` uploads are where registries differ:
/// ECR and GAR want a minimum chunk size, some proxies none at all).
pub fn build_push_client(
    registry: &str,
    options: &RegistryOptions,
) -> Result<Client, RegistryError> {
    client_with(registry, options, true)
}

fn client_with(
    registry: &str,
    options: &RegistryOptions,
    monolithic_push: bool,
) -> Result<Client, RegistryError> {
    install_crypto_provider();
    let trust = tls::trust_for(registry, &options.ca_certs, options.cert_dir.as_deref())?;
    // Trust configured for a registry (a CA, a certs.d directory) means the user
    // expects TLS, even on loopback; docker too speaks TLS first where it has certs.
    let protocol = if options.insecure {
        ClientProtocol::Http
    } else if is_loopback(registry) && !trust.is_configured() {
        ClientProtocol::HttpsExcept(vec![registry.to_string()])
    } else {
        ClientProtocol::Https
    };
    let configure_http: Option<Box<oci_client::client::HttpBuilderFn>> = if options.insecure {
        None
    } else {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = tls::client_config(&trust, provider)?;
        Some(Box::new(move |builder: reqwest::ClientBuilder| {
            builder.tls_backend_preconfigured(tls.clone())
        }))
    };
    let https_proxy = std::env::var("HTTPS_PROXY")
        .or_else(|_| std::env::var("https_proxy"))
        .ok();
    let no_proxy = std::env::var("NO_PROXY")
        .or_else(|_| std::env::var("no_proxy"))
        .ok();
    let config = ClientConfig {
        protocol,
        accept_invalid_certificates: options.insecure,
        connect_timeout: Some(options.connect_timeout.unwrap_or(Duration::from_secs(30))),
        read_timeout: Some(options.read_timeout.unwrap_or(Duration::from_secs(60))),
        user_agent: concat!("ballast/", env!("CARGO_PKG_VERSION")),
        https_proxy,
        no_proxy,
        configure_http,
        use_monolithic_push: monolithic_push,
        ..Default::default()
    };
    Client::try_from(config).map_err(|e| RegistryError::Transport {
        registry: registry.to_string(),
        detail: format!("cannot set up the HTTP client: {e}"),
    })
}

fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn registry_auth(credentials: &Credentials) -> RegistryAuth {
    match credentials {
        Credentials::Anonymous => RegistryAuth::Anonymous,
        Credentials::Basic { username, password } => {
            RegistryAuth::Basic(username.clone(), password.expose().to_string())
        }
    }
}

/// As [`classify`], saying how many attempts a transient failure was given.
pub fn classify_gave_up(gave_up: retry::GaveUp, registry: &str, reference: &str) -> RegistryError {
    let attempts = gave_up.attempts;
    match classify(gave_up.error, registry, reference) {
        RegistryError::Transport { registry, detail } if attempts > 1 => RegistryError::Transport {
            registry,
            detail: format!("{detail} (gave up after {attempts} attempts)"),
        },
        other => other,
    }
}

/// Maps an `oci-client` error to ours. Messages name the registry and the reference
/// and never the credentials (oci-client's own messages carry URLs, not secrets).
pub fn classify(error: OciDistributionError, registry: &str, reference: &str) -> RegistryError {
    if let OciDistributionError::RetryAfter { error, after } = error {
        return match classify(*error, registry, reference) {
            RegistryError::Transport { registry, detail } => RegistryError::Transport {
                registry,
                detail: format!(
                    "{detail} (the registry asked to retry after {} s)",
                    after.as_secs()
                ),
            },
            other => other,
        };
    }
    let registry = registry.to_string();
    let reference = reference.to_string();
    match error {
        OciDistributionError::AuthenticationFailure(detail) => RegistryError::AuthRefused {
            registry,
            reference,
            detail: format!(": {detail}"),
        },
        OciDistributionError::UnauthorizedError { .. } => RegistryError::AuthRefused {
            registry,
            reference,
            detail: String::new(),
        },
        OciDistributionError::ImageManifestNotFoundError(_) => RegistryError::NotFound {
            registry,
            reference,
            detail: String::new(),
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}", e.code))
                .collect();
            let messages: Vec<String> = envelope.errors.iter().map(|e| e.message.clone()).collect();
            let joined = codes.join(",").to_ascii_uppercase();
            let detail = format!(" ({})", messages.join("; "));
            if joined.contains("UNAUTHORIZED") || joined.contains("DENIED") {
                RegistryError::AuthRefused {
                    registry,
                    reference,
                    detail,
                }
            } else if joined.contains("UNKNOWN") {
                RegistryError::NotFound {
                    registry,
                    reference,
                    detail,
                }
            } else {
                RegistryError::Transport {
                    registry,
                    detail: format!("{reference}: registry error{detail}"),
                }
            }
        }
        OciDistributionError::ServerError { code, message, .. } => match code {
            401 | 403 => RegistryError::AuthRefused {
                registry,
                reference,
                detail: format!(" (HTTP {code})"),
            },
            404 => RegistryError::NotFound {
                registry,
                reference,
                detail: String::new(),
            },
            _ => {
                // Registries answer errors with a JSON envelope or an HTML page; the
                // status says what matters, and a plain-text body is worth a line.
                let body = first_line(&message);
                if body.contains("HTTP request to an HTTPS server") {
                    return RegistryError::Transport {
                        detail: format!(
                            "{reference}: the registry speaks TLS; trust its certificate with --ca-cert FILE or /etc/docker/certs.d/{registry}/ca.crt (or ~/.config/containers/certs.d/{registry}/), and ballast uses TLS for it"
                        ),
                        registry,
                    };
                }
                let detail = if body.is_empty() || body.starts_with('{') || body.starts_with('<') {
                    format!("{reference}: HTTP {code}")
                } else {
                    format!("{reference}: HTTP {code}: {body}")
                };
                RegistryError::Transport { registry, detail }
            }
        },
        OciDistributionError::RequestError(e) if tls::is_certificate_error(&e) => {
            let chain = request_error_chain(&e);
            // Only an unknown issuer is a matter of trust; an expired certificate or
            // one for another name stays refused whatever the user trusts.
            let hint = if chain.contains("UnknownIssuer") || chain.contains("CaUsedAsEndEntity") {
                format!(
                    " (trust its CA, or the self-signed certificate itself, with --ca-cert FILE or /etc/docker/certs.d/{registry}/ca.crt)"
                )
            } else {
                String::new()
            };
            RegistryError::Transport {
                detail: format!("{reference}: TLS certificate refused: {chain}{hint}"),
                registry,
            }
        }
        OciDistributionError::RequestError(e) => RegistryError::Transport {
            registry,
            detail: format!("{reference}: {}", request_error_chain(&e)),
        },
        other => RegistryError::Transport {
            registry,
            detail: format!("{reference}: {}", first_line(&other.to_string())),
        },
    }
}

fn request_error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:38211"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("ghcr.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }
}
