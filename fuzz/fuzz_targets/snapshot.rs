//! Any bytes as a snapshot file: open, check, walk, status and verify must return, never panic.
#![no_main]

use lifeboat_etcd_data::bbolt::Db;

/// FNV-1a 64 over the meta struct, so the fuzzer gets past meta validation and explores pages.
fn fix_meta_checksum(data: &mut [u8], page: usize) {
    let Some(meta) = data.get_mut(page + 16..page + 80) else { return };
    let hash = meta[..56]
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    meta[56..64].copy_from_slice(&hash.to_le_bytes());
}

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let mut data = input.to_vec();
    fix_meta_checksum(&mut data, 0);
    let page_size = data.get(24..28).map_or(4096, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    if page_size.is_power_of_two() && page_size <= 65536 {
        fix_meta_checksum(&mut data, page_size);
    }
    for bytes in [input, &data[..]] {
        if let Ok(db) = Db::open(bytes) {
            let mut entries = 0usize;
            let _ = db.check(|_| entries += 1);
            let _ = lifeboat_etcd_data::status(&db);
        }
        let _ = lifeboat_etcd_data::verify(bytes);
    }
});
