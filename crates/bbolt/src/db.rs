//! Opening a bbolt image: page size discovery, meta choice, bounds-checked page access.

use crate::bytes::u64_at;
use crate::meta::{self, Meta, MetaProblem};
use crate::page::Page;
use crate::{Error, Result};

/// A bbolt image with a validated current meta.
#[derive(Debug, Clone)]
pub struct Db<'a> {
    data: &'a [u8],
    meta: Meta,
    meta_page: u64,
    other_meta_problem: Option<String>,
}

/// Why a page cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageFault {
    /// At or past the high-water mark, or its overflow runs past it or the file.
    OutOfBounds,
    /// The header names another page.
    IdMismatch(u64),
}

/// bbolt's fallback when no meta says otherwise: the usual OS page size.
const DEFAULT_PAGE_SIZE: usize = 4096;

impl<'a> Db<'a> {
    /// Validates the metas of `data` and picks the current one, as bbolt does when opening.
    pub fn open(data: &'a [u8]) -> Result<Self> {
        let meta0 = meta::parse(data);
        let page_size = match meta0 {
            Ok(m) => m.page_size as usize,
            Err(_) => probe_page_size(data).unwrap_or(DEFAULT_PAGE_SIZE),
        };
        let second = data.get(page_size..).unwrap_or_default();
        let meta1 = meta::parse(second);
        // The meta with the larger txid wins if valid; txids are read even from invalid metas.
        let txid = |page: &[u8]| u64_at(page, meta::META_OFFSET + 48).unwrap_or(0);
        let candidates = if txid(second) > txid(data) {
            [(1, meta1), (0, meta0)]
        } else {
            [(0, meta0), (1, meta1)]
        };
        let chosen = candidates.iter().find_map(|(page, m)| m.ok().map(|m| (*page, m)));
        let Some((meta_page, meta)) = chosen else {
            return Err(no_meta_error(data.len() as u64, meta0.err(), meta1.err()));
        };
        let other_meta_problem = candidates
            .iter()
            .find(|(page, _)| *page != meta_page)
            .and_then(|(page, m)| m.err().map(|problem| format!("meta page {page}: {problem}")));
        let db = Self {
            data,
            meta,
            meta_page,
            other_meta_problem,
        };
        let needed = meta.hwm.checked_mul(u64::from(meta.page_size));
        if needed.is_none_or(|needed| needed > data.len() as u64) || meta.hwm < 2 {
            return Err(Error::Truncated {
                len: data.len() as u64,
                pages: meta.hwm,
                page_size: meta.page_size,
            });
        }
        Ok(db)
    }

    /// The current meta.
    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// Which meta page (0 or 1) is current.
    pub fn meta_page(&self) -> u64 {
        self.meta_page
    }

    /// The other meta page's problem, if it is invalid (bbolt then silently uses this one).
    pub fn other_meta_problem(&self) -> Option<&str> {
        self.other_meta_problem.as_deref()
    }

    /// Page size in bytes.
    pub fn page_size(&self) -> usize {
        self.meta.page_size as usize
    }

    /// Bytes in use: high-water mark times page size (what `Tx.Size` reports).
    pub fn size(&self) -> u64 {
        self.meta.hwm * u64::from(self.meta.page_size)
    }

    /// Page `id` with its overflow span; the span lies inside the high-water mark.
    pub(crate) fn page(&self, id: u64) -> std::result::Result<Page<'a>, PageFault> {
        let page_size = self.page_size() as u64;
        if id >= self.meta.hwm {
            return Err(PageFault::OutOfBounds);
        }
        let start = (id * page_size) as usize;
        let first = self
            .data
            .get(start..start + page_size as usize)
            .ok_or(PageFault::OutOfBounds)?;
        let header = Page::parse_header(first).ok_or(PageFault::OutOfBounds)?;
        if header.id != id {
            return Err(PageFault::IdMismatch(header.id));
        }
        let pages = u64::from(header.overflow) + 1;
        if id + pages > self.meta.hwm {
            return Err(PageFault::OutOfBounds);
        }
        let span = self
            .data
            .get(start..start + (pages * page_size) as usize)
            .ok_or(PageFault::OutOfBounds)?;
        Ok(Page { span, ..header })
    }
}

/// bbolt 1.4's discovery when meta 0 is unreadable: look for meta 1 at 1 KiB .. 16 MiB.
fn probe_page_size(data: &[u8]) -> Option<usize> {
    (0..15)
        .map(|i| 1024usize << i)
        .take_while(|&offset| offset + 1024 <= data.len())
        .find(|&offset| {
            data.get(offset..)
                .and_then(|page| meta::parse(page).ok())
                .is_some_and(|m| m.page_size as usize == offset)
        })
}

fn no_meta_error(len: u64, meta0: Option<MetaProblem>, meta1: Option<MetaProblem>) -> Error {
    let problems = [meta0, meta1];
    if problems.contains(&Some(MetaProblem::BigEndian)) {
        return Error::BigEndian;
    }
    if problems
        .iter()
        .all(|p| matches!(p, Some(MetaProblem::BadMagic | MetaProblem::TooShort) | None))
    {
        return Error::NotBbolt { len };
    }
    let describe = |p: Option<MetaProblem>| p.map_or_else(|| "valid".to_string(), |p| p.to_string());
    Error::NoValidMeta {
        meta0: describe(meta0),
        meta1: describe(meta1),
    }
}
