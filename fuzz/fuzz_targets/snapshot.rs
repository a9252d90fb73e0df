//! Any bytes as a snapshot file: open, check, walk, status, verify, HashKV, the streamed
//! last-key scan (`BucketTail`) and the restore rewrite (`rewrite_backend`) must return, never
//! panic; on a file whose walk finds nothing wrong, the streamed scan names the same last key.
//!
//! The first byte picks the mode: raw bytes (with meta checksums fixed up, so the fuzzer gets
//! past meta validation), or a list of (offset, xor) edits and a truncation applied to a valid
//! etcd-like or fresh bbolt file, which reaches deep into damaged trees and freelists.
#![no_main]

use lifeboat_bbolt::testing::{PS, etcd_like, fresh};
use lifeboat_etcd_data::bbolt::Db;

/// FNV-1a 64 over the meta struct.
fn fix_meta_checksum(data: &mut [u8], page: usize) {
    let Some(meta) = data.get_mut(page + 16..page + 80) else { return };
    let hash = meta[..56]
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    meta[56..64].copy_from_slice(&hash.to_le_bytes());
}

fn edited(base: Vec<u8>, script: &[u8]) -> Vec<u8> {
    let mut data = base;
    let mut edits = script.chunks_exact(4);
    for edit in &mut edits {
        let offset = usize::from(u16::from_le_bytes([edit[0], edit[1]])) * usize::from(edit[2]).max(1) % data.len();
        data[offset] ^= edit[3];
    }
    if let [cut_low, cut_high] = edits.remainder()[..] {
        data.truncate(usize::from(u16::from_le_bytes([cut_low, cut_high])) % (data.len() + 1));
    }
    // Half the time keep the metas valid, so the damage lands in the tree.
    if script.first().is_some_and(|b| b & 1 == 0) {
        fix_meta_checksum(&mut data, 0);
        fix_meta_checksum(&mut data, PS);
    }
    data
}

fn exercise(bytes: &[u8]) {
    if let Ok(db) = Db::open(bytes) {
        let mut entries = 0usize;
        let _ = db.check(|_| entries += 1);
        assert!(entries <= bytes.len() / 16, "every entry needs an element");
        let _ = lifeboat_etcd_data::status(&db, None);
        let _ = lifeboat_etcd_data::status(&db, lifeboat_etcd_data::Version::parse("3.6"));
        let _ = lifeboat_etcd_data::hash_kv(&db, None, None, lifeboat_etcd_data::HashRules::SkipsTombstoneAtCompaction);
        let _ = lifeboat_etcd_data::hash_kv(&db, Some(3), Some(1), lifeboat_etcd_data::HashRules::HashesTombstoneAtCompaction);
        streamed_tail_agrees(bytes, &db);
    }
    let _ = lifeboat_etcd_data::verify(bytes);
    rewrite(bytes);
}

/// Every top-level bucket's last key, from the walk and from the stream in uneven chunks.
fn streamed_tail_agrees(bytes: &[u8], db: &Db<'_, [u8]>) {
    let mut last: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let findings = db.walk(|entry| match entry.depth {
        0 => last.push((entry.key.to_vec(), None)),
        1 => {
            if let Some((_, key)) = last.last_mut() {
                *key = Some(entry.key.to_vec());
            }
        }
        _ => {}
    });
    for (bucket, key) in &last {
        let mut tail = lifeboat_etcd_data::bbolt::BucketTail::new(bucket);
        for chunk in bytes.chunks(1 + bytes.len() % 4099) {
            tail.update(chunk);
        }
        let streamed = tail.finish();
        if findings.is_empty() {
            assert_eq!(streamed.ok().flatten(), key.clone(), "bucket {bucket:?}");
        }
    }
}

/// The restore rewrite over the same bytes: it must refuse damage, never panic, and write only
/// a file it could read back as bbolt.
fn rewrite(bytes: &[u8]) {
    use lifeboat_etcd_data::restore::{Cluster, rewrite_backend};
    let Ok(db) = Db::open(bytes) else { return };
    let Ok(cluster) = Cluster::from_initial_cluster("m1=http://127.0.0.1:2380", "fuzz") else { return };
    let Ok(out) = tempfile::tempfile() else { return };
    for bump in [None, Some(1_000)] {
        let _ = out.set_len(0);
        let _ = rewrite_backend(&db, &out, &cluster, bump);
    }
}

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else { return };
    let data = match mode % 3 {
        0 => {
            let mut data = rest.to_vec();
            fix_meta_checksum(&mut data, 0);
            let page_size = data.get(24..28).map_or(PS, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            if page_size.is_power_of_two() && page_size <= 65536 {
                fix_meta_checksum(&mut data, page_size);
            }
            data
        }
        1 => edited(etcd_like(), rest),
        _ => edited(fresh(), rest),
    };
    exercise(&data);
});
