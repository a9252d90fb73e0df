//! The artefact write stack, synchronous: plain bytes → zstd → age → SHA-256 → sink, and its
//! inverse. The plain SHA-256 is the producer's: each already hashes what it produces (etcd's
//! trailer check does), and a second pass over every plain byte would cost a backup ~5% of its
//! speed on a busy control-plane node. Finishing order matters: zstd first, then age (whose final chunk marks the
//! end, so a truncated object never decrypts), then the sink.

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use crate::{Encryption, Error, Result};

/// A writer that hashes and counts what passes through.
pub(crate) struct Hashing<W> {
    inner: W,
    sha256: Sha256,
    len: u64,
}

impl<W> Hashing<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            sha256: Sha256::new(),
            len: 0,
        }
    }

    /// The inner writer, the byte count and the hex SHA-256.
    pub(crate) fn finish(self) -> (W, u64, String) {
        (self.inner, self.len, hex::encode(self.sha256.finalize()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.sha256.update(&buf[..written]);
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

enum Encrypting<W: Write> {
    Age(age::stream::StreamWriter<W>),
    Plain(W),
}

impl<W: Write> Write for Encrypting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encrypting::Age(w) => w.write(buf),
            Encrypting::Plain(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encrypting::Age(w) => w.flush(),
            Encrypting::Plain(w) => w.flush(),
        }
    }
}

impl<W: Write> Encrypting<W> {
    fn finish(self) -> std::io::Result<W> {
        match self {
            Encrypting::Age(w) => w.finish(),
            Encrypting::Plain(w) => Ok(w),
        }
    }
}

/// What a finished artefact was.
#[derive(Debug)]
pub struct Sealed<W> {
    pub sink: W,
    pub plain_size: u64,
    pub stored_size: u64,
    pub stored_sha256: String,
}

/// Compresses and encrypts an artefact into `sink` while hashing what is stored.
pub struct Sealer<W: Write> {
    object: String,
    plain_len: u64,
    zstd: zstd::stream::Encoder<'static, Encrypting<Hashing<W>>>,
}

impl<W: Write> std::fmt::Debug for Sealer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("object", &self.object)
            .field("plain_len", &self.plain_len)
            .finish()
    }
}

fn recipients(encryption: &Encryption) -> Result<Option<Vec<age::x25519::Recipient>>> {
    let Encryption::Age { recipients } = encryption else {
        return Ok(None);
    };
    recipients
        .iter()
        .map(|r| crate::keys::recipient(r))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

impl<W: Write> Sealer<W> {
    /// Starts artefact `object` into `sink`.
    pub fn new(object: &str, sink: W, encryption: &Encryption, zstd_level: i32) -> Result<Self> {
        let io = |source| Error::Io {
            object: object.to_string(),
            source,
        };
        let hashing = Hashing::new(sink);
        let encrypting = match recipients(encryption)? {
            None => Encrypting::Plain(hashing),
            Some(recipients) => {
                let recipients = recipients.iter().map(|r| r as &dyn age::Recipient);
                let encryptor = age::Encryptor::with_recipients(recipients).map_err(|e| Error::Decrypt {
                    object: object.to_string(),
                    message: e.to_string(),
                })?;
                Encrypting::Age(encryptor.wrap_output(hashing).map_err(io)?)
            }
        };
        let zstd = zstd::stream::Encoder::new(encrypting, zstd_level).map_err(io)?;
        Ok(Self {
            object: object.to_string(),
            plain_len: 0,
            zstd,
        })
    }

    /// Adds plain bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.zstd.write_all(bytes).map_err(|source| Error::Io {
            object: self.object.clone(),
            source,
        })?;
        self.plain_len += bytes.len() as u64;
        Ok(())
    }

    /// Ends the artefact: zstd, then age, then the sink's flush.
    pub fn finish(self) -> Result<Sealed<W>> {
        let io = |source| Error::Io {
            object: self.object.clone(),
            source,
        };
        let encrypting = self.zstd.finish().map_err(io)?;
        let mut hashing = encrypting.finish().map_err(io)?;
        hashing.flush().map_err(io)?;
        let (sink, stored_size, stored_sha256) = hashing.finish();
        Ok(Sealed {
            plain_size: self.plain_len,
            stored_size,
            stored_sha256,
            sink,
        })
    }
}

