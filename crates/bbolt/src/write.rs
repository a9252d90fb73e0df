//! Writing a fresh, compact bbolt file in one pass (a bulk load), as `bbolt compact` and etcd's
//! defrag effectively do: no page is ever rewritten, so there is no free-page bookkeeping.
//!
//! Layout: pages 0 and 1 are metas (txid 2 in page 0, txid 1 in page 1, same tree); data pages
//! follow from page 2 in the order they fill up: each bucket's leaves, then its branch levels;
//! the root bucket last. The freelist is "not persisted", as etcd keeps it. Leaves are packed
//! full; an entry larger than a page gets overflow pages. A bucket that fits in a quarter page
//! is stored inline in its parent, as bbolt does.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::meta::{FREELIST_NOT_PERSISTED, MAGIC, VERSION, fnv1a};
use crate::page::{BUCKET_LEAF_FLAG, PAGE_HEADER_SIZE};

const ELEMENT_SIZE: usize = 16;
/// A leaf grows past one page only for large values, and never past this.
const MAX_LEAF_PAGES: usize = 16;
/// bbolt panics on pages with 0xFFFF or more elements.
const MAX_ELEMENTS: usize = 0xFFFE;
const BRANCH_FLAG: u16 = 0x01;
const LEAF_FLAG: u16 = 0x02;
const META_FLAG: u16 = 0x04;

/// What went wrong while writing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The output could not be written.
    #[error("cannot write the bbolt file: {0}")]
    Io(#[from] std::io::Error),
    /// Keys were not strictly ascending, or empty, within a bucket.
    #[error("keys must be non-empty and strictly ascending within a bucket")]
    KeyOrder,
    /// A key or value is larger than bbolt allows.
    #[error("a key of {key} bytes or a value of {value} bytes exceeds bbolt's limits")]
    TooLarge { key: usize, value: usize },
}

/// Pages go to the file in writes of about this size: one `pwrite` per page costs more than
/// the restore's whole copying.
const WRITE_BUFFER: usize = 4 << 20;

/// Writes pages to a file at their offsets.
#[derive(Debug)]
pub struct BulkWriter<'f> {
    file: &'f File,
    page_size: usize,
    next_page: u64,
    /// Consecutive pages not yet written, starting at page `buffered_from`.
    buffer: Vec<u8>,
    buffered_from: u64,
}

/// A bucket as its parent stores it: a root page, or the whole bucket inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketRoot {
    Page(u64),
    Inline(Vec<u8>),
}

impl BucketRoot {
    /// The value under which the parent stores this bucket (16-byte header + inline page).
    pub fn into_value(self) -> Vec<u8> {
        match self {
            BucketRoot::Page(root) => [root.to_le_bytes(), 0u64.to_le_bytes()].concat(),
            BucketRoot::Inline(page) => [vec![0u8; 16], page].concat(),
        }
    }
}

/// The entries of one bucket, added in key order.
#[derive(Debug)]
pub struct BucketWriter {
    /// (flags, key length, value length) of each entry of the leaf being filled.
    pending: Vec<(u32, u32, u32)>,
    /// Their keys and values, back to back, as the leaf will hold them (no allocation per entry).
    pending_bytes: Vec<u8>,
    pending_size: usize,
    /// (first key, page) of every leaf written so far.
    leaves: Vec<(Vec<u8>, u64)>,
    has_sub_buckets: bool,
    /// The last key added (reused, not reallocated); `None` before the first.
    last_key: Option<Vec<u8>>,
}

fn node_size(entries: usize, payload: usize) -> usize {
    PAGE_HEADER_SIZE + entries * ELEMENT_SIZE + payload
}

impl<'f> BulkWriter<'f> {
    /// Starts writing into `file` (which should be empty) with pages of `page_size`.
    pub fn new(file: &'f File, page_size: usize) -> Self {
        Self {
            file,
            page_size,
            next_page: 2,
            buffer: Vec::new(),
            buffered_from: 2,
        }
    }

    /// A bucket to fill.
    pub fn bucket(&self) -> BucketWriter {
        BucketWriter {
            pending: Vec::new(),
            pending_bytes: Vec::new(),
            pending_size: 0,
            leaves: Vec::new(),
            has_sub_buckets: false,
            last_key: None,
        }
    }

