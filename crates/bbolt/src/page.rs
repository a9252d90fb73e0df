//! Pages: the 16-byte header, and branch and leaf elements.
//!
//! ```text
//! header   0 u64 id | 8 u16 flags | 10 u16 count | 12 u32 overflow   (data from offset 16)
//! branch   element i at 16 + 16*i: u32 pos | u32 ksize | u64 child       key at elem + pos
//! leaf     element i at 16 + 16*i: u32 flags | u32 pos | u32 ksize | u32 vsize
//!          key at elem + pos, value right after the key; flags 0x01 = nested bucket
//! ```
//! A page with `overflow` n spans n + 1 contiguous pages; only the first has a header.

use std::borrow::Cow;

use crate::bytes::{range, u16_at, u32_at, u64_at};

/// Size of the page header.
pub const PAGE_HEADER_SIZE: usize = 16;
const ELEMENT_SIZE: usize = 16;
/// Leaf element flag: the entry is a nested bucket.
pub(crate) const BUCKET_LEAF_FLAG: u32 = 0x01;

/// What a page holds, from its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    Branch,
    Leaf,
    Meta,
    Freelist,
}

impl PageKind {
    pub(crate) fn from_flags(flags: u16) -> Option<Self> {
        match flags {
            0x01 => Some(PageKind::Branch),
            0x02 => Some(PageKind::Leaf),
            0x04 => Some(PageKind::Meta),
            0x10 => Some(PageKind::Freelist),
            _ => None,
        }
    }
}

/// A page's header and the bytes of its whole span (header included).
#[derive(Debug, Clone)]
pub(crate) struct Page<'a> {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
    pub span: Cow<'a, [u8]>,
}

/// Why an element cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ElementOutOfPage {
    pub index: usize,
}

impl<'a> Page<'a> {
    /// Reads the header at the start of `span`; `None` if `span` is shorter than a header.
    pub fn parse_header(span: Cow<'a, [u8]>) -> Option<Self> {
        Some(Self {
            id: u64_at(&span, 0)?,
            flags: u16_at(&span, 8)?,
            count: u16_at(&span, 10)?,
            overflow: u32_at(&span, 12)?,
            span,
        })
    }

    pub fn kind(&self) -> Option<PageKind> {
        PageKind::from_flags(self.flags)
    }

    fn element(&self, index: usize) -> Result<(usize, &[u8]), ElementOutOfPage> {
        let at = PAGE_HEADER_SIZE + ELEMENT_SIZE * index;
        range(&self.span, at, ELEMENT_SIZE)
            .map(|e| (at, e))
            .ok_or(ElementOutOfPage { index })
    }

    /// Branch element `index`: its key and child page.
    pub fn branch(&self, index: usize) -> Result<(&[u8], u64), ElementOutOfPage> {
        let bad = ElementOutOfPage { index };
        let (at, e) = self.element(index)?;
        let (pos, ksize, child) = (
            u32_at(e, 0).ok_or(bad)?,
            u32_at(e, 4).ok_or(bad)?,
            u64_at(e, 8).ok_or(bad)?,
        );
        let key = range(&self.span, at + pos as usize, ksize as usize).ok_or(bad)?;
        Ok((key, child))
    }

    /// Leaf element `index`: flags, key and value.
    pub fn leaf(&self, index: usize) -> Result<(u32, &[u8], &[u8]), ElementOutOfPage> {
        let bad = ElementOutOfPage { index };
        let (at, e) = self.element(index)?;
        let flags = u32_at(e, 0).ok_or(bad)?;
        let (pos, ksize, vsize) = (
            u32_at(e, 4).ok_or(bad)?,
            u32_at(e, 8).ok_or(bad)?,
            u32_at(e, 12).ok_or(bad)?,
        );
        let start = at + pos as usize;
        let key = range(&self.span, start, ksize as usize).ok_or(bad)?;
        let value = range(&self.span, start + ksize as usize, vsize as usize).ok_or(bad)?;
        Ok((flags, key, value))
    }
}
