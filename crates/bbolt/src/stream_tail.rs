//! The last key of a top-level bucket, found while a bbolt image streams past in page order (as
//! etcd sends a snapshot), without keeping the image.
//!
//! Every page-sized block is read as a page of its own position, since a freed page keeps the
//! header (and overflow count) of what it once held while its successors are reused. Only a
//! sketch is kept per page: a branch's children, a leaf's last key and its nested-bucket entries.
//! Of a page's span only the element headers and the bytes of those keys and values are held,
//! and only until the span has passed. The sketches go to a file (or memory) as they are made;
//! at the end the current meta's tree is followed through them, one scan per level.

mod sketches;

use std::collections::HashSet;
use std::fs::File;

use crate::bytes::{u32_at, u64_at};
use crate::meta::{self, Meta};
use crate::page::{BUCKET_LEAF_FLAG, PAGE_HEADER_SIZE, Page, PageKind};
use sketches::{Sketch, Sketches};

/// Bytes all spans in flight may hold together (their element headers, and the keys and bucket
/// values being captured); a span that would go past it is not sketched (its page is then
/// missing if the tree leads there).
const MAX_PENDING: usize = 64 << 20;
/// Bytes of keys and bucket values one span may capture, with the captures' own size (bbolt's
/// keys are at most 32 KiB).
const CAPTURE_BUDGET: usize = 1 << 20;
/// Tree depth followed at the end, as in the walk.
const MAX_DEPTH: usize = 64;
/// Largest nested-bucket value kept (its header and inline page).
const MAX_BUCKET_VALUE: usize = 64 << 10;
/// Bytes needed to read page 0's meta.
const META_BYTES: usize = meta::META_OFFSET + 64;
/// Bytes of one branch or leaf element header.
const ELEMENT_SIZE: usize = 16;

/// Bytes of a span wanted for its sketch, filled in as the span streams past.
#[derive(Debug)]
struct Capture {
    start: usize,
    bytes: Vec<u8>,
    len: usize,
}

impl Capture {
    fn new(start: usize, len: usize) -> Self {
        Self {
            start,
            bytes: Vec::with_capacity(len),
            len,
        }
    }

    /// Takes what it wants of `bytes`, which sit at `offset` in the span.
    fn take(&mut self, offset: usize, bytes: &[u8]) {
        let from = self.start + self.bytes.len();
        let end = self.start + self.len;
        if from >= end || from < offset || from >= offset + bytes.len() {
            return;
        }
        let upto = end.min(offset + bytes.len());
        self.bytes.extend_from_slice(&bytes[from - offset..upto - offset]);
    }

    fn end(&self) -> usize {
        self.start + self.len
    }
}

/// What a leaf span still waits for once its element headers are read.
#[derive(Debug)]
struct LeafWants {
    /// `Err` when the last element lies outside the span.
    last_key: Result<Option<Capture>, ()>,
    buckets: Vec<(Capture, Capture)>,
}

impl LeafWants {
    fn captures(&mut self) -> impl Iterator<Item = &mut Capture> {
        let last = self.last_key.as_mut().ok().and_then(Option::as_mut);
        last.into_iter()
            .chain(self.buckets.iter_mut().flat_map(|(name, value)| [name, value]))
    }

    fn end(&self) -> usize {
        let last = self
            .last_key
            .as_ref()
            .ok()
            .and_then(Option::as_ref)
            .map_or(0, Capture::end);
        self.buckets
            .iter()
            .map(|(_, value)| value.end())
            .fold(last, usize::max)
    }
}

/// A branch or leaf page whose span is streaming past.
#[derive(Debug)]
struct Span {
    id: u64,
    leaf: bool,
    count: usize,
    len: usize,
    /// Bytes of the span passed so far.
    seen: usize,
    /// Every byte passed, until the element headers are complete.
    head: Vec<u8>,
    /// A leaf's keys and values still to capture, once its headers are read.
    wants: Option<LeafWants>,
    /// Length of the name of the bucket looked for: only nested buckets named so are captured.
    bucket_len: usize,
    /// Bytes counted against [`MAX_PENDING`].
    held: usize,
}

