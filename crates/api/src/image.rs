//! [`ImageRef`]: an OCI reference naming a wasm component in a registry.
use std::fmt;

/// A parsed OCI reference, `registry[:port]/repository[:tag][@sha256:<hex>]`.
///
/// ```
/// let r = skiff_api::ImageRef::parse("127.0.0.1:5000/apps/hello:v1").unwrap();
/// assert_eq!((r.registry.as_str(), r.repository.as_str()), ("127.0.0.1:5000", "apps/hello"));
/// assert_eq!(r.reference(), "v1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Host and optional port of the registry (always explicit: there is no default registry).
    pub registry: String,
    /// Repository path, e.g. `apps/hello`.
    pub repository: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// `sha256:<hex>` of the image manifest, if given.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses `s`; the error says what is wrong with it.
    ///
    /// # Errors
    /// A message naming the part that does not parse and the expected form.
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        const FORM: &str = "expected registry[:port]/repository[:tag][@sha256:<64 hex>], \
                            e.g. registry.example.com/apps/hello:v1";
        if s.contains("://") {
            return Err(format!("has a URL scheme: drop it; {FORM}"));
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => {
                if !is_sha256_digest(d) {
                    return Err(format!(
                        "digest {d:?} is not sha256: followed by 64 lowercase hex digits"
                    ));
                }
                (n, Some(d.to_owned()))
            }
            None => (s, None),
        };
        let Some((registry, rest)) = name.split_once('/') else {
            return Err(format!("names no registry; {FORM}"));
        };
        if registry.is_empty()
            || !(registry.contains('.') || registry.contains(':') || registry == "localhost")
        {
            return Err(format!(
                "{registry:?} is not a registry host (it needs a '.', a ':port' or to be localhost); {FORM}"
            ));
        }
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t)),
            _ => (rest, None),
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
                && c.as_bytes()[0].is_ascii_alphanumeric()
        };
        if !repository.split('/').all(component_ok) {
            return Err(format!(
                "repository {repository:?} must be lowercase letters, digits, '.', '_', '-' in \
                 '/'-separated parts; {FORM}"
            ));
        }
        if let Some(t) = tag
            && (t.is_empty()
                || t.len() > 128
                || t.starts_with(['.', '-'])
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
        {
            return Err(format!(
                "tag {t:?} must be 1 to 128 letters, digits, '.', '_', '-' (not starting with '.' or '-')"
            ));
        }
        Ok(ImageRef {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// What the registry's manifest endpoint is asked for: the digest if pinned, else the tag,
    /// else `latest`.
    pub fn reference(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Whether `d` is `sha256:` followed by 64 lowercase hex digits.
pub fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("localhost:5000/hello:v1@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.reference(), d);
        assert_eq!(r.to_string(), format!("localhost:5000/hello:v1@{d}"));
        let r = ImageRef::parse("reg.example.com/a/b").unwrap();
        assert_eq!((r.repository.as_str(), r.reference()), ("a/b", "latest"));
        for bad in [
            "hello:v1",
            "docker/hello",
            "http://reg.example.com/a",
            "reg.example.com/A",
            "reg.example.com/a@sha256:12",
            "reg.example.com/a:-x",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
