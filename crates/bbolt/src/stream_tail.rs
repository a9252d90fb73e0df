//! The last key of a top-level bucket, found while a bbolt image streams past in page order (as
//! etcd sends a snapshot), without keeping the image.
//!
//! Every page-sized block is read as a page of its own position, since a freed page keeps the
//! header (and overflow count) of what it once held while its successors are reused. Only a
//! sketch is kept per page: a branch's children, a leaf's last key and its nested-bucket entries.
//! At the end the current meta's tree is followed through the sketches.

use std::collections::{HashMap, HashSet};

use crate::meta::{self, Meta};
use crate::page::{BUCKET_LEAF_FLAG, Page, PageKind};

/// Bytes one page span (a page and its overflow) may take while being assembled.
const MAX_SPAN: usize = 64 << 20;
/// Bytes all spans being assembled may take together.
const MAX_PENDING: usize = 256 << 20;
/// Tree depth followed at the end, as in the walk.
const MAX_DEPTH: usize = 64;
/// Largest nested-bucket value kept (its header and inline page).
const MAX_BUCKET_VALUE: usize = 64 << 10;
/// Bytes needed to read page 0's meta.
const META_BYTES: usize = meta::META_OFFSET + 64;

/// A nested bucket's name and value (header and inline page).
type BucketEntry = (Box<[u8]>, Box<[u8]>);

#[derive(Debug)]
enum Sketch {
    Branch(Vec<u64>),
    Leaf {
        /// `Err` when the last element lies outside the page (damage, or a span never completed).
        last_key: Result<Option<Box<[u8]>>, ()>,
        buckets: Vec<BucketEntry>,
    },
}

#[derive(Debug)]
struct Span {
    id: u64,
    bytes: Vec<u8>,
    len: usize,
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
    sketches: HashMap<u64, Sketch>,
}