impl Span {
    fn headers_end(&self) -> usize {
        PAGE_HEADER_SIZE + ELEMENT_SIZE * self.count
    }

    /// Feeds the span's next block; its sketch once nothing more is wanted.
    fn feed(&mut self, block: &[u8]) -> Option<Sketch> {
        let block = &block[..block.len().min(self.len - self.seen)];
        let offset = self.seen;
        self.seen += block.len();
        match &mut self.wants {
            Some(wants) => wants.captures().for_each(|c| c.take(offset, block)),
            None => {
                self.head.extend_from_slice(block);
                if self.head.len() < self.headers_end() && self.seen < self.len {
                    return None;
                }
                if !self.leaf {
                    return Some(Sketch::Branch(self.children()));
                }
                let mut wants = self.leaf_wants();
                wants.captures().for_each(|c| c.take(0, &self.head));
                self.head = Vec::new();
                self.wants = Some(wants);
            }
        }
        let done = self
            .wants
            .as_ref()
            .is_some_and(|wants| self.seen >= wants.end() || self.seen == self.len);
        done.then(|| self.wants.take().map(leaf_sketch)).flatten()
    }

    /// A header's four u32 fields (the last two a branch's child).
    fn element(&self, index: usize) -> Option<&[u8]> {
        let at = PAGE_HEADER_SIZE + ELEMENT_SIZE * index;
        self.head.get(at..at + ELEMENT_SIZE)
    }

    /// The children whose element (and key) lie inside the span, up to the first that does not.
    fn children(&self) -> Vec<u64> {
        (0..self.count)
            .map_while(|index| {
                let element = self.element(index)?;
                let at = PAGE_HEADER_SIZE + ELEMENT_SIZE * index;
                let key_end = at + u32_at(element, 0)? as usize + u32_at(element, 4)? as usize;
                (key_end <= self.len).then(|| u64_at(element, 8)).flatten()
            })
            .collect()
    }

    /// Element `index`'s flags, and where its key and value lie, if inside the span.
    fn leaf_element(&self, index: usize) -> Option<(u32, usize, usize, usize)> {
        let element = self.element(index)?;
        let at = PAGE_HEADER_SIZE + ELEMENT_SIZE * index;
        let start = at + u32_at(element, 4)? as usize;
        let (key_len, value_len) = (u32_at(element, 8)? as usize, u32_at(element, 12)? as usize);
        (start + key_len + value_len <= self.len).then_some((u32_at(element, 0)?, start, key_len, value_len))
    }

    fn leaf_wants(&self) -> LeafWants {
        const CAPTURE_SIZE: usize = std::mem::size_of::<Capture>();
        let mut budget = CAPTURE_BUDGET;
        let last_key = match self.count.checked_sub(1) {
            None => Ok(None),
            Some(last) => match self.leaf_element(last) {
                Some((_, start, key_len, _)) if key_len <= budget => {
                    budget -= key_len;
                    Ok(Some(Capture::new(start, key_len)))
                }
                _ => Err(()),
            },
        };
        let buckets = (0..self.count)
            .map_while(|index| self.leaf_element(index))
            .filter(|&(flags, _, key_len, value_len)| {
                flags & BUCKET_LEAF_FLAG != 0 && key_len == self.bucket_len && value_len <= MAX_BUCKET_VALUE
            })
            .map_while(|(_, start, key_len, value_len)| {
                budget = budget.checked_sub(key_len + value_len + 2 * CAPTURE_SIZE)?;
                Some((
                    Capture::new(start, key_len),
                    Capture::new(start + key_len, value_len),
                ))
            })
            .collect();
        LeafWants { last_key, buckets }
    }
}

