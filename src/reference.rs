//! Image references as users type them, in skopeo's transport syntax.

use std::fmt;
use std::path::PathBuf;

use oci_client::Reference;

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error("invalid image reference {input:?}: {reason}")]
    Invalid { input: String, reason: String },
    #[error("unsupported transport {transport:?} in {input:?}: use a registry reference, docker://, oci:DIR[:TAG], oci-archive:FILE[:REF], docker-archive:FILE[:REF], docker-daemon:NAME[:TAG] or podman:NAME[:TAG]")]
    UnsupportedTransport { input: String, transport: String },
}

impl crate::error::Fault for ReferenceError {
    fn is_bad_input(&self) -> bool {
        true
    }
}

/// Where an image lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A registry image, normalised the way Docker does (`alpine` is
    /// `docker.io/library/alpine:latest`).
    Registry(Reference),
    /// An OCI image layout directory; `tag` picks an entry of `index.json` by its
    /// `org.opencontainers.image.ref.name` annotation.
    OciLayout { dir: PathBuf, tag: Option<String> },
    /// A `docker save` tarball; `reference` picks one of its `RepoTags` (or `@N`, the
    /// N-th manifest) when it holds several images.
    DockerArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    /// A tar of an OCI image layout (skopeo, buildah, `buildx --output type=oci`);
    /// `reference` picks an index entry by `ref.name`, as for `oci:`.
    OciArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    /// An image in a local engine's store, read through its Docker-compatible API.
    /// `name` is passed to the engine as typed (it resolves short names its own way),
    /// with `:latest` added when it names neither a tag, a digest nor an image ID.
    Daemon { engine: Engine, name: String },
}

/// Which local engine a `Daemon` reference reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Docker,
    Podman,
}

impl Engine {
    pub fn transport(self) -> &'static str {
        match self {
            Engine::Docker => "docker-daemon",
            Engine::Podman => "podman",
        }
    }
}

/// skopeo transports that ballast knows by name but cannot read.
const OTHER_TRANSPORTS: &[&str] = &["dir", "containers-storage", "ostree", "sif"];

impl ImageRef {
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        // Not trimmed: the shell already splits words, and a path may end in a space.
        let trimmed = input;
        if trimmed.is_empty() {
            return Err(ReferenceError::Empty);
        }
        // No reference or path a user means has control characters in it (found by
        // fuzzing: tabs inside `docker-archive:` that trimming then ate).
        if trimmed.chars().any(char::is_control) {
            return Err(invalid(input, "contains control characters"));
        }
        if let Some(rest) = trimmed.strip_prefix("docker://") {
            return parse_registry(input, rest);
        }
        if let Some(rest) = trimmed.strip_prefix("oci:") {
            let (dir, tag) = split_path_and_suffix(rest);
            if dir.is_empty() {
                return Err(invalid(
                    input,
                    "oci: needs a directory, as in oci:DIR[:TAG]",
                ));
            }
            return Ok(ImageRef::OciLayout {
                dir: PathBuf::from(dir),
                tag,
            });
        }
        if let Some(rest) = trimmed.strip_prefix("docker-archive:") {
            let (file, reference) = split_path_and_suffix(rest);
            if file.is_empty() {
                return Err(invalid(
                    input,
                    "docker-archive: needs a file, as in docker-archive:FILE[:REF]",
                ));
            }
            return Ok(ImageRef::DockerArchive {
                file: PathBuf::from(file),
                reference,
            });
        }
        if let Some(rest) = trimmed.strip_prefix("oci-archive:") {
            let (file, reference) = split_path_and_suffix(rest);
            if file.is_empty() {
                return Err(invalid(
                    input,
                    "oci-archive: needs a file, as in oci-archive:FILE[:REF]",
                ));
            }
            return Ok(ImageRef::OciArchive {
                file: PathBuf::from(file),
                reference,
            });
        }
        for engine in [Engine::Docker, Engine::Podman] {
            if let Some(rest) = trimmed
                .strip_prefix(engine.transport())
                .and_then(|rest| rest.strip_prefix(':'))
            {
                return parse_daemon(input, engine, rest);
            }
        }
        if let Some((transport, _)) = trimmed.split_once(':') {
            if OTHER_TRANSPORTS.contains(&transport) {
                return Err(ReferenceError::UnsupportedTransport {
                    input: input.to_string(),
                    transport: transport.to_string(),
                });
            }
        }
        parse_registry(input, trimmed)
    }

    /// The registry host, for registry references.
    pub fn registry(&self) -> Option<&str> {
        match self {
            ImageRef::Registry(reference) => Some(reference.registry()),
            _ => None,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Registry(reference) => write!(f, "{}", reference.whole()),
            ImageRef::OciLayout { dir, tag } => {
                write!(f, "oci:{}", dir.display())?;
                if let Some(tag) = tag {
                    write!(f, ":{tag}")?;
                }
                Ok(())
            }
            ImageRef::DockerArchive { file, reference } => {
                write!(f, "docker-archive:{}", file.display())?;
                if let Some(reference) = reference {
                    write!(f, ":{reference}")?;
                }
                Ok(())
            }
            ImageRef::OciArchive { file, reference } => {
                write!(f, "oci-archive:{}", file.display())?;
                if let Some(reference) = reference {
                    write!(f, ":{reference}")?;
                }
                Ok(())
            }
            ImageRef::Daemon { engine, name } => write!(f, "{}:{name}", engine.transport()),
        }
    }
}

