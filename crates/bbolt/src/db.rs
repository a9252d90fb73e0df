//! Opening a bbolt image: page size discovery, meta choice, bounds-checked page access.

use std::borrow::Cow;

use crate::bytes::u64_at;
use crate::meta::{self, Meta, MetaProblem};
use crate::page::Page;
use crate::source::Source;
use crate::{Error, Result};

/// A bbolt image with a validated current meta, read from a [`Source`] (bytes in memory, a
/// mapped file, or a file read page by page).
#[derive(Debug)]
pub struct Db<'s, S: Source + ?Sized> {
    source: &'s S,
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
/// Bytes of a meta page that hold the header and the meta struct.
const META_BYTES: usize = 80;

fn meta_at<S: Source + ?Sized>(source: &S, offset: u64) -> std::result::Result<Meta, MetaProblem> {
    source
        .read_at(offset, META_BYTES)
        .ok_or(MetaProblem::TooShort)
        .and_then(|page| meta::parse(&page))
}

fn txid_at<S: Source + ?Sized>(source: &S, offset: u64) -> u64 {
    source
        .read_at(offset, META_BYTES)
        .and_then(|page| u64_at(&page, meta::META_OFFSET + 48))
        .unwrap_or(0)
}

impl<'s, S: Source + ?Sized> Db<'s, S> {
    /// Validates the metas of `source` and picks the current one, as bbolt does when opening.
    pub fn open(source: &'s S) -> Result<Self> {
        let meta0 = meta_at(source, 0);
        let page_size = match meta0 {
            Ok(m) => m.page_size as usize,
            Err(_) => probe_page_size(source).unwrap_or(DEFAULT_PAGE_SIZE),
        } as u64;
        let meta1 = meta_at(source, page_size);
        // The meta with the larger txid wins if valid; txids are read even from invalid metas.
        let candidates = if txid_at(source, page_size) > txid_at(source, 0) {
            [(1, meta1), (0, meta0)]
        } else {
            [(0, meta0), (1, meta1)]
        };
        let chosen = candidates.iter().find_map(|(page, m)| m.ok().map(|m| (*page, m)));
        let Some((meta_page, meta)) = chosen else {
            return Err(no_meta_error(source.len(), meta0.err(), meta1.err()));
        };
        let other_meta_problem = candidates
            .iter()
            .find(|(page, _)| *page != meta_page)
            .and_then(|(page, m)| m.err().map(|problem| format!("meta page {page}: {problem}")));
        let needed = meta.hwm.checked_mul(u64::from(meta.page_size));
        if needed.is_none_or(|needed| needed > source.len()) || meta.hwm < 2 {
            return Err(Error::Truncated {
                len: source.len(),
                pages: meta.hwm,
                page_size: meta.page_size,
            });
        }
        Ok(Self {
            source,
            meta,
            meta_page,
            other_meta_problem,
        })
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
    pub(crate) fn page(&self, id: u64) -> std::result::Result<Page<'s>, PageFault> {
        let page_size = self.page_size();
        if id >= self.meta.hwm {
            return Err(PageFault::OutOfBounds);
        }
        let start = id * page_size as u64;
        let first = self
            .source
            .read_at(start, page_size)
            .ok_or(PageFault::OutOfBounds)?;
        let mut header = Page::parse_header(first).ok_or(PageFault::OutOfBounds)?;
        if header.id != id {
            return Err(PageFault::IdMismatch(header.id));
        }
        let pages = u64::from(header.overflow) + 1;
        if pages == 1 {
            return Ok(header);
        }
        if id + pages > self.meta.hwm {
            return Err(PageFault::OutOfBounds);
        }
        let first = std::mem::take(&mut header.span);
        let span: Cow<'s, [u8]> = self
            .source
            .read_on(first, start, (pages as usize) * page_size)
            .ok_or(PageFault::OutOfBounds)?;
        Ok(Page { span, ..header })
    }
}

/// bbolt 1.4's discovery when meta 0 is unreadable: look for meta 1 at 1 KiB .. 16 MiB.
fn probe_page_size<S: Source + ?Sized>(source: &S) -> Option<usize> {
    (0..15)
        .map(|i| 1024usize << i)
        .take_while(|&offset| offset as u64 + 1024 <= source.len())
        .find(|&offset| meta_at(source, offset as u64).is_ok_and(|m| m.page_size as usize == offset))
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