/// A leaf's sketch from what its span captured: a key or value not captured whole is unknown.
fn leaf_sketch(wants: LeafWants) -> Sketch {
    let whole = |c: Capture| (c.bytes.len() == c.len).then_some(c.bytes);
    Sketch::Leaf {
        last_key: match wants.last_key {
            Ok(None) => Ok(None),
            Ok(Some(capture)) => whole(capture).map(Some).ok_or(()),
            Err(()) => Err(()),
        },
        buckets: wants
            .buckets
            .into_iter()
            .filter_map(|(name, value)| Some((whole(name)?, whole(value)?)))
            .collect(),
    }
}

/// Why the stream's tree could not be followed to the bucket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot find the last key of bucket {bucket:?} in the stream: {reason}")]
pub struct StreamTailError {
    pub bucket: String,
    pub reason: String,
}

/// Follows a streamed image; [`BucketTail::finish`] names the last key of one top-level bucket.
#[derive(Debug)]
pub struct BucketTail {
    bucket: Vec<u8>,
    /// `None` until meta pages arrived; `Some(None)` when neither is valid (nothing to find).
    page_size: Option<Option<usize>>,
    /// Bytes of the block being completed, and the block's position.
    block: Vec<u8>,
    position: u64,
    spans: Vec<Span>,
    pending: usize,
    metas: Vec<Meta>,
    sketches: Sketches,
}

impl BucketTail {
    /// Looks for the last key of top-level bucket `bucket`, keeping page sketches in memory
    /// (about 1.5% of the image).
    pub fn new(bucket: &[u8]) -> Self {
        Self::keeping(bucket, Sketches::in_memory())
    }

    /// [`BucketTail::new`], keeping the page sketches in `file` (an empty file of the caller's,
    /// read and written here): memory stays the same whatever the image's size.
    pub fn spilling_to(bucket: &[u8], file: File) -> Self {
        Self::keeping(bucket, Sketches::in_file(file))
    }

    fn keeping(bucket: &[u8], sketches: Sketches) -> Self {
        Self {
            bucket: bucket.to_vec(),
            page_size: None,
            block: Vec::new(),
            position: 0,
            spans: Vec::new(),
            pending: 0,
            metas: Vec::new(),
            sketches,
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let page_size = match self.page_size {
                Some(Some(size)) => size,
                Some(None) => return,
                None => {
                    self.block.extend_from_slice(bytes);
                    self.page_size = self.probe_page_size(false);
                    if self.page_size.is_some() {
                        // Blocks are cut again from the start with the page size known.
                        let buffered = std::mem::take(&mut self.block);
                        self.update(&buffered);
                    }
                    return;
                }
            };
            let take = (page_size - self.block.len()).min(bytes.len());
            self.block.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.block.len() == page_size {
                let block = std::mem::take(&mut self.block);
                self.on_block(&block);
                self.block = block;
                self.block.clear();
                self.position += 1;
            }
        }
    }

    /// Page size from meta page 0, or from whichever meta page 1 validates once enough arrived
    /// (or, at the `end` of the stream, among what did); `None` while more bytes are needed.
    fn probe_page_size(&self, end: bool) -> Option<Option<usize>> {
        if self.block.len() < META_BYTES && !end {
            return None;
        }
        if let Ok(meta) = meta::parse(&self.block) {
            return Some(Some(meta.page_size as usize));
        }
        if self.block.len() < 65536 + META_BYTES && !end {
            return None;
        }
        Some((9..=16).map(|shift| 1usize << shift).find(|&size| {
            self.block
                .get(size..)
                .is_some_and(|page| meta::parse(page).is_ok_and(|m| m.page_size as usize == size))
        }))
    }

