//! Unit tests on small files built byte by byte: fresh bbolt layouts, freelists in both count
//! forms, damaged metas and trees, and exhaustive bit flips and truncations.

use crate::{Db, Error, FindingKind};

use crate::testing::*;

fn kinds(file: &[u8]) -> Vec<FindingKind> {
    Db::open(file)
        .unwrap()
        .check(|_| {})
        .into_iter()
        .map(|f| f.kind)
        .collect()
}

#[test]
fn fresh_file_is_clean() {
    let file = fresh();
    let db = Db::open(&file).unwrap();
    assert_eq!(db.meta().txid, 1);
    assert_eq!(db.meta_page(), 1);
    assert_eq!(db.size(), 4 * PS as u64);
    let mut entries = 0;
    assert!(db.check(|_| entries += 1).is_empty());
    assert_eq!(entries, 0);
}

#[test]
fn walk_visits_buckets_in_key_order_depth_first() {
    let file = etcd_like();
    let db = Db::open(&file).unwrap();
    let mut seen = Vec::new();
    assert!(
        db.check(|e| seen.push((e.depth, e.key.to_vec(), e.is_bucket)))
            .is_empty()
    );
    let expected: Vec<(usize, &[u8], bool)> = vec![
        (0, b"inline", true),
        (1, b"a", false),
        (1, b"b", false),
        (0, b"tree", true),
        (1, b"k1", false),
        (1, b"k2", false),
        (1, b"k5", false),
        (1, b"k6", false),
    ];
    let expected: Vec<(usize, Vec<u8>, bool)> =
        expected.into_iter().map(|(d, k, b)| (d, k.to_vec(), b)).collect();
    assert_eq!(seen, expected);
}

#[test]
fn freelist_rules_in_both_count_forms() {
    for long_form in [false, true] {
        // Page 4 listed free, page 3 (the root) listed too, page 4 listed twice.
        let mut file = fresh();
        file[..2 * PS].copy_from_slice(&[meta(0, 3, 2, 5, 0), meta(1, 3, 2, 5, 1)].concat());
        file[2 * PS..3 * PS].copy_from_slice(&freelist(2, &[3, 4, 4], long_form));
        file.extend(vec![0; PS]);
        let found = kinds(&file);
        assert!(found.contains(&FindingKind::AlreadyFreed), "{found:?}");
        assert!(found.contains(&FindingKind::ReachableFreed), "{found:?}");
        assert!(!found.contains(&FindingKind::UnreachableUnfreed), "{found:?}");

        // Page 4 neither reachable nor listed.
        file[2 * PS..3 * PS].copy_from_slice(&freelist(2, &[], long_form));
        assert_eq!(kinds(&file), [FindingKind::UnreachableUnfreed]);
    }
}

#[test]
fn damaged_trees_report_every_finding_and_terminate() {
    // The branch points to page 4 twice and to itself.
    let mut file = etcd_like();
    file[3 * PS..4 * PS].copy_from_slice(&branch(3, &[(b"k1", 4), (b"k3", 4), (b"k5", 3)]));
    let found = kinds(&file);
    assert!(found.contains(&FindingKind::MultipleReferences), "{found:?}");
    assert!(found.contains(&FindingKind::SelfReference), "{found:?}");

    // Separators that the children's keys do not respect.
    file[3 * PS..4 * PS].copy_from_slice(&branch(3, &[(b"k1", 4), (b"k2", 5)]));
    file[5 * PS..6 * PS].copy_from_slice(&leaf(Some(5), &[(0, b"k0", b"v")]));
    let found = kinds(&file);
    assert!(found.contains(&FindingKind::AboveNextParentKey), "{found:?}");
    assert!(found.contains(&FindingKind::BelowParentKey), "{found:?}");

    // Keys out of order in a leaf, and a child pointer beyond the high-water mark.
    let mut file = etcd_like();
    file[4 * PS..5 * PS].copy_from_slice(&leaf(Some(4), &[(0, b"k2", b"v"), (0, b"k1", b"v")]));
    file[3 * PS..4 * PS].copy_from_slice(&branch(3, &[(b"k1", 4), (b"k5", 99)]));
    let found = kinds(&file);
    assert!(found.contains(&FindingKind::KeyOrder { index: 1 }), "{found:?}");
    assert!(found.contains(&FindingKind::OutOfBounds { hwm: 6 }), "{found:?}");

    // A page whose header names another page, and one whose type is no type.
    let mut file = etcd_like();
    file[4 * PS] = 7;
    file[5 * PS + 8] = 0x20;
    let found = kinds(&file);
    assert!(found.contains(&FindingKind::IdMismatch { found: 7 }), "{found:?}");
    assert!(
        found.contains(&FindingKind::InvalidType { flags: 0x20 }),
        "{found:?}"
    );
}

