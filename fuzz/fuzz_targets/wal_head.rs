//! Any bytes as the head of a WAL segment (a node's member directory is read before a recovery):
//! the metadata reader returns the IDs or `None`, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lifeboat_etcd_data::restore::wal_metadata(data);
});
