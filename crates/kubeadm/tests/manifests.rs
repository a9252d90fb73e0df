//! Manifests of the shapes kubeadm writes (written for these tests from kubeadm's documented flag
//! list) and operators' variants: single member, joined IPv6 member, `--flag value` in args, a
//! custom data dir under nested mounts, a flag given twice, rootless; and the refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use lifeboat_kubeadm::{Error, InitialMember, parse_etcd_manifest};

fn manifest(name: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/manifests")
            .join(name),
    )
    .unwrap()
}

#[test]
fn a_first_control_plane_node() {
    let etcd = parse_etcd_manifest("etcd.yaml", &manifest("single.yaml")).unwrap();
    assert_eq!(etcd.name, "cp-1");
    assert_eq!(etcd.data_dir, PathBuf::from("/var/lib/etcd"));
    assert_eq!(etcd.host_data_dir, PathBuf::from("/var/lib/etcd"));
    assert_eq!(
        etcd.host_data_dir.as_os_str(),
        "/var/lib/etcd",
        "no trailing slash"
    );
    assert_eq!(
        etcd.initial_cluster,
        [InitialMember {
            name: "cp-1".into(),
            peer_url: "https://10.0.0.11:2380".into()
        }]
    );
    assert_eq!(etcd.initial_cluster_state, None);
    assert_eq!(etcd.initial_advertise_peer_urls, ["https://10.0.0.11:2380"]);
    assert_eq!(
        etcd.listen_client_urls,
        ["https://127.0.0.1:2379", "https://10.0.0.11:2379"]
    );
    assert_eq!(
        etcd.cert_file,
        Some(PathBuf::from("/etc/kubernetes/pki/etcd/server.crt"))
    );
    assert_eq!(
        etcd.trusted_ca_file,
        Some(PathBuf::from("/etc/kubernetes/pki/etcd/ca.crt"))
    );
    assert_eq!(etcd.image_version.as_deref(), Some("3.5.15"));
    assert_eq!((etcd.run_as_user, etcd.run_as_group), (None, None));
    assert_eq!(etcd.flags["client-cert-auth"], "true");
}

#[test]
fn a_joined_member_of_an_ipv6_cluster() {
    let etcd = parse_etcd_manifest("etcd.yaml", &manifest("joined-ipv6.yaml")).unwrap();
    assert_eq!(etcd.name, "cp-3");
    let names: Vec<&str> = etcd.initial_cluster.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["cp-1", "cp-2", "cp-3"]);
    assert_eq!(etcd.initial_cluster[2].peer_url, "https://[2001:db8::13]:2380");
    assert_eq!(etcd.initial_cluster_state.as_deref(), Some("existing"));
    assert_eq!(etcd.advertise_client_urls, ["https://[2001:db8::13]:2379"]);
    assert_eq!(etcd.image_version.as_deref(), Some("3.5.9"));
}

#[test]
fn args_in_both_forms_a_nested_data_mount_and_a_rootless_member() {
    let etcd = parse_etcd_manifest("etcd.yaml", &manifest("custom-rootless-args.yaml")).unwrap();
    assert_eq!(etcd.name, "cp-2");
    assert_eq!(etcd.data_dir, PathBuf::from("/data/etcd/member-data"));
    // The deepest mount holding the data dir decides where it lies on the node.
    assert_eq!(etcd.host_data_dir, PathBuf::from("/mnt/fast/etcd/member-data"));
    assert_eq!(etcd.initial_cluster.len(), 2);
    assert_eq!(etcd.initial_cluster[1].peer_url, "https://10.0.0.12:2380");
    assert_eq!(etcd.flags["snapshot-count"], "5000", "the last value wins");
    assert_eq!(etcd.flags["client-cert-auth"], "true");
    assert_eq!(etcd.image_version.as_deref(), Some("3.4.23"));
    // The container's security context overrides the Pod's.
    assert_eq!((etcd.run_as_user, etcd.run_as_group), (Some(2000), Some(2001)));
}

#[test]
fn what_a_restore_cannot_work_from_is_refused_by_name() {
    let single = manifest("single.yaml");
    let cases: Vec<(String, &str)> = vec![
        (single.replace("    - --name=cp-1\n", ""), "has no --name"),
        (
            single.replace("name: etcd\n    resources", "name: not-etcd\n    resources"),
            "container named etcd",
        ),
        (
            single.replace("--initial-cluster=cp-1=", "--initial-cluster=cp-9="),
            "does not name this member",
        ),
        (
            single.replace(
                "--initial-cluster=cp-1=https://10.0.0.11:2380",
                "--initial-cluster=cp-1",
            ),
            "name=peer-url",
        ),
        (
            single.replace("--data-dir=/var/lib/etcd", "--data-dir=etcd"),
            "absolute path",
        ),
        (
            single.replace("path: /var/lib/etcd,", "path: relative,"),
            "no hostPath volume",
        ),
        ("kind: [".to_string(), "not valid YAML"),
        (String::new(), "container named etcd"),
        ("just a string".to_string(), "not valid YAML"),
    ];
    for (text, expected) in cases {
        let error = parse_etcd_manifest("etcd.yaml", &text).unwrap_err();
        let line = error.to_string();
        assert!(line.contains(expected), "{expected:?} in {line}");
        assert!(line.starts_with("etcd.yaml"), "{line}");
        assert!(!line.contains('\n'), "{line}");
        assert!(!matches!(error, Error::StaticPodPath { .. }));
    }
}
