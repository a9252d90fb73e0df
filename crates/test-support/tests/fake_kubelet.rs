//! The fake kubelet runs the etcd static Pod of a node tree as a real etcd with the manifest's
//! flags, stops it when the manifest leaves the static Pod directory (the kubelet's
//! staticPodPath, here a custom one), and starts it again, data kept, when it comes back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use lifeboat_test_support::kubelet::under;
use lifeboat_test_support::{EtcdVersion, FakeKubelet, free_port};

fn manifest(client: &str, peer: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: etcd, namespace: kube-system}}\nspec:\n  containers:\n  - name: etcd\n    image: registry.k8s.io/etcd:3.5.1-0\n    command:\n    - etcd\n    - --name=cp-1\n    - --data-dir=/var/lib/etcd\n    - --listen-client-urls={client}\n    - --advertise-client-urls={client}\n    - --listen-peer-urls={peer}\n    - --initial-advertise-peer-urls={peer}\n    - --initial-cluster=cp-1={peer}\n    volumeMounts:\n    - {{mountPath: /var/lib/etcd, name: etcd-data}}\n  volumes:\n  - {{name: etcd-data, hostPath: {{path: /srv/etcd}}}}\n"
    )
}

async fn answers(client_url: &str) -> bool {
    let options = etcd_client::ConnectOptions::new().with_connect_timeout(Duration::from_millis(300));
    match etcd_client::Client::connect([client_url], Some(options)).await {
        Ok(mut client) => client.status().await.is_ok(),
        Err(_) => false,
    }
}

async fn wait_for(what: &str, client_url: &str, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while answers(client_url).await != up {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_etcd_static_pod_runs_while_its_manifest_is_in_the_static_pod_path() {
    let root = tempfile::tempdir().unwrap();
    let kubelet_dir = root.path().join("var/lib/kubelet");
    std::fs::create_dir_all(&kubelet_dir).unwrap();
    std::fs::write(
        kubelet_dir.join("config.yaml"),
        "kind: KubeletConfiguration\nstaticPodPath: /srv/pods\n",
    )
    .unwrap();
    let pods = under(root.path(), Path::new("/srv/pods"));
    std::fs::create_dir_all(&pods).unwrap();
    let client = format!("http://127.0.0.1:{}", free_port().unwrap());
    let peer = format!("http://127.0.0.1:{}", free_port().unwrap());
    std::fs::write(pods.join("etcd.yaml"), manifest(&client, &peer)).unwrap();
    let log = root.path().join("etcd.log");
    let kubelet = FakeKubelet::start(root.path(), &EtcdVersion::V3_5.etcd(), &log).unwrap();

    wait_for("etcd starts from its manifest", &client, true).await;
    // The data directory is the hostPath, under the root.
    assert!(root.path().join("srv/etcd/member/snap/db").exists());
    let mut etcd = etcd_client::Client::connect([client.as_str()], None)
        .await
        .unwrap();
    etcd.put("/registry/namespaces/default", "ns", None)
        .await
        .unwrap();

    // Moved out of the directory: stopped. A dot file there is not a Pod.
    let aside = root.path().join("etcd.yaml");
    std::fs::rename(pods.join("etcd.yaml"), &aside).unwrap();
    std::fs::write(pods.join(".etcd.yaml.swp"), manifest(&client, &peer)).unwrap();
    wait_for("etcd stops once its manifest is gone", &client, false).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while kubelet.etcd_pid().is_some() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kubelet.etcd_pid(), None);

    // Back: running again, with its data.
    std::fs::rename(&aside, pods.join("etcd.yaml")).unwrap();
    wait_for("etcd starts again", &client, true).await;
    let mut etcd = etcd_client::Client::connect([client.as_str()], None)
        .await
        .unwrap();
    let got = etcd.get("/registry/namespaces/default", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"ns");
    let pid = kubelet.etcd_pid().unwrap();
    drop(kubelet);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "etcd stops with the kubelet"
    );
}
