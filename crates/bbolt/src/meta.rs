//! Meta pages (pages 0 and 1): layout, FNV-1a checksum, validation.
//!
//! ```text
//! page off  size  field
//!  0..16          page header (id, flags 0x04, count 0, overflow 0)
//! 16        u32   magic 0xED0CDAED
//! 20        u32   version (2)
//! 24        u32   page size
//! 28        u32   flags (unused)
//! 32        u64   root bucket root page
//! 40        u64   root bucket sequence
//! 48        u64   freelist page, or u64::MAX when not persisted (etcd on Linux)
//! 56        u64   high-water mark: pages [0, hwm) are in use or free
//! 64        u64   txid
//! 72        u64   FNV-1a 64 of bytes 16..72
//! ```

use crate::bytes::{u32_at, u64_at};

/// bbolt's magic number.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The only file format version.
pub const VERSION: u32 = 2;
/// The meta's freelist field when the freelist is not persisted.
pub const FREELIST_NOT_PERSISTED: u64 = u64::MAX;
/// Where the meta struct starts in its page.
pub(crate) const META_OFFSET: usize = 16;
const META_CHECKSUMMED: usize = 56;
const META_LEN: usize = META_CHECKSUMMED + 8;

/// A validated meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Page size of the file.
    pub page_size: u32,
    /// Root page of the root bucket.
    pub root: u64,
    /// Freelist page, or [`FREELIST_NOT_PERSISTED`].
    pub freelist: u64,
    /// High-water mark: number of pages in use.
    pub hwm: u64,
    /// Transaction ID of the commit that wrote it.
    pub txid: u64,
}

/// Why a meta page is invalid (bbolt checks in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaProblem {
    TooShort,
    BadMagic,
    BigEndian,
    BadVersion(u32),
    BadChecksum,
    BadPageSize(u32),
}

impl std::fmt::Display for MetaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaProblem::TooShort => write!(f, "too short"),
            MetaProblem::BadMagic => write!(f, "invalid magic"),
            MetaProblem::BigEndian => write!(f, "big-endian magic"),
            MetaProblem::BadVersion(v) => write!(f, "version {v}, expected {VERSION}"),
            MetaProblem::BadChecksum => write!(f, "checksum mismatch"),
            MetaProblem::BadPageSize(s) => {
                write!(f, "page size {s} is not a power of two from 512 to 64 KiB")
            }
        }
    }
}

/// FNV-1a, 64 bit.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Parses the meta struct at `META_OFFSET` of `page`.
pub(crate) fn parse(page: &[u8]) -> Result<Meta, MetaProblem> {
    let m = page
        .get(META_OFFSET..META_OFFSET + META_LEN)
        .ok_or(MetaProblem::TooShort)?;
    let field = |offset| u64_at(m, offset).ok_or(MetaProblem::TooShort);
    let magic = u32_at(m, 0).ok_or(MetaProblem::TooShort)?;
    if magic != MAGIC {
        return Err(if magic == MAGIC.swap_bytes() {
            MetaProblem::BigEndian
        } else {
            MetaProblem::BadMagic
        });
    }
    let version = u32_at(m, 4).ok_or(MetaProblem::TooShort)?;
    if version != VERSION {
        return Err(MetaProblem::BadVersion(version));
    }
    if field(META_CHECKSUMMED)? != fnv1a(&m[..META_CHECKSUMMED]) {
        return Err(MetaProblem::BadChecksum);
    }
    let page_size = u32_at(m, 8).ok_or(MetaProblem::TooShort)?;
    if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        return Err(MetaProblem::BadPageSize(page_size));
    }
    Ok(Meta {
        page_size,
        root: field(16)?,
        freelist: field(32)?,
        hwm: field(40)?,
        txid: field(48)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Page 0 of a real etcd 3.5.1 snapshot (spec §1.3), first 80 bytes.
    pub(crate) fn etcd_meta0() -> Vec<u8> {
        let hex = concat!(
            "0000000000000000",
            "0400",
            "0000",
            "00000000", // page header: id 0, meta
            "edda0ced",
            "02000000",
            "00100000",
            "00000000", // magic, version 2, 4096, flags
            "0200000000000000",
            "0000000000000000", // root 2, sequence 0
            "ffffffffffffffff", // freelist not persisted
            "0500000000000000",
            "0f00000000000000", // hwm 5, txid 15
            "eb32438d81dc3598", // FNV-1a
        );
        (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn fnv1a_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn parses_a_real_etcd_meta() {
        let page = etcd_meta0();
        assert_eq!(page.len(), 80);
        let meta = parse(&page).unwrap();
        assert_eq!(
            meta,
            Meta {
                page_size: 4096,
                root: 2,
                freelist: FREELIST_NOT_PERSISTED,
                hwm: 5,
                txid: 15
            }
        );
    }

    #[test]
    fn reports_problems_in_bbolt_order() {
        let good = etcd_meta0();
        let mut bad = good.clone();
        bad[16] ^= 1;
        assert_eq!(parse(&bad), Err(MetaProblem::BadMagic));
        let mut swapped = good.clone();
        swapped[16..20].reverse();
        assert_eq!(parse(&swapped), Err(MetaProblem::BigEndian));
        let mut version = good.clone();
        version[20] = 3;
        assert_eq!(parse(&version), Err(MetaProblem::BadVersion(3)));
        let mut txid = good.clone();
        txid[64] = 16;
        assert_eq!(parse(&txid), Err(MetaProblem::BadChecksum));
        assert_eq!(parse(&good[..70]), Err(MetaProblem::TooShort));
    }
}
