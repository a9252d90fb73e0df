//! The real kubeadm writes a node tree; the fake kubelet runs its etcd and the real
//! kube-apiserver from the manifests kubeadm wrote, and kubectl on the node's admin.conf sees
//! the cluster the API server bootstrapped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lifeboat_test_support::kubernetes::{kubernetes_binary, kubernetes_version};
use lifeboat_test_support::{KubeadmNode, NodeOptions};

#[test]
fn kubeadm_writes_a_node_whose_api_server_kubectl_reaches() {
    let root = tempfile::tempdir().unwrap();
    let node = KubeadmNode::start(root.path(), &NodeOptions::default()).unwrap();
    let manifest =
        std::fs::read_to_string(root.path().join("etc/kubernetes/manifests/kube-apiserver.yaml")).unwrap();
    assert!(
        manifest.contains(&format!(
            "registry.k8s.io/kube-apiserver:{}",
            kubernetes_version()
        )),
        "{manifest}"
    );
    let namespaces = node.kubectl_ok(&["get", "ns", "-o", "name"], None).unwrap();
    for ns in [
        "namespace/default",
        "namespace/kube-system",
        "namespace/kube-public",
    ] {
        assert!(namespaces.lines().any(|l| l == ns), "{namespaces}");
    }
    let version = node.kubectl_ok(&["version", "-o", "json"], None).unwrap();
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["serverVersion"]["gitVersion"], kubernetes_version());
    node.kubectl_ok(&["create", "configmap", "probe", "--from-literal=a=b"], None)
        .unwrap();
    let value = node
        .kubectl_ok(&["get", "cm", "probe", "-o", "jsonpath={.data.a}"], None)
        .unwrap();
    assert_eq!(value, "b");
    assert!(kubernetes_binary("kubeadm").is_file());
}
