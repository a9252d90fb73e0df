//! The snapshot trailer: `image || SHA-256(image)`.
//!
//! etcd streams the bbolt image (a whole number of pages) and then one more message with the
//! 32-byte SHA-256 of exactly those bytes. Page sizes are multiples of 512, so a file with a
//! trailer has `len % 512 == 32` (the rule etcdutl uses to decide whether a trailer is present).

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Length of etcd's snapshot digest.
pub const TRAILER_LEN: usize = 32;
/// The sector size etcd assumes every page size is a multiple of.
pub const SNAPSHOT_SECTOR_SIZE: u64 = 512;

/// Whether a snapshot of `len` bytes ends in a trailer, by etcd's size rule ("page sizes are
/// multiples of 512"; `snapshot restore` applies it the same way).
pub fn has_trailer(len: u64) -> bool {
    len % SNAPSHOT_SECTOR_SIZE == TRAILER_LEN as u64
}

/// Checks the trailer of a snapshot that arrives in chunks, without holding it in memory.
///
/// The last [`TRAILER_LEN`] bytes seen so far are held back from the image hash, because only
/// the end of the stream tells which bytes were the trailer.
#[derive(Debug, Default)]
pub struct TrailerCheck {
    image: Sha256,
    tail: Vec<u8>,
    len: u64,
}

/// A snapshot whose trailer matched its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSnapshot {
    /// Bytes of the bbolt image (the stream without its trailer).
    pub image_len: u64,
    /// SHA-256 of the image, as the trailer states it.
    pub image_sha256: [u8; 32],
    /// SHA-256 of the whole stream, trailer included (what `sha256sum` prints for the file).
    pub sha256: [u8; 32],
}

impl TrailerCheck {
    /// A check with nothing consumed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of the stream.
    pub fn update(&mut self, chunk: &[u8]) {
        self.len += chunk.len() as u64;
        if chunk.len() >= TRAILER_LEN {
            self.image.update(&self.tail);
            let (body, tail) = chunk.split_at(chunk.len() - TRAILER_LEN);
            self.image.update(body);
            self.tail.clear();
            self.tail.extend_from_slice(tail);
        } else {
            self.tail.extend_from_slice(chunk);
            let surplus = self.tail.len().saturating_sub(TRAILER_LEN);
            self.image.update(&self.tail[..surplus]);
            self.tail.drain(..surplus);
        }
    }

    /// Bytes consumed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been consumed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ends the stream of a whole file: its trailer's state.
    pub fn state(self) -> crate::Trailer {
        match self.finish() {
            Ok(verified) => crate::Trailer::Valid {
                sha256: hex::encode(verified.image_sha256),
            },
            Err(Error::TrailerMismatch { expected, actual }) => crate::Trailer::Mismatch { expected, actual },
            Err(_) => crate::Trailer::Absent,
        }
    }

    /// Ends the stream: the trailer must be there and must match.
    pub fn finish(self) -> Result<VerifiedSnapshot> {
        let remainder = self.len % SNAPSHOT_SECTOR_SIZE;
        if self.len < SNAPSHOT_SECTOR_SIZE || !has_trailer(self.len) {
            return Err(Error::TrailerMissing {
                len: self.len,
                remainder,
            });
        }
        // One pass serves both digests: the image's, and with the trailer added, the stream's.
        let actual: [u8; 32] = self.image.clone().finalize().into();
        if actual[..] != self.tail[..] {
            return Err(Error::TrailerMismatch {
                expected: hex::encode(&self.tail),
                actual: hex::encode(actual),
            });
        }
        let mut whole = self.image;
        whole.update(&self.tail);
        Ok(VerifiedSnapshot {
            image_len: self.len - TRAILER_LEN as u64,
            image_sha256: actual,
            sha256: whole.finalize().into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(image_len: usize) -> Vec<u8> {
        let image: Vec<u8> = (0..image_len).map(|i| (i * 7 % 251) as u8).collect();
        let digest = Sha256::digest(&image);
        [image, digest.to_vec()].concat()
    }

    fn check_in_chunks(bytes: &[u8], chunk: usize) -> Result<VerifiedSnapshot> {
        let mut check = TrailerCheck::new();
        for part in bytes.chunks(chunk) {
            check.update(part);
        }
        assert_eq!(check.len(), bytes.len() as u64);
        check.finish()
    }

    #[test]
    fn accepts_a_matching_trailer_whatever_the_chunking() {
        let bytes = snapshot(4096 * 3);
        for chunk in [1, 5, 31, 32, 33, 4096, 32 * 1024, bytes.len()] {
            let verified = check_in_chunks(&bytes, chunk).unwrap();
            assert_eq!(verified.image_len, 4096 * 3);
            assert_eq!(verified.image_sha256[..], bytes[bytes.len() - 32..]);
            assert_eq!(verified.sha256[..], Sha256::digest(&bytes)[..]);
        }
    }

    #[test]
    fn rejects_a_flipped_byte_in_image_or_trailer() {
        let clean = snapshot(4096 * 2);
        for position in [0, 4095, clean.len() - 32, clean.len() - 1] {
            let mut bytes = clean.clone();
            bytes[position] ^= 0x40;
            let err = check_in_chunks(&bytes, 1000).unwrap_err();
            assert!(matches!(err, Error::TrailerMismatch { .. }), "{err}");
        }
    }

    #[test]
    fn rejects_streams_without_a_trailer() {
        let with = snapshot(4096);
        let without = &with[..4096];
        assert!(matches!(
            check_in_chunks(without, 100).unwrap_err(),
            Error::TrailerMissing {
                len: 4096,
                remainder: 0
            }
        ));
        assert!(matches!(
            check_in_chunks(&[], 1).unwrap_err(),
            Error::TrailerMissing { len: 0, .. }
        ));
        assert!(matches!(
            check_in_chunks(&with[..with.len() - 1], 64).unwrap_err(),
            Error::TrailerMissing { remainder: 31, .. }
        ));
    }

    /// The vector from the spec (etcd-formats.md §2): a 5-page 3.5.1 snapshot ends with the
    /// digest of its first 20480 bytes; any image of that length checks the same way.
    #[test]
    fn length_rule_matches_etcdutl() {
        let bytes = snapshot(20480);
        assert_eq!(bytes.len(), 20512);
        assert_eq!(bytes.len() as u64 % SNAPSHOT_SECTOR_SIZE, 32);
        assert!(check_in_chunks(&bytes, 32 * 1024).is_ok());
    }
}
