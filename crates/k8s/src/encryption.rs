//! Values encrypted at rest by the API server (etcd-formats.md §6.3, k8s-decoding.md §2),
//! decrypted offline with its EncryptionConfiguration: `aescbc`, `aesgcm` (the etcd key as
//! additional data) and `secretbox`, each key of the value's provider and key name tried as the
//! API server tries them. `kms` values cannot be decrypted offline: the key is in the KMS.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use serde::Deserialize;

use crate::envelope::{StoredValue, classify};

/// Why a value was not decrypted: one line naming the key name and the resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    #[error("{resource}: encrypted by KMS provider {name}, not decryptable offline (the key is in the KMS)")]
    Kms { name: String, resource: String },
    #[error(
        "{resource}: encrypted with {provider} key {key_name}, which the encryption configuration does not have; give the configuration the API server used when it wrote this value"
    )]
    NoKey {
        provider: String,
        key_name: String,
        resource: String,
    },
    #[error(
        "{resource}: {provider} key {key_name} of the encryption configuration does not decrypt it (a wrong secret under that name?)"
    )]
    WrongKey {
        provider: String,
        key_name: String,
        resource: String,
    },
    #[error("{resource}: encrypted with provider {provider}, which is not one the API server has")]
    UnknownProvider { provider: String, resource: String },
}

/// The configuration could not be used: one line naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    pub origin: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
struct Config {
    kind: Option<String>,
    #[serde(default)]
    resources: Vec<ResourceSection>,
}

#[derive(Debug, Deserialize)]
struct ResourceSection {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<BTreeMap<String, ProviderConfig>>,
}

#[derive(Debug, Default, Deserialize)]
struct ProviderConfig {
    #[serde(default)]
    keys: Vec<KeyConfig>,
}

#[derive(Debug, Deserialize)]
struct KeyConfig {
    name: String,
    secret: String,
}

/// One configured key.
#[derive(Clone)]
struct Key {
    provider: String,
    name: String,
    secret: Vec<u8>,
    /// The `resources` entries of its section (`secrets`, `*.apps`, `*.*`).
    resources: Vec<String>,
}

impl std::fmt::Debug for Key {
    // Never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.provider, self.name)
    }
}

/// The keys of an EncryptionConfiguration.
#[derive(Debug, Clone)]
pub struct EncryptionConfig {
    keys: Vec<Key>,
}

impl EncryptionConfig {
    /// Reads an EncryptionConfiguration (apiserver.config.k8s.io/v1) from `text`; `origin` names
    /// it in errors. Secrets never appear in an error.
    pub fn parse(origin: &str, text: &str) -> Result<Self, ConfigError> {
        let error = |message: String| ConfigError {
            origin: origin.to_string(),
            message,
        };
        let config: Config = serde_yaml_ng::from_str(text)
            .map_err(|e| error(format!("not an EncryptionConfiguration: {e}")))?;
        if config.kind.as_deref() != Some("EncryptionConfiguration") {
            return Err(error("kind is not EncryptionConfiguration".into()));
        }
        let mut keys = Vec::new();
        for (index, section) in config.resources.iter().enumerate() {
            for provider in &section.providers {
                for (name, settings) in provider {
                    if !matches!(name.as_str(), "aescbc" | "aesgcm" | "secretbox") {
                        continue;
                    }
                    for key in &settings.keys {
                        let secret = base64::engine::general_purpose::STANDARD
                            .decode(key.secret.trim())
                            .map_err(|_| {
                                error(format!(
                                    "resources[{index}]: {name} key {:?}: secret is not base64",
                                    key.name
                                ))
                            })?;
                        let sizes: &[usize] = if name == "secretbox" { &[32] } else { &[16, 24, 32] };
                        if !sizes.contains(&secret.len()) {
                            return Err(error(format!(
                                "resources[{index}]: {name} key {:?}: a {}-byte secret; {name} takes {sizes:?} bytes",
                                key.name,
                                secret.len()
                            )));
                        }
                        keys.push(Key {
                            provider: name.clone(),
                            name: key.name.clone(),
                            secret,
                            resources: section.resources.clone(),
                        });
                    }
                }
            }
        }
        Ok(Self { keys })
    }

