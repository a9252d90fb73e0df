//! One conformance suite for every storage backend: a local directory and a real S3-compatible
//! server (s3s-fs on 127.0.0.1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lifeboat_repo::{Location, S3Settings, Storage};
use lifeboat_test_support::S3Server;

async fn conformance(storage: &Storage) {
    assert_eq!(storage.get("backups/a/manifest.json").await.unwrap(), None);
    storage
        .put("backups/a/manifest.json", b"{}".to_vec())
        .await
        .unwrap();
    storage
        .put("backups/a/etcd-snapshot.db", vec![7; 100_000])
        .await
        .unwrap();
    storage
        .put("backups/b/manifest.json", b"{\"b\":1}".to_vec())
        .await
        .unwrap();
    storage.put("lifeboat-repo.json", b"{}".to_vec()).await.unwrap();
    assert_eq!(
        storage.get("backups/b/manifest.json").await.unwrap().unwrap(),
        b"{\"b\":1}"
    );
    assert_eq!(
        storage.list("backups").await.unwrap(),
        [
            ("backups/a/etcd-snapshot.db".to_string(), 100_000),
            ("backups/a/manifest.json".to_string(), 2),
            ("backups/b/manifest.json".to_string(), 7),
        ]
    );
    storage.delete("backups/a/manifest.json").await.unwrap();
    storage.delete("backups/a/manifest.json").await.unwrap();
    assert_eq!(storage.get("backups/a/manifest.json").await.unwrap(), None);
    assert_eq!(storage.list("backups/a").await.unwrap().len(), 1);
}

#[tokio::test]
async fn local_directory_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let location = Location::parse(&dir.path().join("repo").display().to_string()).unwrap();
    let storage = Storage::open(&location, &S3Settings::default()).unwrap();
    conformance(&storage).await;
}

fn s3_settings(server: &S3Server) -> S3Settings {
    S3Settings {
        access_key_id: Some(server.access_key_id.clone()),
        secret_access_key: Some(server.secret_access_key.clone()),
        region: Some("us-east-1".into()),
        endpoint: Some(server.endpoint.clone()),
        allow_http: false,
    }
}

#[tokio::test]
async fn s3_server_passes_the_suite_and_names_bad_credentials() {
    let server = S3Server::start().unwrap();
    let location = Location::parse(&format!("s3://{}/cluster-a", server.bucket)).unwrap();
    let storage = Storage::open(&location, &s3_settings(&server)).unwrap();
    conformance(&storage).await;
    assert!(
        server
            .bucket_dir()
            .join("cluster-a/backups/b/manifest.json")
            .exists(),
        "the prefix is honoured"
    );

    let wrong = S3Settings {
        secret_access_key: Some("wrong".into()),
        ..s3_settings(&server)
    };
    let error = Storage::open(&location, &wrong)
        .unwrap()
        .get("lifeboat-repo.json")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("s3://lifeboat-test/cluster-a") && error.contains("credentials"),
        "{error}"
    );
    assert!(!error.contains("wrong"), "the secret must not appear: {error}");

    let remote = S3Settings {
        endpoint: Some("http://192.0.2.1:9000".into()),
        ..s3_settings(&server)
    };
    let error = Storage::open(&location, &remote).unwrap_err().to_string();
    assert!(error.contains("plain http"), "{error}");
}
