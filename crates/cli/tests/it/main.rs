//! Integration tests of the `lifeboat` binary against real etcd servers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod agent;
mod agent_access;
mod agent_alerts;
mod agent_capture;
mod agent_clusters;
mod agent_election;
mod agent_storage;
mod common;
mod concurrency;
mod drill;
mod errors;
mod hashkv;
mod k8s;
mod kube;
mod kube_history;
mod kube_recover;
mod open_uploads;
mod pitr;
mod pitr_faults;
mod recover;
mod recover_safety;
mod repository;
mod restore;
mod robustness;
mod save;
mod save_faults;
mod status;
mod unchanged;