/// containers/image splits `PATH:SUFFIX` at the first colon; so do we, so that
/// `docker-archive:app.tar:docker.io/library/app:1.0` keeps its whole reference.
fn split_path_and_suffix(rest: &str) -> (&str, Option<String>) {
    match rest.split_once(':') {
        Some((path, suffix)) if !suffix.is_empty() => (path, Some(suffix.to_string())),
        Some((path, _)) => (path, None),
        None => (rest, None),
    }
}

fn parse_registry(input: &str, text: &str) -> Result<ImageRef, ReferenceError> {
    if text.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(input, "contains whitespace or control characters"));
    }
    let reference: Reference = text
        .parse()
        .map_err(|e: oci_client::ParseError| invalid(input, &e.to_string()))?;
    if let Some(digest) = reference.digest() {
        crate::digest::Digest::parse(digest).map_err(|e| invalid(input, &e.to_string()))?;
    }
    // The distribution spec allows only lowercase repository names; the parser lets
    // an uppercase first component through when it reads it as a path, not a host
    // (found by fuzzing: `I/oct:om`).
    let repository_ok = reference.repository().split('/').all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    });
    if !repository_ok {
        return Err(invalid(
            input,
            "repository names are lowercase letters, digits and . _ - separated by /",
        ));
    }
    Ok(ImageRef::Registry(reference))
}

/// `NAME[:TAG]`, `NAME@DIGEST` or an image ID (`sha256:HEX`, or its short form).
fn parse_daemon(input: &str, engine: Engine, rest: &str) -> Result<ImageRef, ReferenceError> {
    let transport = engine.transport();
    if rest.is_empty() {
        return Err(invalid(
            input,
            &format!("{transport}: needs an image, as in {transport}:NAME[:TAG] or {transport}:sha256:ID"),
        ));
    }
    if rest.chars().any(|c| c.is_whitespace()) {
        return Err(invalid(input, "contains whitespace"));
    }
    if let Some(hex) = rest.strip_prefix("sha256:") {
        let is_id = (4..=64).contains(&hex.len())
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_id {
            return Err(invalid(
                input,
                "an image ID is sha256: and 4 to 64 lowercase hex digits",
            ));
        }
        return Ok(ImageRef::Daemon {
            engine,
            name: rest.to_string(),
        });
    }
    // The same grammar as a registry reference; the engine resolves the name itself.
    let parsed: Reference = rest
        .parse()
        .map_err(|e: oci_client::ParseError| invalid(input, &e.to_string()))?;
    let last = rest.rsplit('/').next().unwrap_or(rest);
    let name = if parsed.digest().is_some() || last.contains(':') {
        rest.to_string()
    } else {
        // Asked for a bare repository, the engine would export every tag of it.
        format!("{rest}:latest")
    };
    Ok(ImageRef::Daemon { engine, name })
}

