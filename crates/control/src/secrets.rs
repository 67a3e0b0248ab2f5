//! Secrets at rest: every value of a [`Secret`]'s `data` is sealed with the cluster secrets key
//! (AES-256-GCM, a random 96-bit nonce per value, the object's `namespace/name/key` as associated
//! data) before it is proposed, so the Raft log, redb tables, snapshots and backups hold only
//! `enc:v1:<base64 nonce ‖ ciphertext ‖ tag>`. Values are opened again when the API answers a read.
//!
//! The key is 32 random bytes in `pki/secrets.key` (mode 0600), created with the cluster CA and
//! handed to joining control members with the CA key.
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use skiff_api::{Object, Secret};

use crate::error::ControlError;

/// File of the cluster secrets key in the pki directory.
pub(crate) const SECRETS_KEY_FILE: &str = "secrets.key";
/// Prefix of a sealed value.
const SEALED_PREFIX: &str = "enc:v1:";
/// Bytes of the key.
const KEY_LEN: usize = 32;

/// The cluster secrets key.
pub(crate) struct SecretsKey {
    key: LessSafeKey,
    /// Keys fingerprints of configuration data (HMAC-SHA256 under a key derived from this one).
    mac: ring::hmac::Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(..)")
    }
}

fn key_path(pki: &Path) -> PathBuf {
    pki.join(SECRETS_KEY_FILE)
}

fn key_err(path: &Path, what: impl std::fmt::Display) -> ControlError {
    ControlError::Cluster(format!("secrets key {}: {what}", path.display()))
}

/// 32 fresh random bytes, base64, as stored in `pki/secrets.key` and in the join handover.
pub(crate) fn generate_key_text() -> Result<String, ControlError> {
    let mut raw = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| ControlError::Cluster("cannot draw random bytes for the secrets key".into()))?;
    Ok(STANDARD.encode(raw))
}

/// Writes `pki/secrets.key` unless it exists (a new cluster, or one created before secrets were
/// encrypted).
pub(crate) fn ensure_key_file(pki: &Path) -> Result<(), ControlError> {
    let path = key_path(pki);
    if path.exists() {
        return Ok(());
    }
    write_key_file(pki, &generate_key_text()?)
}

/// Writes `pki/secrets.key` (mode 0600) with the base64 key `text`.
pub(crate) fn write_key_file(pki: &Path, text: &str) -> Result<(), ControlError> {
    let path = key_path(pki);
    crate::files::write_file_atomic(&path, text.trim().as_bytes(), 0o600).map_err(|e| key_err(&path, e))
}

/// The key file's text, for the join handover.
pub(crate) fn read_key_text(pki: &Path) -> Result<String, ControlError> {
    let path = key_path(pki);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| key_err(&path, e))
}

impl SecretsKey {
    /// Loads `pki/secrets.key`.
    pub(crate) fn load(pki: &Path) -> Result<Self, ControlError> {
        let path = key_path(pki);
        let raw = STANDARD
            .decode(read_key_text(pki)?)
            .map_err(|e| key_err(&path, format!("is not base64: {e}")))?;
        Self::from_bytes(&raw).ok_or_else(|| key_err(&path, format!("must hold {KEY_LEN} bytes")))
    }

