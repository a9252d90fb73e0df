//! Kubernetes-like data: keys `/registry/<resource>/<namespace>/<name>`, values of 1-10 KB that
//! compress about as real objects do, overwrites, deletes, leases and a compaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use etcd_client::{Client, CompactionOptions, PutOptions};

/// What to write.
#[derive(Debug, Clone)]
pub struct FillSpec {
    /// Objects created in the first pass.
    pub objects: usize,
    /// Value sizes are spread evenly over this range of bytes.
    pub value_bytes: (usize, usize),
    /// Every n-th object is written again (0: none).
    pub overwrite_every: usize,
    /// Every n-th object is deleted (0: none).
    pub delete_every: usize,
    /// Leases granted; events are attached to them round-robin (0: none).
    pub leases: usize,
    /// Compact at the revision reached after the first pass.
    pub compact: bool,
    /// Writers in flight.
    pub concurrency: usize,
}

impl FillSpec {
    /// A small but complete mix for functional tests.
    pub fn small() -> Self {
        Self {
            objects: 300,
            value_bytes: (1_000, 10_000),
            overwrite_every: 3,
            delete_every: 7,
            leases: 3,
            compact: true,
            concurrency: 8,
        }
    }

    /// About `bytes` of live data, with the same mix.
    pub fn sized(bytes: u64) -> Self {
        let small = Self::small();
        let average = (small.value_bytes.0 + small.value_bytes.1) as u64 / 2;
        Self {
            objects: (bytes / average).max(1) as usize,
            concurrency: 32,
            ..small
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillSummary {
    /// Keys that exist at the end.
    pub live_keys: usize,
    /// The store revision at the end.
    pub revision: i64,
    /// Value bytes written, overwrites included.
    pub bytes_written: u64,
}

const RESOURCES: [&str; 8] = [
    "pods",
    "configmaps",
    "secrets",
    "deployments",
    "services",
    "serviceaccounts",
    "endpointslices",
    "events",
];
const NAMESPACES: [&str; 5] = ["default", "kube-system", "monitoring", "payments", "web"];

/// The key of object `index`.
pub fn object_key(index: usize) -> String {
    let resource = RESOURCES[index % RESOURCES.len()];
    let namespace = NAMESPACES[(index / RESOURCES.len()) % NAMESPACES.len()];
    format!("/registry/{resource}/{namespace}/obj-{index:07}")
}

/// SplitMix64: deterministic values without a dependency.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The value of object `index` at `generation`: a `k8s\0` prefix, repetitive metadata, and a
/// random-looking payload, so it compresses by about the ratio of real clusters.
pub fn object_value(index: usize, generation: u64, (min, max): (usize, usize)) -> Vec<u8> {
    let mut state = (index as u64) << 8 | generation;
    let len = min + (next(&mut state) as usize) % (max - min + 1);
    let mut value = format!(
        "k8s\0{{\"kind\":\"Object\",\"metadata\":{{\"name\":\"obj-{index:07}\",\"generation\":{generation},\
         \"labels\":{{\"app.kubernetes.io/managed-by\":\"lifeboat-test\",\"tier\":\"backend\"}}}},\"data\":\""
    )
    .into_bytes();
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    while value.len() < len {
        let word = next(&mut state);
        if word.is_multiple_of(3) {
            value.extend_from_slice(b"\"status\":\"Running\",\"ready\":true,");
        } else {
            value.extend((0..8).map(|i| ALPHABET[((word >> (i * 6)) & 63) as usize]));
        }
    }
    value.truncate(len);
    value
}

/// Writes the data described by `spec`.
pub async fn fill(client: &Client, spec: &FillSpec) -> anyhow::Result<FillSummary> {
    let bytes = Arc::new(AtomicU64::new(0));
    let mut lease_ids = Vec::new();
    for _ in 0..spec.leases {
        lease_ids.push(client.clone().lease_grant(3600, None).await?.id());
    }
    let lease_ids = Arc::new(lease_ids);

    let first: Vec<(usize, u64)> = (0..spec.objects).map(|i| (i, 0)).collect();
    put_all(client, spec, &first, &lease_ids, &bytes).await?;
    let after_first = client
        .clone()
        .get("/", None)
        .await?
        .header()
        .map_or(0, |h| h.revision());

    let again: Vec<(usize, u64)> = match spec.overwrite_every {
        0 => Vec::new(),
        n => (0..spec.objects).step_by(n).map(|i| (i, 1)).collect(),
    };
    put_all(client, spec, &again, &lease_ids, &bytes).await?;
    let mut deleted = 0;
    if spec.delete_every > 0 {
        for index in (0..spec.objects).skip(1).step_by(spec.delete_every) {
            client.clone().delete(object_key(index), None).await?;
            deleted += 1;
        }
    }
    if spec.compact && after_first > 1 {
        client
            .clone()
            .compact(after_first, Some(CompactionOptions::new().with_physical()))
            .await?;
    }
    let revision = client
        .clone()
        .get("/", None)
        .await?
        .header()
        .map_or(0, |h| h.revision());
    Ok(FillSummary {
        live_keys: spec.objects - deleted,
        revision,
        bytes_written: bytes.load(Ordering::Relaxed),
    })
}

async fn put_all(
    client: &Client,
    spec: &FillSpec,
    items: &[(usize, u64)],
    lease_ids: &Arc<Vec<i64>>,
    bytes: &Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let workers = spec.concurrency.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let mine: Vec<(usize, u64)> = items.iter().copied().skip(worker).step_by(workers).collect();
        let (mut kv, lease_ids, bytes, range) = (
            client.kv_client(),
            lease_ids.clone(),
            bytes.clone(),
            spec.value_bytes,
        );
        tasks.spawn(async move {
            for (index, generation) in mine {
                let value = object_value(index, generation, range);
                bytes.fetch_add(value.len() as u64, Ordering::Relaxed);
                let is_event = index % RESOURCES.len() == RESOURCES.len() - 1;
                let options = match (is_event, lease_ids.is_empty()) {
                    (true, false) => Some(PutOptions::new().with_lease(lease_ids[index % lease_ids.len()])),
                    _ => None,
                };
                kv.put(object_key(index), value, options).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(())
}

/// etcd's default limit of operations in one transaction.
const MAX_TXN_OPS: usize = 128;

/// Writes `count` small keys (`/registry/leases/kube-node-lease/node-N`, ~40-byte values) in
/// transactions of 128 puts: enough entries for bbolt to nest branch pages.
pub async fn fill_small_keys(client: &Client, count: usize) -> anyhow::Result<()> {
    let mut kv = client.kv_client();
    for start in (0..count).step_by(MAX_TXN_OPS) {
        let puts: Vec<etcd_client::TxnOp> = (start..(start + MAX_TXN_OPS).min(count))
            .map(|i| {
                etcd_client::TxnOp::put(
                    format!("/registry/leases/kube-node-lease/node-{i:06}"),
                    format!("{{\"holder\":\"node-{i}\",\"renew\":{i}}}"),
                    None,
                )
            })
            .collect();
        kv.txn(etcd_client::Txn::new().and_then(puts)).await?;
    }
    Ok(())
}

/// Writes `count` values of `bytes` each under `/registry/configmaps/big/`: values larger than
/// a page, so bbolt stores them on overflow pages.
pub async fn fill_large_values(client: &Client, count: usize, bytes: usize) -> anyhow::Result<()> {
    let mut kv = client.kv_client();
    for i in 0..count {
        kv.put(
            format!("/registry/configmaps/big/cm-{i}"),
            object_value(i, 7, (bytes, bytes)),
            None,
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_sized_and_prefixed() {
        let a = object_value(42, 0, (1000, 10000));
        assert_eq!(a, object_value(42, 0, (1000, 10000)));
        assert_ne!(a, object_value(42, 1, (1000, 10000)));
        assert!((1000..=10000).contains(&a.len()));
        assert!(a.starts_with(b"k8s\0"));
        assert_eq!(object_key(8 * 5 + 3), "/registry/deployments/default/obj-0000043");
    }
}