impl BucketTail {
    /// Looks for the last key of top-level bucket `bucket`.
    pub fn new(bucket: &[u8]) -> Self {
        Self {
            bucket: bucket.to_vec(),
            page_size: None,
            block: Vec::new(),
            position: 0,
            spans: Vec::new(),
            pending: 0,
            metas: Vec::new(),
            sketches: HashMap::new(),
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
        let mut finished = Vec::new();
        for (index, span) in self.spans.iter_mut().enumerate() {
            let take = (span.len - span.bytes.len()).min(block.len());
            span.bytes.extend_from_slice(&block[..take]);
            if span.bytes.len() == span.len {
                finished.push(index);
            }
        }
        for index in finished.into_iter().rev() {
            let span = self.spans.swap_remove(index);
            self.pending -= span.len;
            self.sketch(span.id, &span.bytes);
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
        if page.id != self.position || !matches!(page.kind(), Some(PageKind::Branch | PageKind::Leaf)) {
            return;
        }
        if page.overflow == 0 {
            self.sketch(self.position, block);
            return;
        }
        let len = (page.overflow as usize + 1).saturating_mul(block.len());
        if len <= MAX_SPAN && self.pending + len <= MAX_PENDING {
            let mut bytes = Vec::with_capacity(len);
            bytes.extend_from_slice(block);
            self.pending += len;
            self.spans.push(Span {
                id: self.position,
                bytes,
                len,
            });
        }
    }

    fn sketch(&mut self, id: u64, span: &[u8]) {
        let Some(page) = Page::parse_header(span.into()) else {
            return;
        };
        let count = usize::from(page.count);
        let sketch = match page.kind() {
            Some(PageKind::Branch) => Sketch::Branch(
                (0..count)
                    .map_while(|i| page.branch(i).ok().map(|(_, child)| child))
                    .collect(),
            ),
            Some(PageKind::Leaf) => leaf_sketch(&page, count),
            _ => return,
        };
        self.sketches.insert(id, sketch);
    }

    /// The bucket's last key (`None` when it is empty), following the current meta's tree.
    pub fn finish(mut self) -> Result<Option<Vec<u8>>, StreamTailError> {
        if self.page_size.is_none() {
            // A short stream whose page 0 is no meta: its page size is probed among what came.
            self.page_size = self.probe_page_size(true);
            let buffered = std::mem::take(&mut self.block);
            self.update(&buffered);
        }
        let fail = |reason: String| StreamTailError {
            bucket: String::from_utf8_lossy(&self.bucket).into_owned(),
            reason,
        };
        let meta = self
            .metas
            .iter()
            .max_by_key(|m| m.txid)
            .ok_or_else(|| fail("no valid meta page".into()))?;
        let header = self
            .bucket_header(meta.root)
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
            return match leaf_sketch(&page, usize::from(page.count)) {
                Sketch::Leaf {
                    last_key: Ok(key), ..
                } => Ok(key.map(Into::into)),
                _ => Err(fail("its inline page is not a readable leaf".into())),
            };
        }
        let mut page = root;
        for _ in 0..MAX_DEPTH {
            match self.sketches.get(&page) {
                Some(Sketch::Branch(children)) => {
                    page = *children
                        .last()
                        .ok_or_else(|| fail(format!("branch page {page} is empty")))?;
                }
                Some(Sketch::Leaf {
                    last_key: Ok(key), ..
                }) => return Ok(key.clone().map(Into::into)),
                Some(Sketch::Leaf {
                    last_key: Err(()), ..
                }) => {
                    return Err(fail(format!(
                        "the last element of leaf page {page} is outside it"
                    )));
                }
                None => return Err(fail(format!("page {page} is not a branch or leaf page"))),
            }
        }
        Err(fail(format!("the tree is deeper than {MAX_DEPTH}")))
    }

    /// The bucket's header (root page, sequence, inline page) among the root's leaves.
    fn bucket_header(&self, root: u64) -> Option<&[u8]> {
        let mut stack = vec![(root, 0)];
        let mut seen = HashSet::new();
        while let Some((page, depth)) = stack.pop() {
            if depth > MAX_DEPTH || !seen.insert(page) {
                continue;
            }
            match self.sketches.get(&page)? {
                Sketch::Branch(children) => stack.extend(children.iter().map(|&c| (c, depth + 1))),
                Sketch::Leaf { buckets, .. } => {
                    if let Some((_, value)) = buckets.iter().find(|(name, _)| **name == *self.bucket) {
                        return Some(value);
                    }
                }
            }
        }
        None
    }
}

fn leaf_sketch(page: &Page<'_>, count: usize) -> Sketch {
    let elements = || (0..count).map_while(|i| page.leaf(i).ok());
    Sketch::Leaf {
        last_key: match count.checked_sub(1) {
            None => Ok(None),
            Some(last) => page
                .leaf(last)
                .map(|(_, key, _)| Some(key.into()))
                .map_err(|_| ()),
        },
        buckets: elements()
            .filter(|(flags, _, value)| flags & BUCKET_LEAF_FLAG != 0 && value.len() <= MAX_BUCKET_VALUE)
            .map(|(_, key, value)| (key.into(), value.into()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn last_key_streamed(image: &[u8], bucket: &[u8], chunk: usize) -> Option<Vec<u8>> {
        let mut tail = BucketTail::new(bucket);
        for part in image.chunks(chunk) {
            tail.update(part);
        }
        tail.update(&[0xAB; 32]);
        tail.finish().unwrap()
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
        let tree = |root: u64| {
            let mut value = vec![0u8; 16];
            value[..8].copy_from_slice(&root.to_le_bytes());
            value
        };
        let no_freelist = crate::FREELIST_NOT_PERSISTED;
        // Page 3 once held a leaf with two overflow pages (stale now); pages 4 and 5 were reused.
        let mut stale = testing::leaf(Some(3), &[(0, b"old", b"x")]);
        stale[12..16].copy_from_slice(&2u32.to_le_bytes());
        let big = vec![7u8; 2 * testing::PS];
        let mut overflowing = crate::write::leaf_page(
            6,
            &[(0, b"k1".as_slice(), b"v".as_slice()), (0, b"k9", big.as_slice())],
        );
        overflowing.resize(4 * testing::PS, 0);
        overflowing[12..16].copy_from_slice(&3u32.to_le_bytes());
        let image = [
            testing::meta(0, 2, no_freelist, 10, 4),
            testing::meta(1, 2, no_freelist, 10, 5),
            testing::leaf(Some(2), &[(1, b"key", &tree(4))]),
            stale,
            testing::branch(4, &[(b"k0", 5), (b"k1", 6)]),
            testing::leaf(Some(5), &[(0, b"k0", b"v")]),
            overflowing,
        ]
        .concat();
        assert_eq!(crate::Db::open(&image).unwrap().meta().txid, 5);
        for chunk in [3, 4096, 5000] {
            assert_eq!(last_key_streamed(&image, b"key", chunk), Some(b"k9".to_vec()));
        }
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