/// The plain bytes of a stored artefact, decrypting with `identities` when it is encrypted.
pub fn open_sealed<'r, R: Read + 'r>(
    object: &str,
    stored: R,
    encryption: &Encryption,
    identities: &[age::x25519::Identity],
) -> Result<Box<dyn Read + 'r>> {
    let decrypt = |message: String| Error::Decrypt {
        object: object.to_string(),
        message,
    };
    let plain: Box<dyn Read + 'r> = match encryption {
        Encryption::None => Box::new(stored),
        Encryption::Age { .. } => {
            if identities.is_empty() {
                return Err(decrypt("no identity given (--identity-file)".into()));
            }
            let decryptor = age::Decryptor::new(stored).map_err(|e| decrypt(e.to_string()))?;
            let identities = identities.iter().map(|i| i as &dyn age::Identity);
            Box::new(
                decryptor
                    .decrypt(identities)
                    .map_err(|e| decrypt(e.to_string()))?,
            )
        }
    };
    let decoder = zstd::stream::Decoder::new(plain).map_err(|e| Error::Compression {
        object: object.to_string(),
        message: e.to_string(),
    })?;
    Ok(Box::new(decoder))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(plain: &[u8], encryption: &Encryption) -> Sealed<Vec<u8>> {
        let mut sealer = Sealer::new("o", Vec::new(), encryption, 1).unwrap();
        for chunk in plain.chunks(1000) {
            sealer.write(chunk).unwrap();
        }
        sealer.finish().unwrap()
    }

    fn unseal(stored: &[u8], encryption: &Encryption, identity: &age::x25519::Identity) -> Result<Vec<u8>> {
        let mut plain = Vec::new();
        open_sealed("o", stored, encryption, std::slice::from_ref(identity))?
            .read_to_end(&mut plain)
            .map_err(|source| Error::Io {
                object: "o".into(),
                source,
            })?;
        Ok(plain)
    }

    #[test]
    fn round_trips_and_hashes_both_sides() {
        let identity = age::x25519::Identity::generate();
        let encryption = Encryption::Age {
            recipients: vec![identity.to_public().to_string()],
        };
        let plain: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 97).to_le_bytes()).collect();
        let sealed = seal(&plain, &encryption);
        assert_eq!(sealed.plain_size, plain.len() as u64);
        assert_eq!(sealed.stored_size, sealed.sink.len() as u64);
        assert_eq!(sealed.stored_sha256, hex::encode(Sha256::digest(&sealed.sink)));
        assert!(sealed.stored_size < sealed.plain_size / 2, "compressed");
        assert_eq!(unseal(&sealed.sink, &encryption, &identity).unwrap(), plain);

        let stranger = age::x25519::Identity::generate();
        assert!(matches!(
            unseal(&sealed.sink, &encryption, &stranger),
            Err(Error::Decrypt { .. })
        ));
        let truncated = &sealed.sink[..sealed.sink.len() - 10];
        assert!(
            unseal(truncated, &encryption, &identity).is_err(),
            "a truncated object never decrypts"
        );
    }

    #[test]
    fn plain_mode_round_trips_and_bad_recipients_are_named() {
        let identity = age::x25519::Identity::generate();
        let sealed = seal(b"hello", &Encryption::None);
        assert_eq!(
            unseal(&sealed.sink, &Encryption::None, &identity).unwrap(),
            b"hello"
        );
        let bad = Encryption::Age {
            recipients: vec!["not-a-key".into()],
        };
        assert!(matches!(
            Sealer::new("o", Vec::new(), &bad, 1),
            Err(Error::BadKey { .. })
        ));
    }
}