#[test]
fn meta_choice_follows_bbolt() {
    let mut file = etcd_like();
    file[64] ^= 0xFF; // meta 0 (txid 9) now fails its checksum
    let db = Db::open(&file).unwrap();
    assert_eq!((db.meta_page(), db.meta().txid), (1, 8));
    assert_eq!(db.other_meta_problem(), Some("meta page 0: checksum mismatch"));
    file[PS + 64] ^= 0xFF;
    assert!(matches!(Db::open(&file), Err(Error::NoValidMeta { .. })));

    let mut big_endian = etcd_like();
    for page in [0, PS] {
        big_endian[page + 16..page + 20].reverse();
    }
    assert_eq!(Db::open(&big_endian).unwrap_err(), Error::BigEndian);
    assert!(matches!(
        Db::open(&[0u8; 100][..]),
        Err(Error::NotBbolt { len: 100 })
    ));
    let short = etcd_like();
    assert!(matches!(
        Db::open(&short[..5 * PS]),
        Err(Error::Truncated { pages: 6, .. })
    ));
}

/// Every bit of every header, meta and element byte, and every truncation: an error or
/// findings, never a panic; each walk ends (pages are followed at most once).
#[test]
fn no_bit_flip_or_truncation_panics() {
    for file in [fresh(), etcd_like()] {
        for page in 0..file.len() / PS {
            for offset in 0..128 {
                for bit in 0..8 {
                    let mut damaged = file.clone();
                    damaged[page * PS + offset] ^= 1 << bit;
                    if let Ok(db) = Db::open(&damaged) {
                        let mut entries = 0usize;
                        db.check(|_| entries += 1);
                        assert!(entries <= damaged.len() / 16, "each entry needs an element");
                    }
                }
            }
        }
        for len in 0..file.len() {
            if let Ok(db) = Db::open(&file[..len]) {
                db.check(|_| {});
            }
        }
    }
}

/// Entries of every bucket as a walk sees them: (depth, key, value unless a bucket).
fn entries_of(bytes: &[u8]) -> Vec<(usize, Vec<u8>, Vec<u8>)> {
    let db = Db::open(bytes).unwrap();
    let mut seen = Vec::new();
    let findings = db.check(|e| {
        seen.push((
            e.depth,
            e.key.to_vec(),
            if e.is_bucket { Vec::new() } else { e.value.to_vec() },
        ))
    });
    assert!(findings.is_empty(), "{findings:?}");
    seen
}

