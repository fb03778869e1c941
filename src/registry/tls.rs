//! Registry TLS as private registries really run it: CAs from `--ca-cert`, the
//! per-registry directories docker and podman read (`certs.d/HOST[:PORT]/`), client
//! certificates for mutual TLS, and self-signed certificates that are their own CA.
//!
//! WebPKI refuses a certificate with `CA:TRUE` as a server's own
//! (`CaUsedAsEndEntity`), yet that is what `openssl req -x509` makes with OpenSSL 3's
//! defaults and what the Docker docs tell people to deploy. Go's crypto/x509, which
//! docker and skopeo use, accepts a server certificate that is itself in the trusted
//! pool; so does ballast, for certificates the user trusts explicitly, byte for byte,
//! and still checks their validity dates and host name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::RegistryError;

/// The per-registry trust directories, in the order docker and containers/image
/// document them; `{home}` and `{config}` are the user's home and XDG config dirs.
const CERTS_D_ROOTS: &[&str] = &[
    "{config}/containers/certs.d",
    "{config}/docker/certs.d",
    "/etc/containers/certs.d",
    "/etc/docker/certs.d",
];

/// What the user trusts for one registry, and where it came from.
#[derive(Default)]
pub struct Trust {
    /// Every certificate trusted explicitly (as a CA, and byte for byte as a server's).
    pub certificates: Vec<CertificateDer<'static>>,
    pub client: Option<ClientIdentity>,
    /// The `certs.d` directories that applied.
    pub dirs: Vec<PathBuf>,
}

pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Trust {
    /// Whether anything beyond the system's roots was configured: then the user
    /// means TLS, even for a loopback registry.
    pub fn is_configured(&self) -> bool {
        !self.certificates.is_empty() || self.client.is_some() || !self.dirs.is_empty()
    }
}

/// Trust for `registry` (as the reference names it, `HOST[:PORT]`): the `--ca-cert`
/// files, then `--cert-dir DIR` if given, else every existing `certs.d/HOST[:PORT]`.
pub fn trust_for(
    registry: &str,
    ca_certs: &[PathBuf],
    cert_dir: Option<&Path>,
) -> Result<Trust, RegistryError> {
    let mut trust = Trust::default();
    for path in ca_certs {
        trust
            .certificates
            .extend(
                read_certificates(path).map_err(|reason| RegistryError::CaCert {
                    path: path.clone(),
                    reason,
                })?,
            );
    }
    let dirs = match cert_dir {
        Some(dir) => {
            if !dir.is_dir() {
                return Err(RegistryError::CertDir {
                    path: dir.to_path_buf(),
                    reason: "not a directory".into(),
                });
            }
            vec![dir.to_path_buf()]
        }
        None => certs_d_dirs(registry, &default_roots()),
    };
    for dir in dirs {
        read_cert_dir(&dir, &mut trust)?;
        trust.dirs.push(dir);
    }
    Ok(trust)
}

fn default_roots() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    CERTS_D_ROOTS
        .iter()
        .filter_map(|root| match root.strip_prefix("{config}") {
            Some(rest) => config
                .as_ref()
                .map(|c| c.join(rest.trim_start_matches('/'))),
            None => Some(PathBuf::from(root)),
        })
        .collect()
}

/// The existing `ROOT/HOST[:PORT]` directories under `roots`.
pub fn certs_d_dirs(registry: &str, roots: &[PathBuf]) -> Vec<PathBuf> {
    // A host name with a slash or `..` in it would leave the directory.
    if registry.is_empty() || registry.contains('/') || registry.contains("..") {
        return Vec::new();
    }
    roots
        .iter()
        .map(|root| root.join(registry))
        .filter(|dir| dir.is_dir())
        .collect()
}