    /// Adds `key → value` to `bucket`; `is_bucket` marks a nested bucket's value
    /// ([`BucketRoot::into_value`]).
    pub fn put(
        &mut self,
        bucket: &mut BucketWriter,
        key: &[u8],
        value: &[u8],
        is_bucket: bool,
    ) -> Result<(), WriteError> {
        if key.is_empty() || bucket.last_key.as_deref().is_some_and(|last| last >= key) {
            return Err(WriteError::KeyOrder);
        }
        if key.len() > 32768 || value.len() > (1 << 31) - 2 {
            return Err(WriteError::TooLarge {
                key: key.len(),
                value: value.len(),
            });
        }
        let entry = ELEMENT_SIZE + key.len() + value.len();
        if !bucket.pending.is_empty() && !self.joins_leaf(bucket.pending_size, entry, bucket.pending.len()) {
            self.flush_leaf(bucket)?;
        }
        bucket.has_sub_buckets |= is_bucket;
        let flags = if is_bucket { BUCKET_LEAF_FLAG } else { 0 };
        // Both lengths were bounded above.
        bucket.pending.push((flags, key.len() as u32, value.len() as u32));
        bucket.pending_bytes.extend_from_slice(key);
        bucket.pending_bytes.extend_from_slice(value);
        bucket.pending_size += entry;
        let last = bucket.last_key.get_or_insert_with(Vec::new);
        last.clear();
        last.extend_from_slice(key);
        Ok(())
    }

    /// Whether an entry of `entry` bytes goes into the leaf being filled rather than a new one:
    /// when it fits in the pages the leaf takes anyway, or when it is large and adding it costs
    /// fewer new pages than a leaf of its own (values over a page otherwise waste most of their
    /// last page each, as bbolt's own splits avoid by keeping two entries per node).
    fn joins_leaf(&self, pending_size: usize, entry: usize, entries: usize) -> bool {
        let pages = |bytes: usize| (PAGE_HEADER_SIZE + bytes).div_ceil(self.page_size);
        let (now, joined, alone) = (pages(pending_size), pages(pending_size + entry), pages(entry));
        joined == now || (joined - now < alone && joined <= MAX_LEAF_PAGES && entries < MAX_ELEMENTS)
    }

    fn flush_leaf(&mut self, bucket: &mut BucketWriter) -> Result<(), WriteError> {
        let Some(&(_, first_len, _)) = bucket.pending.first() else {
            return Ok(());
        };
        let first = bucket.pending_bytes[..first_len as usize].to_vec();
        let id = self.next_page;
        let page = pending_leaf(id, &bucket.pending, &bucket.pending_bytes);
        bucket.pending.clear();
        bucket.pending_bytes.clear();
        bucket.pending_size = 0;
        self.write_node(id, page)?;
        bucket.leaves.push((first, id));
        Ok(())
    }

    /// Writes a node at `id` (always the next page), taking as many pages as it needs.
    fn write_node(&mut self, id: u64, mut page: Vec<u8>) -> Result<(), WriteError> {
        let pages = page.len().div_ceil(self.page_size).max(1);
        page.resize(pages * self.page_size, 0);
        page[12..16].copy_from_slice(&((pages - 1) as u32).to_le_bytes());
        let buffered_pages = (self.buffer.len() / self.page_size) as u64;
        if self.buffered_from + buffered_pages != id {
            self.flush_buffer()?;
        }
        if self.buffer.is_empty() {
            self.buffered_from = id;
        }
        self.buffer.extend_from_slice(&page);
        self.next_page = id + pages as u64;
        if self.buffer.len() >= WRITE_BUFFER {
            self.flush_buffer()?;
        }
        Ok(())
    }