#[test]
fn bulk_written_files_read_back_exactly_and_check_clean() {
    use crate::{BucketRoot, BulkWriter};
    let big_value = vec![0xabu8; 3 * PS + 100];
    let many: Vec<(Vec<u8>, Vec<u8>)> = (0..20_000u32)
        .map(|i| (i.to_be_bytes().to_vec(), format!("value-{i}").into_bytes()))
        .collect();
    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;
    let buckets: Vec<(&[u8], Pairs)> = vec![
        (b"alarm", vec![]),
        (b"key", many),
        (
            b"large",
            vec![
                (b"a".to_vec(), b"small".to_vec()),
                (b"b".to_vec(), big_value),
                (b"c".to_vec(), b"x".to_vec()),
            ],
        ),
        (
            b"meta",
            vec![(b"consistent_index".to_vec(), 7u64.to_be_bytes().to_vec())],
        ),
    ];
    let out = tempfile::tempfile().unwrap();
    let mut writer = BulkWriter::new(&out, PS);
    let mut roots = Vec::new();
    for (name, entries) in &buckets {
        let mut bucket = writer.bucket();
        for (key, value) in entries {
            writer.put(&mut bucket, key, value, false).unwrap();
        }
        roots.push((name.to_vec(), writer.finish_bucket(bucket).unwrap()));
    }
    assert!(
        matches!(roots[0].1, BucketRoot::Inline(_)),
        "an empty bucket is inline"
    );
    assert!(
        matches!(roots[1].1, BucketRoot::Page(_)),
        "a large bucket is a tree"
    );
    let size = writer.finish(roots).unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut &out, &mut bytes).unwrap();
    assert_eq!(bytes.len() as u64, size);

    let expected: Vec<(usize, Vec<u8>, Vec<u8>)> = buckets
        .iter()
        .flat_map(|(name, entries)| {
            std::iter::once((0, name.to_vec(), Vec::new()))
                .chain(entries.iter().map(|(k, v)| (1, k.clone(), v.clone())))
        })
        .collect();
    assert_eq!(entries_of(&bytes), expected);
    // bbolt's rebalancing asserts that every branch has two children or more.
    for page in bytes.chunks_exact(PS).skip(2) {
        if page[8..10] == [0x01, 0] {
            assert!(
                u16::from_le_bytes([page[10], page[11]]) >= 2,
                "a branch with one child"
            );
        }
    }
    let db = Db::open(&bytes).unwrap();
    assert_eq!(
        (db.meta().txid, db.meta_page(), db.meta().freelist),
        (2, 0, crate::FREELIST_NOT_PERSISTED)
    );
}

#[test]
fn bulk_writer_refuses_unordered_keys() {
    let out = tempfile::tempfile().unwrap();
    let mut writer = crate::BulkWriter::new(&out, PS);
    let mut bucket = writer.bucket();
    writer.put(&mut bucket, b"b", b"", false).unwrap();
    assert!(writer.put(&mut bucket, b"a", b"", false).is_err());
    assert!(writer.put(&mut bucket, b"b", b"", false).is_err());
    assert!(writer.put(&mut bucket, b"", b"", false).is_err());
}

/// A bucket header whose root is page `root`.
fn bucket_root(root: u64) -> Vec<u8> {
    let mut value = vec![0u8; 16];
    value[..8].copy_from_slice(&root.to_le_bytes());
    value
}

/// `buckets` nested buckets, each rooted at a chain of `chain` single-child branch pages.
fn deep_file(buckets: usize, chain: usize) -> Vec<u8> {
    let hwm = 3 + buckets * (chain + 1) + 1;
    let no_freelist = crate::FREELIST_NOT_PERSISTED;
    let mut pages = vec![
        meta(0, 2, no_freelist, hwm as u64, 9),
        meta(1, 2, no_freelist, hwm as u64, 8),
        leaf(Some(2), &[(1, b"b", &bucket_root(3))]),
    ];
    let mut next = 3u64;
    for _ in 0..buckets {
        for _ in 0..chain {
            pages.push(branch(next, &[(b"k", next + 1)]));
            next += 1;
        }
        pages.push(leaf(Some(next), &[(1, b"k", &bucket_root(next + 1))]));
        next += 1;
    }
    pages.push(leaf(Some(next), &[(0, b"k", b"v")]));
    pages.concat()
}

#[test]
fn one_depth_bound_covers_nested_buckets_and_trees_on_a_small_stack() {
    let shallow = deep_file(3, 3);
    assert_eq!(kinds(&shallow), []);
    // 60 buckets of 60 levels each: within a separate bound for each, 3,660 levels in total.
    let deep = deep_file(60, 60);
    let walk = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || kinds(&deep))
        .unwrap();
    let found = walk.join().expect("no stack overflow on a 2 MiB stack");
    assert_eq!(found, [FindingKind::TooDeep]);
}