    fn on_block(&mut self, block: &[u8]) {
        let mut index = 0;
        while index < self.spans.len() {
            // A span is fed until it gives its sketch, which it does by its last byte.
            match self.spans[index].feed(block) {
                None => index += 1,
                Some(sketch) => {
                    let span = self.spans.swap_remove(index);
                    self.pending -= span.held;
                    self.sketches.keep(span.id, &sketch);
                }
            }
        }
        if self.position < 2 {
            if let Ok(meta) = meta::parse(block) {
                self.metas.push(meta);
            }
            return;
        }
        let Some(page) = Page::parse_header(block.into()) else {
            return;
        };
        let leaf = match page.kind() {
            Some(PageKind::Leaf) => true,
            Some(PageKind::Branch) => false,
            _ => return,
        };
        if page.id != self.position {
            return;
        }
        let count = usize::from(page.count);
        let len = (page.overflow as usize + 1).saturating_mul(block.len());
        let mut span = Span {
            id: self.position,
            leaf,
            count,
            len,
            seen: 0,
            head: Vec::new(),
            wants: None,
            bucket_len: self.bucket.len(),
            held: 0,
        };
        if let Some(sketch) = span.feed(block) {
            self.sketches.keep(span.id, &sketch);
            return;
        }
        // A span longer than a block is held until it has passed: its element headers (with the
        // block they end in) and, for a leaf, the keys and bucket values it captures.
        let captures = if leaf { CAPTURE_BUDGET.min(len) } else { 0 };
        span.held = (PAGE_HEADER_SIZE + ELEMENT_SIZE * count + block.len()).min(len) + captures;
        if self.pending + span.held <= MAX_PENDING {
            self.pending += span.held;
            self.spans.push(span);
        }
    }

    /// The bucket's last key (`None` when it is empty), following the current meta's tree.
    pub fn finish(mut self) -> Result<Option<Vec<u8>>, StreamTailError> {
        if self.page_size.is_none() {
            // A short stream whose page 0 is no meta: its page size is probed among what came.
            self.page_size = self.probe_page_size(true);
            let buffered = std::mem::take(&mut self.block);
            self.update(&buffered);
        }
        // Leaves cut short by the end of the stream: what they captured is what there is. A
        // branch cut short is not sketched: a partial child list would lead to a wrong last key.
        for span in std::mem::take(&mut self.spans) {
            if span.leaf {
                let sketch = span.wants.map_or(
                    Sketch::Leaf {
                        last_key: Err(()),
                        buckets: Vec::new(),
                    },
                    leaf_sketch,
                );
                self.sketches.keep(span.id, &sketch);
            }
        }
        let bucket = String::from_utf8_lossy(&self.bucket).into_owned();
        let fail = |reason: String| StreamTailError {
            bucket: bucket.clone(),
            reason,
        };
        let meta = self
            .metas
            .iter()
            .max_by_key(|m| m.txid)
            .ok_or_else(|| fail("no valid meta page".into()))?;
        let root_page = meta.root;
        let header = self
            .bucket_header(root_page)
            .map_err(fail)?
            .ok_or_else(|| fail("the bucket is not in the root".into()))?;
        let root = header
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| fail("its bucket header is short".into()))?;
        if root == 0 {
            let inline = header.get(16..).unwrap_or_default();
            let page =
                Page::parse_header(inline.into()).ok_or_else(|| fail("its inline page is short".into()))?;
            return match inline_last_key(&page) {
                Ok(key) => Ok(key),
                Err(()) => Err(fail("its inline page is not a readable leaf".into())),
            };
        }
        let mut page = root;
        for _ in 0..MAX_DEPTH {
            let mut found = None;
            self.sketches
                .scan(&|id| id == page, &mut |_, sketch| found = Some(sketch))
                .map_err(fail)?;
            match found {
                Some(Sketch::Branch(children)) => {
                    page = *children
                        .last()
                        .ok_or_else(|| fail(format!("branch page {page} is empty")))?;
                }
                Some(Sketch::Leaf {
                    last_key: Ok(key), ..
                }) => return Ok(key),
                Some(Sketch::Leaf {
                    last_key: Err(()), ..
                }) => {
                    return Err(fail(format!(
                        "the last key of leaf page {page} did not arrive whole (outside the page, or cut off by the stream's end)"
                    )));
                }
                None => {
                    return Err(fail(format!(
                        "page {page} did not arrive as a whole branch or leaf page (not one, cut off by the stream's end, or past {MAX_PENDING} bytes of pages in flight)"
                    )));
                }
            }
        }
        Err(fail(format!("the tree is deeper than {MAX_DEPTH}")))
    }

    /// The bucket's header (root page, sequence, inline page) among the root's leaves: the
    /// root's tree read a level per scan.
    fn bucket_header(&mut self, root: u64) -> Result<Option<Vec<u8>>, String> {
        let mut level = HashSet::from([root]);
        let mut seen = HashSet::new();
        for _ in 0..=MAX_DEPTH {
            if level.is_empty() {
                break;
            }
            seen.extend(level.iter().copied());
            let (mut next, mut header) = (HashSet::new(), None);
            let bucket = &self.bucket;
            self.sketches
                .scan(&|id| level.contains(&id), &mut |_, sketch| match sketch {
                    Sketch::Branch(children) => next.extend(children),
                    Sketch::Leaf { buckets, .. } => {
                        if let Some((_, value)) = buckets.into_iter().find(|(name, _)| name == bucket) {
                            header = Some(value);
                        }
                    }
                })?;
            if header.is_some() {
                return Ok(header);
            }
            next.retain(|page| !seen.contains(page));
            level = next;
        }
        Ok(None)
    }
}

