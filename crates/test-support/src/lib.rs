//! The test rig: real etcd 3.4 to 3.7 (`EtcdVersion` names the releases) on 127.0.0.1 at free ports, a kubeadm-shaped PKI,
//! Kubernetes-like data, and helpers to run the `lifeboat` binary. Used by integration tests,
//! the demo and the benchmarks (through the `lifeboat-testbed` binary).
//!
//! Never exports `ETCD_*` or `ETCDCTL_*` variables, and removes them from what it starts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cloud;
pub mod etcd;
pub mod faulty;
pub mod fill;
pub mod garage;
pub mod kubelet;
pub mod kubernetes;
pub mod pki;
pub mod postgres;
pub mod s3;
pub mod stalling;
pub mod tmpfs;

pub use cloud::{AzureServer, GcsServer};
pub use etcd::{
    EtcdConfig, EtcdServer, EtcdVersion, ExistingMember, clear_etcd_env, client_options, free_port,
};
pub use faulty::FaultyProxy;
pub use fill::{FillSpec, FillSummary, fill, fill_large_values, fill_small_keys};
pub use garage::{GARAGE_REGION, GarageServer};
pub use kubelet::FakeKubelet;
pub use kubernetes::{KubeadmNode, NodeOptions};
pub use pki::{Pki, apiserver_pki, control_plane_tree};
pub use postgres::PostgresServer;
pub use s3::S3Server;
pub use stalling::StallingProxy;
pub use tmpfs::Tmpfs;