fn invalid(input: &str, reason: &str) -> ReferenceError {
    ReferenceError::Invalid {
        input: input.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(input: &str) -> String {
        match ImageRef::parse(input) {
            Ok(ImageRef::Registry(r)) => r.whole(),
            other => panic!("{input}: {other:?}"),
        }
    }

    #[test]
    fn docker_hub_normalisation() {
        assert_eq!(registry("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(
            registry("docker://alpine:3.20"),
            "docker.io/library/alpine:3.20"
        );
        assert_eq!(registry("org/app"), "docker.io/org/app:latest");
        assert_eq!(registry("ghcr.io/org/svc:1.4"), "ghcr.io/org/svc:1.4");
        assert_eq!(
            registry("localhost:5000/app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            "localhost:5000/app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn local_transports() {
        assert_eq!(
            ImageRef::parse("oci:/tmp/layout:v1").ok(),
            Some(ImageRef::OciLayout {
                dir: "/tmp/layout".into(),
                tag: Some("v1".into())
            })
        );
        assert_eq!(
            ImageRef::parse("oci:layout").ok(),
            Some(ImageRef::OciLayout {
                dir: "layout".into(),
                tag: None
            })
        );
        assert_eq!(
            ImageRef::parse("docker-archive:app.tar:docker.io/library/app:1.0").ok(),
            Some(ImageRef::DockerArchive {
                file: "app.tar".into(),
                reference: Some("docker.io/library/app:1.0".into())
            })
        );
    }

    #[test]
    fn daemon_and_archive_transports() {
        let daemon = |input: &str| match ImageRef::parse(input) {
            Ok(ImageRef::Daemon { engine, name }) => (engine, name),
            other => panic!("{input}: {other:?}"),
        };
        assert_eq!(
            daemon("docker-daemon:app"),
            (Engine::Docker, "app:latest".to_string())
        );
        assert_eq!(
            daemon("docker-daemon:localhost:5000/app"),
            (Engine::Docker, "localhost:5000/app:latest".to_string())
        );
        assert_eq!(
            daemon("podman:localhost/app:1.2"),
            (Engine::Podman, "localhost/app:1.2".to_string())
        );
        let id = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            daemon(&format!("docker-daemon:{id}")),
            (Engine::Docker, id.to_string())
        );
        assert_eq!(
            ImageRef::parse("docker-daemon:app:1")
                .map(|r| r.to_string())
                .ok(),
            Some("docker-daemon:app:1".to_string())
        );
        assert_eq!(
            ImageRef::parse("oci-archive:/tmp/app.tar:v1").ok(),
            Some(ImageRef::OciArchive {
                file: "/tmp/app.tar".into(),
                reference: Some("v1".into())
            })
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            ImageRef::parse("docker-archive:\t\t:"),
            Err(ReferenceError::Invalid { .. })
        ));
        // Found by fuzzing: accepted, then refused in its own normalised form.
        assert!(matches!(
            ImageRef::parse("I/oct:om"),
            Err(ReferenceError::Invalid { .. })
        ));
        assert!(matches!(ImageRef::parse(""), Err(ReferenceError::Empty)));
        assert!(matches!(
            ImageRef::parse("UPPER/Case"),
            Err(ReferenceError::Invalid { .. })
        ));
        assert!(matches!(
            ImageRef::parse("app@sha256:123"),
            Err(ReferenceError::Invalid { .. })
        ));
        assert!(matches!(
            ImageRef::parse("a b"),
            Err(ReferenceError::Invalid { .. })
        ));
        assert!(matches!(
            ImageRef::parse("docker-daemon:"),
            Err(ReferenceError::Invalid { .. })
        ));
        assert!(matches!(
            ImageRef::parse("docker-daemon:sha256:xyz"),
            Err(ReferenceError::Invalid { .. })
        ));
        assert!(matches!(
            ImageRef::parse("oci-archive:"),
            Err(ReferenceError::Invalid { .. })
        ));
        assert!(matches!(
            ImageRef::parse("containers-storage:app"),
            Err(ReferenceError::UnsupportedTransport { .. })
        ));
        assert!(matches!(
            ImageRef::parse("oci:"),
            Err(ReferenceError::Invalid { .. })
        ));
    }
}