    /// Decrypts `value` stored under `etcd_key` for `resource` (`secrets`, `deployments.apps`);
    /// a value that is not encrypted is returned as it is.
    pub fn decrypt(&self, etcd_key: &[u8], resource: &str, value: &[u8]) -> Result<Vec<u8>, DecryptError> {
        let Ok(StoredValue::Encrypted {
            provider,
            version,
            key_name,
            ..
        }) = classify(value)
        else {
            return Ok(value.to_vec());
        };
        let resource = resource.to_string();
        let prefix_len = format!("k8s:enc:{provider}:{version}:{key_name}:").len();
        if provider == "kms" {
            return Err(DecryptError::Kms {
                name: key_name,
                resource,
            });
        }
        if !matches!(provider.as_str(), "aescbc" | "aesgcm" | "secretbox") {
            return Err(DecryptError::UnknownProvider { provider, resource });
        }
        let data = value.get(prefix_len..).unwrap_or_default();
        // The sections naming this resource first, as the API server would use them.
        let mut candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| k.provider == provider && k.name == key_name)
            .collect();
        candidates.sort_by_key(|k| !k.resources.iter().any(|r| covers(r, &resource)));
        if candidates.is_empty() {
            return Err(DecryptError::NoKey {
                provider,
                key_name,
                resource,
            });
        }
        candidates
            .iter()
            .find_map(|key| open(key, etcd_key, data))
            .ok_or(DecryptError::WrongKey {
                provider,
                key_name,
                resource,
            })
    }
}

/// Whether a configuration's `resources` entry covers `resource` (`secrets`, `*.apps`, `*.`,
/// `*.*`).
fn covers(entry: &str, resource: &str) -> bool {
    let (_, group) = resource.split_once('.').unwrap_or((resource, ""));
    match entry {
        "*.*" => true,
        "*." => group.is_empty(),
        _ => match entry.strip_prefix("*.") {
            Some(wanted) => group == wanted,
            None => entry == resource,
        },
    }
}

/// Decrypts with one key; `None` when it does not.
fn open(key: &Key, etcd_key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let plain = match key.provider.as_str() {
        "aesgcm" => {
            let (nonce, sealed) = data.split_at_checked(12)?;
            let payload = Payload {
                msg: sealed,
                aad: etcd_key,
            };
            let nonce = aes_gcm::Nonce::from_slice(nonce);
            match key.secret.len() {
                16 => aes_gcm::Aes128Gcm::new_from_slice(&key.secret)
                    .ok()?
                    .decrypt(nonce, payload)
                    .ok()?,
                24 => aes_gcm::AesGcm::<aes::Aes192, aes_gcm::aead::consts::U12>::new_from_slice(&key.secret)
                    .ok()?
                    .decrypt(nonce, payload)
                    .ok()?,
                _ => aes_gcm::Aes256Gcm::new_from_slice(&key.secret)
                    .ok()?
                    .decrypt(nonce, payload)
                    .ok()?,
            }
        }
        "secretbox" => {
            let (nonce, sealed) = data.split_at_checked(24)?;
            crypto_secretbox::XSalsa20Poly1305::new_from_slice(&key.secret)
                .ok()?
                .decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed)
                .ok()?
        }
        _ => cbc_decrypt(&key.secret, data)?,
    };
    Some(plain)
}

/// AES-CBC with PKCS#7 padding. CBC has no integrity check (a wrong key gives valid padding
/// about once in 256), so only what the API server stores counts as decrypted.
fn cbc_decrypt(secret: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    use cbc::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
    let (iv, sealed) = data.split_at_checked(16)?;
    if sealed.is_empty() || sealed.len() % 16 != 0 {
        return None;
    }
    let plain = match secret.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(secret, iv)
            .ok()?
            .decrypt_padded_vec_mut::<Pkcs7>(sealed)
            .ok()?,
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(secret, iv)
            .ok()?
            .decrypt_padded_vec_mut::<Pkcs7>(sealed)
            .ok()?,
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(secret, iv)
            .ok()?
            .decrypt_padded_vec_mut::<Pkcs7>(sealed)
            .ok()?,
    };
    let stored = plain.starts_with(b"k8s\0")
        || plain.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        || plain.starts_with(&[0xd9, 0xd9, 0xf7]);
    stored.then_some(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_entries_cover_as_the_api_server_reads_them() {
        assert!(covers("secrets", "secrets"));
        assert!(!covers("secrets", "configmaps"));
        assert!(covers("*.apps", "deployments.apps"));
        assert!(covers("*.", "secrets"));
        assert!(!covers("*.", "deployments.apps"));
        assert!(covers("*.*", "widgets.example.com"));
    }

    #[test]
    fn bad_configurations_are_one_line_naming_the_key_never_its_secret() {
        let short = "kind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n      - {name: key1, secret: c2hvcnQ=}\n";
        let error = EncryptionConfig::parse("enc.yaml", short)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("enc.yaml") && error.contains("key1") && !error.contains("c2hvcnQ="),
            "{error}"
        );
        let error = EncryptionConfig::parse("enc.yaml", "kind: Pod\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("not EncryptionConfiguration"), "{error}");
    }
}