/// The last key of an inline bucket's page (`Err` when it is not a readable leaf).
fn inline_last_key(page: &Page<'_>) -> Result<Option<Vec<u8>>, ()> {
    match page.count.checked_sub(1) {
        None => Ok(None),
        Some(last) => page
            .leaf(usize::from(last))
            .map(|(_, key, _)| Some(key.to_vec()))
            .map_err(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    /// The last key found with the sketches in memory, checked equal to the one found with them
    /// in a file.
    fn last_key_streamed(image: &[u8], bucket: &[u8], chunk: usize) -> Option<Vec<u8>> {
        let tails = [
            BucketTail::new(bucket),
            BucketTail::spilling_to(bucket, tempfile::tempfile().unwrap()),
        ];
        let [in_memory, in_file] = tails.map(|mut tail| {
            for part in image.chunks(chunk) {
                tail.update(part);
            }
            tail.update(&[0xAB; 32]);
            tail.finish().unwrap()
        });
        assert_eq!(in_memory, in_file);
        in_memory
    }

    #[test]
    fn finds_the_last_key_of_a_tree_and_of_an_inline_bucket() {
        let image = testing::etcd_like();
        for chunk in [1, 7, 4096, 100_000] {
            assert_eq!(last_key_streamed(&image, b"tree", chunk), Some(b"k6".to_vec()));
            assert_eq!(last_key_streamed(&image, b"inline", chunk), Some(b"b".to_vec()));
        }
        let missing = BucketTail::new(b"absent");
        assert!(missing.finish().is_err());
    }

    #[test]
    fn follows_the_current_meta_past_stale_pages_and_overflow() {
        let no_freelist = crate::FREELIST_NOT_PERSISTED;
        // Page 3 once held a leaf with two overflow pages (stale now); pages 4 and 5 were reused.
        let mut stale = testing::leaf(Some(3), &[(0, b"old", b"x")]);
        stale[12..16].copy_from_slice(&2u32.to_le_bytes());
        let big = vec![7u8; 2 * testing::PS];
        let overflowing = crate::write::leaf_page(
            6,
            &[(0, b"k1".as_slice(), b"v".as_slice()), (0, b"k9", big.as_slice())],
        );
        let image = [
            testing::meta(0, 2, no_freelist, 10, 4),
            testing::meta(1, 2, no_freelist, 10, 5),
            testing::leaf(Some(2), &[(1, b"key", &testing::bucket_root(4))]),
            stale,
            testing::branch(4, &[(b"k0", 5), (b"k1", 6)]),
            testing::leaf(Some(5), &[(0, b"k0", b"v")]),
            testing::spanning(overflowing, 4),
        ]
        .concat();
        assert_eq!(crate::Db::open(&image).unwrap().meta().txid, 5);
        for chunk in [3, 4096, 5000] {
            assert_eq!(last_key_streamed(&image, b"key", chunk), Some(b"k9".to_vec()));
        }
    }

    #[test]
    fn a_last_key_behind_a_large_value_is_captured_from_a_later_page() {
        let big = vec![7u8; 3 * testing::PS];
        let leaf = crate::write::leaf_page(4, &[(0, b"k1".as_slice(), big.as_slice()), (0, b"k2", b"v")]);
        let image = [
            testing::meta(0, 2, crate::FREELIST_NOT_PERSISTED, 9, 4),
            testing::meta(1, 2, crate::FREELIST_NOT_PERSISTED, 9, 3),
            testing::leaf(Some(2), &[(1, b"key", &testing::bucket_root(4))]),
            vec![0; testing::PS],
            testing::spanning(leaf, 5),
        ]
        .concat();
        assert_eq!(crate::Db::open(&image).unwrap().meta().txid, 4);
        for chunk in [1, 4096, 6000, 1 << 20] {
            assert_eq!(last_key_streamed(&image, b"key", chunk), Some(b"k2".to_vec()));
        }
        // Cut inside the value: the leaf's last key never arrived.
        let mut tail = BucketTail::new(b"key");
        tail.update(&image[..6 * testing::PS]);
        let error = tail.finish().unwrap_err();
        assert!(error.reason.contains("outside"), "{error}");
    }

    #[test]
    fn a_branch_cut_off_by_the_stream_end_is_not_followed() {
        // A two-page branch of 300 children: its last child (page 4) is the one to follow, but
        // its element header lies in the second page.
        let keys: Vec<String> = (0..300).map(|i| format!("k{i:03}")).collect();
        let children: Vec<(&[u8], u64)> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| (key.as_bytes(), if i == 299 { 4 } else { 3 }))
            .collect();
        let branch = crate::write::branch_page(5, &children);
        assert!(branch.len() > testing::PS);
        let image = [
            testing::meta(0, 2, crate::FREELIST_NOT_PERSISTED, 7, 4),
            testing::meta(1, 2, crate::FREELIST_NOT_PERSISTED, 7, 3),
            testing::leaf(Some(2), &[(1, b"key", &testing::bucket_root(5))]),
            testing::leaf(Some(3), &[(0, b"a", b"1")]),
            testing::leaf(Some(4), &[(0, b"z", b"2")]),
            testing::spanning(branch, 2),
        ]
        .concat();
        assert_eq!(last_key_streamed(&image, b"key", 4096), Some(b"z".to_vec()));
        // Cut after the branch's first page: its child list is partial, so no key is named.
        let mut tail = BucketTail::new(b"key");
        tail.update(&image[..6 * testing::PS]);
        let error = tail.finish().unwrap_err();
        assert!(error.reason.contains("page 5 did not arrive"), "{error}");
    }

    #[test]
    fn sketches_kept_in_a_used_file_read_back_only_what_was_kept() {
        use std::io::{Seek, Write};
        let mut file = tempfile::tempfile().unwrap();
        // What the file held before, longer than what is kept, and the handle rewound.
        file.write_all(&[0xFF; 64 << 10]).unwrap();
        file.rewind().unwrap();
        let image = testing::etcd_like();
        let mut tail = BucketTail::spilling_to(b"tree", file);
        tail.update(&image);
        assert_eq!(tail.finish().unwrap(), Some(b"k6".to_vec()));
    }

    #[test]
    fn a_short_file_with_a_broken_first_meta_is_read_through_the_second() {
        let mut image = testing::etcd_like();
        image[16] ^= 0xFF; // page 0's magic: bbolt opens the file through meta page 1
        assert!(crate::Db::open(&image).is_ok());
        assert_eq!(last_key_streamed(&image, b"tree", 1000), Some(b"k6".to_vec()));
    }

    #[test]
    fn garbage_never_panics_and_names_what_is_missing() {
        for image in [vec![], vec![0u8; 70_000], vec![0xFFu8; 9000]] {
            let mut tail = BucketTail::new(b"key");
            tail.update(&image);
            let error = tail.finish().unwrap_err();
            assert!(error.to_string().contains("\"key\""), "{error}");
        }
    }
}