/// docker's rules (`docs/engine/security/certificates`): `*.crt` are CAs, each
/// `NAME.cert` is a client certificate whose key is `NAME.key`.
fn read_cert_dir(dir: &Path, trust: &mut Trust) -> Result<(), RegistryError> {
    let bad = |path: &Path, reason: String| RegistryError::CertDir {
        path: path.to_path_buf(),
        reason,
    };
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| bad(dir, e.to_string()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    names.sort();
    for path in &names {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => trust
                .certificates
                .extend(read_certificates(path).map_err(|reason| bad(path, reason))?),
            Some("cert") => {
                let key_path = path.with_extension("key");
                if !key_path.is_file() {
                    return Err(bad(
                        path,
                        format!("client certificate without its key {}", key_path.display()),
                    ));
                }
                if trust.client.is_some() {
                    continue;
                }
                let chain = read_certificates(path).map_err(|reason| bad(path, reason))?;
                let key = PrivateKeyDer::from_pem_file(&key_path)
                    .map_err(|e| bad(&key_path, format!("no private key in it ({e})")))?;
                trust.client = Some(ClientIdentity { chain, key });
            }
            Some("key") if !path.with_extension("cert").is_file() => {
                return Err(bad(
                    path,
                    "a key without its client certificate (NAME.cert)".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every certificate in a PEM file, or the one in a DER file.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let data =
        crate::input::read_capped(path, crate::input::CONFIG_LIMIT).map_err(|e| e.to_string())?;
    if data.starts_with(b"-----BEGIN") || data.windows(11).any(|w| w == b"-----BEGIN ") {
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&data)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("bad PEM: {e}"))?;
        if certs.is_empty() {
            return Err("no CERTIFICATE in it".into());
        }
        return Ok(certs);
    }
    x509_parser::parse_x509_certificate(&data)
        .map_err(|e| format!("neither PEM nor a DER certificate: {e}"))?;
    Ok(vec![CertificateDer::from(data)])
}

/// The rustls configuration for a registry: the platform's roots plus the trusted
/// certificates, the pinned-certificate rule, and the client identity if any.
pub fn client_config(
    trust: &Trust,
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ClientConfig, RegistryError> {
    let tls_error = |e: rustls::Error| RegistryError::Tls(e.to_string());
    let inner = rustls_platform_verifier::Verifier::new_with_extra_roots(
        trust.certificates.iter().cloned(),
        Arc::clone(&provider),
    )
    .map_err(tls_error)?;
    let verifier = PinnedOrChain {
        inner,
        pinned: trust.certificates.clone(),
        provider: Arc::clone(&provider),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    Ok(match &trust.client {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .map_err(tls_error)?,
        None => builder.with_no_client_auth(),
    })
}

#[derive(Debug)]
struct PinnedOrChain {
    inner: rustls_platform_verifier::Verifier,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedOrChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => Ok(verified),
            Err(chain_error) => {
                if !self
                    .pinned
                    .iter()
                    .any(|c| c.as_ref() == end_entity.as_ref())
                {
                    return Err(chain_error);
                }
                check_pinned(end_entity, server_name, now)?;
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A certificate the user trusts byte for byte still has to be valid now and name
/// the host it was reached by.
fn check_pinned(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let (_, parsed) = x509_parser::parse_x509_certificate(end_entity.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    let validity = parsed.validity();
    let now = now.as_secs() as i64;
    if now < validity.not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidYet,
        ));
    }
    if now > validity.not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired,
        ));
    }
    let certificate = rustls::server::ParsedCertificate::try_from(end_entity)?;
    rustls::client::verify_server_name(&certificate, server_name)
}

/// Whether a request failed on the server's certificate (never worth a retry).
pub fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(cause) = current {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::InvalidCertRevocationList(_)
            );
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                    return matches!(tls, rustls::Error::InvalidCertificate(_));
                }
            }
        }
        let text = cause.to_string();
        if text.contains("invalid peer certificate") {
            return true;
        }
        current = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_d_lookup_is_per_host_and_port() {
        let root = tempfile::tempdir().expect("dir");
        let other = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(root.path().join("registry.local:5000")).expect("mkdir");
        std::fs::create_dir_all(other.path().join("registry.local:5000")).expect("mkdir");
        let roots = vec![root.path().to_path_buf(), other.path().to_path_buf()];
        assert_eq!(certs_d_dirs("registry.local:5000", &roots).len(), 2);
        assert!(certs_d_dirs("registry.local", &roots).is_empty());
        assert!(certs_d_dirs("../etc", &roots).is_empty());
    }
}