    fn from_bytes(raw: &[u8]) -> Option<Self> {
        if raw.len() != KEY_LEN {
            return None;
        }
        let key = UnboundKey::new(&AES_256_GCM, raw).ok()?;
        let derived = ring::digest::digest(
            &ring::digest::SHA256,
            &[b"skiff config fingerprint\0".as_slice(), raw].concat(),
        );
        Some(SecretsKey {
            key: LessSafeKey::new(key),
            mac: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref()),
            rng: SystemRandom::new(),
        })
    }

    /// A keyed fingerprint of configuration data (plain values): equal data, equal fingerprint;
    /// without the cluster key it tells nothing about the values.
    pub(crate) fn fingerprint(&self, data: &std::collections::BTreeMap<String, String>) -> String {
        let mut ctx = ring::hmac::Context::with_key(&self.mac);
        for (k, v) in data {
            ctx.update(&(k.len() as u64).to_le_bytes());
            ctx.update(k.as_bytes());
            ctx.update(&(v.len() as u64).to_le_bytes());
            ctx.update(v.as_bytes());
        }
        hex::encode(&ctx.sign().as_ref()[..16])
    }

    /// Seals every plain value of a Secret (values already sealed are kept).
    pub(crate) fn seal(&self, object: &mut Object) -> Result<(), String> {
        let Object::Secret(s) = object else {
            return Ok(());
        };
        let ad = ad_prefix(s);
        for (k, v) in s.data.iter_mut() {
            if v.starts_with(SEALED_PREFIX) {
                continue;
            }
            let mut nonce = [0u8; NONCE_LEN];
            self.rng
                .fill(&mut nonce)
                .map_err(|_| "cannot draw a random nonce".to_owned())?;
            let mut buf = std::mem::take(v).into_bytes();
            self.key
                .seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(format!("{ad}{k}").as_bytes()),
                    &mut buf,
                )
                .map_err(|_| format!("cannot encrypt key {k:?}"))?;
            let mut out = nonce.to_vec();
            out.extend_from_slice(&buf);
            *v = format!("{SEALED_PREFIX}{}", STANDARD.encode(out));
        }
        Ok(())
    }

    /// Opens every sealed value of a Secret.
    pub(crate) fn open(&self, object: &mut Object) -> Result<(), String> {
        let Object::Secret(s) = object else {
            return Ok(());
        };
        let ad = ad_prefix(s);
        let name = format!("{}/{}", s.metadata.namespace_or_default(), s.metadata.name);
        for (k, v) in s.data.iter_mut() {
            let Some(b64) = v.strip_prefix(SEALED_PREFIX) else {
                continue;
            };
            let fail = || {
                format!(
                    "Secret {name} key {k:?} cannot be decrypted with this cluster's secrets key \
                     (pki/{SECRETS_KEY_FILE}): was the key replaced?"
                )
            };
            let mut raw = STANDARD.decode(b64).map_err(|_| fail())?;
            if raw.len() < NONCE_LEN {
                return Err(fail());
            }
            let mut body = raw.split_off(NONCE_LEN);
            let nonce = Nonce::try_assume_unique_for_key(&raw).map_err(|_| fail())?;
            let plain = self
                .key
                .open_in_place(nonce, Aad::from(format!("{ad}{k}").as_bytes()), &mut body)
                .map_err(|_| fail())?;
            *v = String::from_utf8(plain.to_vec()).map_err(|_| fail())?;
        }
        Ok(())
    }
}

/// `namespace/name/`: binds a sealed value to its object and key, so it cannot be moved.
fn ad_prefix(s: &Secret) -> String {
    format!("{}/{}/", s.metadata.namespace_or_default(), s.metadata.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, value: &str) -> Object {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "skiff.dev/v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"password": value}
        }))
        .unwrap()
    }

    fn value(o: &Object) -> &str {
        match o {
            Object::Secret(s) => &s.data["password"],
            _ => unreachable!(),
        }
    }

    #[test]
    fn seals_and_opens_with_a_fresh_nonce_each_time() {
        let dir = tempfile::tempdir().unwrap();
        ensure_key_file(dir.path()).unwrap();
        let key = SecretsKey::load(dir.path()).unwrap();
        let (mut a, mut b) = (secret("db", "marker-42"), secret("db", "marker-42"));
        key.seal(&mut a).unwrap();
        key.seal(&mut b).unwrap();
        assert!(value(&a).starts_with(SEALED_PREFIX) && !value(&a).contains("marker-42"));
        assert_ne!(value(&a), value(&b), "a random nonce per value");
        let sealed = value(&a).to_owned();
        key.seal(&mut a).unwrap();
        assert_eq!(value(&a), sealed, "sealing twice changes nothing");
        key.open(&mut a).unwrap();
        assert_eq!(value(&a), "marker-42");
        // Moved to another object, or opened with another key: refused.
        let mut moved = secret("other", &sealed);
        assert!(key.open(&mut moved).unwrap_err().contains("cannot be decrypted"));
        let other_dir = tempfile::tempdir().unwrap();
        ensure_key_file(other_dir.path()).unwrap();
        let other = SecretsKey::load(other_dir.path()).unwrap();
        assert!(other.open(&mut secret("db", &sealed)).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        ensure_key_file(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(SECRETS_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = read_key_text(dir.path()).unwrap();
        ensure_key_file(dir.path()).unwrap();
        assert_eq!(
            read_key_text(dir.path()).unwrap(),
            text,
            "an existing key is kept"
        );
    }
}
