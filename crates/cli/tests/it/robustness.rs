//! A real etcd snapshot, damaged every way that matters: every truncation at a page boundary
//! and bit flips in meta, branch and leaf pages. Each gives an error or findings, never a panic
//! or a hang. (Freelist pages, which etcd never persists, are covered in the bbolt crate.)

use lifeboat_etcd_data::{self as etcd_data, bbolt::Db};
use lifeboat_test_support::{EtcdConfig, EtcdServer, EtcdVersion, FillSpec, fill, fill_small_keys};

use crate::common::*;

const PAGE: usize = 4096;

/// Verify must reject the bytes; status must not panic either way.
fn assert_rejected(bytes: &[u8], what: &str) {
    match etcd_data::verify(bytes) {
        Ok(report) => assert!(!report.is_clean(), "{what}: damage went unnoticed"),
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    if let Ok(db) = Db::open(bytes) {
        let _ = etcd_data::status(&db, None);
    }
}

#[tokio::test]
async fn truncations_and_bit_flips_of_a_real_snapshot_are_caught() {
    let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_5))
        .await
        .unwrap();
    let client = server.member().await.unwrap().client();
    fill(&client, &FillSpec::small()).await.unwrap();
    fill_small_keys(&client, 5_000).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("real.db");
    run_ok(&mut save_command(&server, &file));
    let clean = std::fs::read(&file).unwrap();
    assert!(etcd_data::verify(&clean).unwrap().is_clean());
    let pages = clean.len() / PAGE;

    for boundary in 0..pages {
        assert_rejected(
            &clean[..boundary * PAGE],
            &format!("truncated to {boundary} pages"),
        );
        assert_rejected(
            &clean[..boundary * PAGE + 32],
            &format!("truncated to {boundary} pages + 32"),
        );
    }

    let by_kind = |flags: u16| -> Vec<usize> {
        (2..pages)
            .filter(|&p| u64::from_le_bytes(clean[p * PAGE..p * PAGE + 8].try_into().unwrap()) == p as u64)
            .filter(|&p| u16::from_le_bytes(clean[p * PAGE + 8..p * PAGE + 10].try_into().unwrap()) == flags)
            .collect()
    };
    let (branches, leaves) = (by_kind(0x01), by_kind(0x02));
    assert!(
        branches.len() >= 2 && leaves.len() >= 50,
        "{} branches, {} leaves",
        branches.len(),
        leaves.len()
    );
    let sample =
        |pages: &[usize]| -> Vec<usize> { pages.iter().step_by((pages.len() / 6).max(1)).copied().collect() };
    let targets: Vec<(&str, usize)> = [0, 1]
        .into_iter()
        .map(|p| ("meta", p))
        .chain(sample(&branches).into_iter().map(|p| ("branch", p)))
        .chain(sample(&leaves).into_iter().map(|p| ("leaf", p)))
        .collect();
    // Header, meta and element bytes one by one, then points spread over the page body.
    let offsets: Vec<usize> = (0..96).chain((96..PAGE).step_by(331)).collect();
    for (kind, page) in targets {
        for &offset in &offsets {
            for bit in [0, 7] {
                let mut damaged = clean.clone();
                damaged[page * PAGE + offset] ^= 1 << bit;
                assert_rejected(&damaged, &format!("{kind} page {page} byte {offset} bit {bit}"));
            }
        }
    }
}