    fn flush_buffer(&mut self) -> Result<(), WriteError> {
        if !self.buffer.is_empty() {
            self.file
                .write_all_at(&self.buffer, self.buffered_from * self.page_size as u64)?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Ends a bucket: inline if small and without sub-buckets (bbolt's rule), else a tree.
    pub fn finish_bucket(&mut self, bucket: BucketWriter) -> Result<BucketRoot, WriteError> {
        let inline_size = PAGE_HEADER_SIZE + bucket.pending_size;
        if bucket.leaves.is_empty() && !bucket.has_sub_buckets && inline_size <= self.page_size / 4 {
            return Ok(BucketRoot::Inline(pending_leaf(
                0,
                &bucket.pending,
                &bucket.pending_bytes,
            )));
        }
        Ok(BucketRoot::Page(self.finish_tree(bucket)?))
    }

    /// Writes the last leaf and the branch levels above the leaves; returns the root page.
    fn finish_tree(&mut self, mut bucket: BucketWriter) -> Result<u64, WriteError> {
        self.flush_leaf(&mut bucket)?;
        if bucket.leaves.is_empty() {
            let id = self.next_page;
            self.write_node(id, leaf_page::<&[u8], &[u8]>(id, &[]))?;
            return Ok(id);
        }
        let mut level = bucket.leaves;
        while level.len() > 1 {
            // As many branch pages as the separators need, children spread evenly over them:
            // bbolt's rebalancing asserts that every branch has at least two children.
            let bytes: usize = level.iter().map(|(key, _)| ELEMENT_SIZE + key.len()).sum();
            let groups = bytes
                .div_ceil(self.page_size - PAGE_HEADER_SIZE)
                .clamp(1, level.len() / 2);
            let mut parents = Vec::with_capacity(groups);
            let mut start = 0;
            for group in 0..groups {
                let end = start + level.len() / groups + usize::from(group < level.len() % groups);
                let id = self.next_page;
                self.write_node(id, branch_page(id, &level[start..end]))?;
                parents.push((level[start].0.clone(), id));
                start = end;
            }
            level = parents;
        }
        Ok(level[0].1)
    }

    /// Writes the root bucket from `buckets` (name → root, names ascending) and the metas.
    /// Returns the file's size.
    pub fn finish(mut self, buckets: Vec<(Vec<u8>, BucketRoot)>) -> Result<u64, WriteError> {
        let mut root = self.bucket();
        for (name, bucket) in buckets {
            self.put(&mut root, &name, &bucket.into_value(), true)?;
        }
        // The root bucket is a tree of its own, never inline.
        let root_page = self.finish_tree(root)?;
        self.flush_buffer()?;
        let hwm = self.next_page;
        for (page, txid) in [(0u64, 2u64), (1, 1)] {
            let meta = meta_page(page, self.page_size, root_page, FREELIST_NOT_PERSISTED, hwm, txid);
            self.file.write_all_at(&meta, page * self.page_size as u64)?;
        }
        let size = hwm * self.page_size as u64;
        self.file.set_len(size)?;
        Ok(size)
    }
}

fn header(page: &mut [u8], id: u64, flags: u16, count: usize) {
    page[..8].copy_from_slice(&id.to_le_bytes());
    page[8..10].copy_from_slice(&flags.to_le_bytes());
    page[10..12].copy_from_slice(&(count as u16).to_le_bytes());
}

/// A leaf page image (not padded to the page size) holding `entries` (flags, key, value).
pub(crate) fn leaf_page<K: AsRef<[u8]>, V: AsRef<[u8]>>(id: u64, entries: &[(u32, K, V)]) -> Vec<u8> {
    let mut lengths = Vec::with_capacity(entries.len());
    let mut bytes = Vec::new();
    for (flags, key, value) in entries {
        let (key, value) = (key.as_ref(), value.as_ref());
        lengths.push((*flags, key.len() as u32, value.len() as u32));
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
    }
    pending_leaf(id, &lengths, &bytes)
}

/// A leaf page image of the entries a [`BucketWriter`] gathered: their element headers, then
/// their keys and values as gathered.
fn pending_leaf(id: u64, entries: &[(u32, u32, u32)], bytes: &[u8]) -> Vec<u8> {
    let elements_end = node_size(entries.len(), 0);
    let mut page = vec![0u8; elements_end];
    page.reserve(bytes.len());
    header(&mut page, id, LEAF_FLAG, entries.len());
    let mut data = elements_end;
    for (i, &(flags, key_len, value_len)) in entries.iter().enumerate() {
        let element = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
        let fields = [flags, (data - element) as u32, key_len, value_len];
        for (j, field) in fields.iter().enumerate() {
            page[element + 4 * j..element + 4 * j + 4].copy_from_slice(&field.to_le_bytes());
        }
        data += key_len as usize + value_len as usize;
    }
    page.extend_from_slice(bytes);
    page
}

/// A branch page image (not padded) pointing at `children` (first key, page).
pub(crate) fn branch_page<K: AsRef<[u8]>>(id: u64, children: &[(K, u64)]) -> Vec<u8> {
    let mut page = vec![0u8; node_size(children.len(), 0)];
    header(&mut page, id, BRANCH_FLAG, children.len());
    for (i, (key, child)) in children.iter().enumerate() {
        let key = key.as_ref();
        let element = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
        let pos = (page.len() - element) as u32;
        page[element..element + 4].copy_from_slice(&pos.to_le_bytes());
        page[element + 4..element + 8].copy_from_slice(&(key.len() as u32).to_le_bytes());
        page[element + 8..element + 16].copy_from_slice(&child.to_le_bytes());
        page.extend_from_slice(key);
    }
    page
}

/// A meta page with its checksum.
pub(crate) fn meta_page(id: u64, page_size: usize, root: u64, freelist: u64, hwm: u64, txid: u64) -> Vec<u8> {
    let mut page = vec![0u8; page_size];
    header(&mut page, id, META_FLAG, 0);
    let fields: [u64; 7] = [
        u64::from(MAGIC) | (u64::from(VERSION) << 32),
        page_size as u64,
        root,
        0,
        freelist,
        hwm,
        txid,
    ];
    for (i, field) in fields.iter().enumerate() {
        page[16 + 8 * i..24 + 8 * i].copy_from_slice(&field.to_le_bytes());
    }
    let checksum = fnv1a(&page[16..72]);
    page[72..80].copy_from_slice(&checksum.to_le_bytes());
    page
}
