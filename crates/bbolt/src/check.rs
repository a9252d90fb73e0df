//! The consistency check: bbolt's `Tx.Check`, reporting every finding.

use crate::Db;
use crate::bytes::u64_at;
use crate::meta::FREELIST_NOT_PERSISTED;
use crate::page::{PAGE_HEADER_SIZE, PageKind};
use crate::source::Source;
use crate::walk::{PageSet, Walker};

/// One problem, located at a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub page: u64,
    pub kind: FindingKind,
}

/// What is wrong (the first eight as bbolt's `Tx.Check` words them).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FindingKind {
    OutOfBounds { hwm: u64 },
    MultipleReferences,
    ReachableFreed,
    InvalidType { flags: u16 },
    AlreadyFreed,
    UnreachableUnfreed,
    KeyOrder { index: usize },
    BelowParentKey,
    AboveNextParentKey,
    IdMismatch { found: u64 },
    ElementOutOfPage { index: usize },
    EmptyKey { index: usize },
    EmptyBranch,
    SelfReference,
    BadBucketHeader { index: usize },
    BadInlineBucket { index: usize },
    TooDeep,
    BadFreelist,
    RootOutOfBounds,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "page {}: ", self.page)?;
        match &self.kind {
            FindingKind::OutOfBounds { hwm } => write!(f, "out of bounds: {hwm} pages in use"),
            FindingKind::MultipleReferences => write!(f, "multiple references"),
            FindingKind::ReachableFreed => write!(f, "reachable freed"),
            FindingKind::InvalidType { flags } => write!(f, "invalid type: {flags:#x}"),
            FindingKind::AlreadyFreed => write!(f, "already freed"),
            FindingKind::UnreachableUnfreed => write!(f, "unreachable unfreed"),
            FindingKind::KeyOrder { index } => write!(f, "key {index} is not greater than the previous key"),
            FindingKind::BelowParentKey => write!(f, "first key is below the parent's separator key"),
            FindingKind::AboveNextParentKey => {
                write!(f, "last key is not below the parent's next separator key")
            }
            FindingKind::IdMismatch { found } => write!(f, "header names page {found}"),
            FindingKind::ElementOutOfPage { index } => write!(f, "element {index} lies outside its page"),
            FindingKind::EmptyKey { index } => write!(f, "element {index} has an empty key"),
            FindingKind::EmptyBranch => write!(f, "branch page without elements"),
            FindingKind::SelfReference => write!(f, "branch page points to itself"),
            FindingKind::BadBucketHeader { index } => {
                write!(f, "element {index}: bucket value shorter than its header")
            }
            FindingKind::BadInlineBucket { index } => {
                write!(f, "element {index}: inline bucket is not a leaf page")
            }
            FindingKind::TooDeep => write!(f, "tree or bucket nesting deeper than 64 levels"),
            FindingKind::BadFreelist => write!(f, "freelist page unreadable"),
            FindingKind::RootOutOfBounds => write!(f, "root bucket page is not below the high-water mark"),
        }
    }
}

impl<S: Source + ?Sized> Db<'_, S> {
    /// bbolt's `Tx.Check`: the tree walk plus the freelist rules, every finding reported.
    /// `on_entry` sees every entry as in [`Db::walk`], so a caller can compute over the data
    /// in the same pass.
    pub fn check(&self, on_entry: impl FnMut(crate::Entry<'_>)) -> Vec<Finding> {
        let meta = self.meta();
        let mut findings = Vec::new();
        if meta.root >= meta.hwm {
            findings.push(Finding {
                page: meta.root,
                kind: FindingKind::RootOutOfBounds,
            });
        }
        let mut freed = PageSet::new(meta.hwm);
        let mut freelist_pages = Vec::new();
        let persisted = meta.freelist != FREELIST_NOT_PERSISTED;
        if persisted {
            match self.freelist_ids(meta.freelist) {
                Some((ids, overflow)) => {
                    for id in ids {
                        if id >= meta.hwm {
                            findings.push(Finding {
                                page: id,
                                kind: FindingKind::OutOfBounds { hwm: meta.hwm },
                            });
                        } else if !freed.insert(id) {
                            findings.push(Finding {
                                page: id,
                                kind: FindingKind::AlreadyFreed,
                            });
                        }
                    }
                    freelist_pages.extend(meta.freelist..=meta.freelist + overflow);
                }
                None => findings.push(Finding {
                    page: meta.freelist,
                    kind: FindingKind::BadFreelist,
                }),
            }
        }
        let mut walker = Walker::new(self, on_entry);
        for page in freelist_pages {
            walker.reachable.insert(page);
        }
        walker.freed = Some(&freed);
        walker.walk_root();
        findings.append(&mut walker.findings);
        // Without a persisted freelist, bbolt derives the free set as the complement of what
        // is reachable, so this rule can only fire when a freelist is stored.
        if persisted {
            for page in 0..meta.hwm {
                if !walker.reachable.contains(page) && !freed.contains(page) {
                    findings.push(Finding {
                        page,
                        kind: FindingKind::UnreachableUnfreed,
                    });
                }
            }
        }
        findings
    }

    /// The ids a freelist page lists, and its overflow count.
    fn freelist_ids(&self, id: u64) -> Option<(Vec<u64>, u64)> {
        let page = self.page(id).ok()?;
        if page.kind() != Some(PageKind::Freelist) {
            return None;
        }
        let (count, start) = match page.count {
            0xFFFF => (u64_at(&page.span, PAGE_HEADER_SIZE)?, PAGE_HEADER_SIZE + 8),
            n => (u64::from(n), PAGE_HEADER_SIZE),
        };
        let len = usize::try_from(count).ok()?.checked_mul(8)?;
        let ids = page.span.get(start..start.checked_add(len)?)?;
        Some((
            ids.chunks_exact(8).filter_map(|c| u64_at(c, 0)).collect(),
            u64::from(page.overflow),
        ))
    }
}
