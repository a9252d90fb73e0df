//! One depth-first pass over every bucket, in key order, that checks the structure on the way.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::Db;
use crate::bytes::u64_at;
use crate::check::{Finding, FindingKind};
use crate::db::PageFault;
use crate::page::{BUCKET_LEAF_FLAG, PAGE_HEADER_SIZE, Page, PageKind};
use crate::source::Source;

/// Deeper paths than this from the root, counting every branch level and every nested bucket
/// on the way (one total, as redb bounds its B-tree depth), are reported, not followed: real
/// files are far shallower, so only a damaged or hostile file gets here. It also bounds the
/// walk's recursion, which must fit a 2 MiB thread stack (tokio's workers').
const MAX_DEPTH: usize = 64;
/// A nested bucket's value starts with its root page and sequence.
const BUCKET_HEADER_SIZE: usize = 16;

/// One key/value pair met by [`Db::walk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// 0 for the top-level buckets (entries of the root bucket), 1 for their entries, ...
    pub depth: usize,
    pub key: &'a [u8],
    /// The value; for a nested bucket its raw bucket header (and inline page).
    pub value: &'a [u8],
    /// This entry is a nested bucket; its own entries follow at `depth + 1`.
    pub is_bucket: bool,
}

/// A set of page ids below the high-water mark.
#[derive(Debug, Clone)]
pub(crate) struct PageSet(Vec<u64>);

impl PageSet {
    pub fn new(pages: u64) -> Self {
        Self(vec![0; pages.div_ceil(64) as usize])
    }

    /// Inserts `page`; false if it was there already (or is out of range).
    pub fn insert(&mut self, page: u64) -> bool {
        let Some(word) = self.0.get_mut((page / 64) as usize) else {
            return false;
        };
        let bit = 1u64 << (page % 64);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }

    pub fn contains(&self, page: u64) -> bool {
        self.0
            .get((page / 64) as usize)
            .is_some_and(|word| word & (1u64 << (page % 64)) != 0)
    }
}

pub(crate) struct Walker<'d, 's, S: Source + ?Sized, F> {
    pub db: &'d Db<'s, S>,
    pub reachable: PageSet,
    pub freed: Option<&'d PageSet>,
    pub findings: Vec<Finding>,
    pub on_entry: F,
}

/// Key range a page's keys must fall in: `[lower, upper)`, from the parent's separators.
#[derive(Clone, Copy)]
struct Bounds<'a> {
    lower: Option<&'a [u8]>,
    upper: Option<&'a [u8]>,
}

