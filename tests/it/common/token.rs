//! A token server for the registry's bearer-token auth (the flow Docker Hub, GHCR and
//! ECR use): the registry answers 401 with a `Bearer realm=…` challenge, the client
//! asks this server for a JWT, signed here with ES256 and a certificate the registry
//! trusts (`rootcertbundle`). Anonymous callers get pull access to `public/*` only.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

pub const SERVICE: &str = "ballast-test-registry";
pub const ISSUER: &str = "ballast-test-token-issuer";

pub struct TokenServer {
    pub realm: String,
    pub root_cert: PathBuf,
}

/// Starts the token server on a loopback port, in a thread that lives as long as the
/// test binary. `user`/`password` get pull and push everywhere.
pub fn start(dir: &Path, user: &'static str, password: &'static str) -> TokenServer {
    let key = rcgen::KeyPair::generate().expect("signing key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ISSUER);
    let cert = params.self_signed(&key).expect("token certificate");
    let root_cert = dir.join("token-root.pem");
    std::fs::write(&root_cert, cert.pem()).expect("write token cert");
    let cert_der = base64::engine::general_purpose::STANDARD.encode(cert.der());
    let rng = ring::rand::SystemRandom::new();
    let signer =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der(), &rng)
            .expect("ring key");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
    let realm = format!("http://{}/token", listener.local_addr().expect("addr"));
    let expected_basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut authorization = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("authorization") {
                        authorization = Some(value.trim().to_string());
                    }
                }
            }
            let target = request_line.split_whitespace().nth(1).unwrap_or("");
            let query = target.split_once('?').map_or("", |(_, q)| q);
            let scopes: Vec<String> = query
                .split('&')
                .filter_map(|pair| pair.strip_prefix("scope="))
                .map(percent_decode)
                .collect();
            let user_ok = authorization.as_deref() == Some(&format!("Basic {expected_basic}"));
            let response = if authorization.is_some() && !user_ok {
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            } else {
                let access: Vec<serde_json::Value> = scopes
                    .iter()
                    .filter_map(|scope| {
                        let mut parts = scope.splitn(3, ':');
                        let (kind, name) = (parts.next()?, parts.next()?);
                        let actions: Vec<&str> = if user_ok {
                            vec!["pull", "push"]
                        } else if name.starts_with("public/") {
                            vec!["pull"]
                        } else {
                            vec![]
                        };
                        Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
                    })
                    .collect();
                let token = sign(
                    &signer,
                    &rng,
                    &cert_der,
                    if user_ok { user } else { "" },
                    access,
                );
                let body =
                    serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
                        .to_string();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let _ = (&stream).write_all(response.as_bytes());
        }
    });
    TokenServer { realm, root_cert }
}

fn sign(
    signer: &EcdsaKeyPair,
    rng: &ring::rand::SystemRandom,
    cert_der: &str,
    subject: &str,
    access: Vec<serde_json::Value>,
) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [cert_der]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": subject, "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let signature = signer
        .sign(rng, signing_input.as_bytes())
        .expect("sign token");
    format!("{signing_input}.{}", b64.encode(signature.as_ref()))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(value) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(value);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
