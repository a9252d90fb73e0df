//! Small bbolt files built byte by byte, for unit tests and the fuzz target (feature `testing`).

use crate::write::{branch_page, leaf_page, meta_page};

/// Page size of the built files.
pub const PS: usize = 4096;

fn header(page: &mut [u8], id: u64, flags: u16, count: u16, overflow: u32) {
    page[..8].copy_from_slice(&id.to_le_bytes());
    page[8..10].copy_from_slice(&flags.to_le_bytes());
    page[10..12].copy_from_slice(&count.to_le_bytes());
    page[12..16].copy_from_slice(&overflow.to_le_bytes());
}

pub fn meta(id: u64, root: u64, freelist: u64, hwm: u64, txid: u64) -> Vec<u8> {
    meta_page(id, PS, root, freelist, hwm, txid)
}

/// A leaf page (or, with `id` None, an inline page image) holding `entries` (flags, key, value).
pub fn leaf(id: Option<u64>, entries: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
    let mut page = leaf_page(id.unwrap_or(0), entries);
    if id.is_some() {
        page.resize(PS, 0);
    }
    page
}

/// `node` (a leaf or branch page image) stretched over `pages` pages, its overflow count so.
pub fn spanning(mut node: Vec<u8>, pages: usize) -> Vec<u8> {
    node.resize(pages * PS, 0);
    node[12..16].copy_from_slice(&((pages - 1) as u32).to_le_bytes());
    node
}

/// A nested bucket's value whose tree starts at page `root`.
pub fn bucket_root(root: u64) -> Vec<u8> {
    let mut value = vec![0u8; 16];
    value[..8].copy_from_slice(&root.to_le_bytes());
    value
}

pub fn branch(id: u64, children: &[(&[u8], u64)]) -> Vec<u8> {
    let mut page = branch_page(id, children);
    page.resize(PS, 0);
    page
}

pub fn freelist(id: u64, ids: &[u64], long_form: bool) -> Vec<u8> {
    let mut page = vec![0; PS];
    let count = if long_form { 0xFFFF } else { ids.len() as u16 };
    header(&mut page, id, 0x10, count, 0);
    let mut at = 16;
    if long_form {
        page[16..24].copy_from_slice(&(ids.len() as u64).to_le_bytes());
        at = 24;
    }
    for id in ids {
        page[at..at + 8].copy_from_slice(&id.to_le_bytes());
        at += 8;
    }
    page
}

pub fn bucket_value_inline(entries: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
    [vec![0; 16], leaf(None, entries)].concat()
}

/// bbolt's fresh file: metas (txid 0 and 1), freelist page 2, empty root leaf page 3.
pub fn fresh() -> Vec<u8> {
    [
        meta(0, 3, 2, 4, 0),
        meta(1, 3, 2, 4, 1),
        freelist(2, &[], false),
        leaf(Some(3), &[]),
    ]
    .concat()
}

/// An etcd-like file: no freelist, a root leaf with an inline bucket and a bucket whose root is a
/// branch over two leaves.
pub fn etcd_like() -> Vec<u8> {
    let small = bucket_value_inline(&[(0, b"a", b"1"), (0, b"b", b"2")]);
    let tree = bucket_root(3);
    let no_freelist = crate::FREELIST_NOT_PERSISTED;
    [
        meta(0, 2, no_freelist, 6, 9),
        meta(1, 2, no_freelist, 6, 8),
        leaf(Some(2), &[(1, b"inline", &small), (1, b"tree", &tree)]),
        branch(3, &[(b"k1", 4), (b"k5", 5)]),
        leaf(Some(4), &[(0, b"k1", b"v1"), (0, b"k2", b"v2")]),
        leaf(Some(5), &[(0, b"k5", b"v5"), (0, b"k6", b"v6")]),
    ]
    .concat()
}