impl<'d, 's, S: Source + ?Sized, F: FnMut(Entry<'_>)> Walker<'d, 's, S, F> {
    pub fn new(db: &'d Db<'s, S>, on_entry: F) -> Self {
        let mut reachable = PageSet::new(db.meta().hwm);
        reachable.insert(0);
        reachable.insert(1);
        Self {
            db,
            reachable,
            freed: None,
            findings: Vec::new(),
            on_entry,
        }
    }

    fn report(&mut self, page: u64, kind: FindingKind) {
        self.findings.push(Finding { page, kind });
    }

    pub fn walk_root(&mut self) {
        let root = self.db.meta().root;
        self.walk_tree(
            root,
            0,
            1,
            Bounds {
                lower: None,
                upper: None,
            },
        );
    }

    /// `path_depth`: pages and buckets from the root to this page, this one included.
    fn walk_tree(&mut self, id: u64, bucket_depth: usize, path_depth: usize, bounds: Bounds<'_>) {
        if path_depth > MAX_DEPTH {
            return self.report(id, FindingKind::TooDeep);
        }
        let page = match self.db.page(id) {
            Ok(page) => page,
            Err(PageFault::OutOfBounds) => {
                return self.report(
                    id,
                    FindingKind::OutOfBounds {
                        hwm: self.db.meta().hwm,
                    },
                );
            }
            Err(PageFault::IdMismatch(found)) => return self.report(id, FindingKind::IdMismatch { found }),
        };
        let mut first_visit = true;
        for pgid in id..=id + u64::from(page.overflow) {
            if !self.reachable.insert(pgid) {
                self.report(pgid, FindingKind::MultipleReferences);
                first_visit &= pgid != id;
            }
            if self.freed.is_some_and(|freed| freed.contains(pgid)) {
                self.report(pgid, FindingKind::ReachableFreed);
            }
        }
        if !first_visit {
            // Reached twice: following it again could loop forever.
            return;
        }
        match page.kind() {
            Some(PageKind::Branch) => self.walk_branch(&page, bucket_depth, path_depth, bounds),
            Some(PageKind::Leaf) => self.walk_leaf(&page, id, bucket_depth, path_depth, bounds),
            _ => self.report(id, FindingKind::InvalidType { flags: page.flags }),
        }
    }

    fn walk_branch(&mut self, page: &Page<'_>, bucket_depth: usize, path_depth: usize, bounds: Bounds<'_>) {
        if page.count == 0 {
            return self.report(page.id, FindingKind::EmptyBranch);
        }
        let mut children = Vec::with_capacity(usize::from(page.count));
        for index in 0..usize::from(page.count) {
            match page.branch(index) {
                Ok((key, child)) => children.push((index, key, child)),
                Err(_) => self.report(page.id, FindingKind::ElementOutOfPage { index }),
            }
        }
        let keys: Vec<&[u8]> = children.iter().map(|(_, key, _)| *key).collect();
        self.check_keys(page.id, &keys, bounds);
        for (position, &(_, key, child)) in children.iter().enumerate() {
            if child == page.id {
                self.report(page.id, FindingKind::SelfReference);
                continue;
            }
            let upper = children
                .get(position + 1)
                .map(|(_, next, _)| *next)
                .or(bounds.upper);
            self.walk_tree(
                child,
                bucket_depth,
                path_depth + 1,
                Bounds {
                    lower: Some(key),
                    upper,
                },
            );
        }
    }

    fn walk_leaf(
        &mut self,
        page: &Page<'_>,
        at: u64,
        bucket_depth: usize,
        path_depth: usize,
        bounds: Bounds<'_>,
    ) {
        let mut keys = Vec::with_capacity(usize::from(page.count));
        let mut entries = Vec::with_capacity(usize::from(page.count));
        for index in 0..usize::from(page.count) {
            match page.leaf(index) {
                Ok((flags, key, value)) => {
                    keys.push(key);
                    entries.push((index, flags, key, value));
                }
                Err(_) => self.report(at, FindingKind::ElementOutOfPage { index }),
            }
        }
        self.check_keys(at, &keys, bounds);
        for (index, flags, key, value) in entries {
            let is_bucket = flags & BUCKET_LEAF_FLAG != 0;
            (self.on_entry)(Entry {
                depth: bucket_depth,
                key,
                value,
                is_bucket,
            });
            if is_bucket {
                self.walk_bucket(at, index, value, bucket_depth + 1, path_depth + 1);
            }
        }
    }

    /// A nested bucket: a root page, or (root 0) an inline leaf page inside the value.
    fn walk_bucket(&mut self, at: u64, index: usize, value: &[u8], depth: usize, path_depth: usize) {
        if path_depth > MAX_DEPTH {
            return self.report(at, FindingKind::TooDeep);
        }
        let Some(root) = u64_at(value, 0).filter(|_| value.len() >= BUCKET_HEADER_SIZE) else {
            return self.report(at, FindingKind::BadBucketHeader { index });
        };
        let unbounded = Bounds {
            lower: None,
            upper: None,
        };
        if root != 0 {
            return self.walk_tree(root, depth, path_depth, unbounded);
        }
        let inline = &value[BUCKET_HEADER_SIZE..];
        match Page::parse_header(Cow::Borrowed(inline)) {
            Some(page) if page.kind() == Some(PageKind::Leaf) && inline.len() >= PAGE_HEADER_SIZE => {
                self.walk_leaf(&page, at, depth, path_depth, unbounded);
            }
            _ => self.report(at, FindingKind::BadInlineBucket { index }),
        }
    }

    /// Keys strictly ascending, the first at or above the parent's separator, all below the
    /// next separator; zero-length keys are invalid.
    fn check_keys(&mut self, page: u64, keys: &[&[u8]], bounds: Bounds<'_>) {
        for (index, key) in keys.iter().enumerate() {
            if key.is_empty() {
                self.report(page, FindingKind::EmptyKey { index });
            }
            if index > 0 && keys[index - 1].cmp(key) != Ordering::Less {
                self.report(page, FindingKind::KeyOrder { index });
            }
        }
        if let (Some(lower), Some(first)) = (bounds.lower, keys.first())
            && *first < lower
        {
            self.report(page, FindingKind::BelowParentKey);
        }
        if let (Some(upper), Some(last)) = (bounds.upper, keys.last())
            && *last >= upper
        {
            self.report(page, FindingKind::AboveNextParentKey);
        }
    }
}

impl<S: Source + ?Sized> Db<'_, S> {
    /// Visits every entry of every bucket in key order, depth first (a nested bucket's entries
    /// right after its own entry), and returns every structural finding met on the way.
    /// Damaged subtrees are reported and skipped, never followed twice.
    pub fn walk(&self, on_entry: impl FnMut(Entry<'_>)) -> Vec<Finding> {
        let mut walker = Walker::new(self, on_entry);
        walker.walk_root();
        walker.findings
    }
}
