//! One conformance suite for every storage backend (parts.rs): memory, a local directory, a
//! real S3-compatible server (s3s-fs), Garage (which lists multipart uploads), Azurite, and
//! fake-gcs-server, each on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod parts;

use std::time::{Duration, UNIX_EPOCH};

use lifeboat_repo::{BackupId, Error, Location, Repository, Storage, StorageSettings};
use lifeboat_test_support::{AzureServer, FaultyProxy, GARAGE_REGION, GarageServer, GcsServer, S3Server};
use parts::{PART_SIZE_PLUS, committed, conformance, init, suite, suite_on};

/// The in-memory backend unit tests use behaves as every other (it lists no open uploads:
/// an unfinished one lives only in the process that began it).
#[tokio::test]
async fn memory_passes_the_suite() {
    let memory = Storage::in_memory();
    conformance(&memory.within("conformance-root")).await;
    suite_on(|part| memory.within(part), false).await;
}

#[tokio::test]
async fn local_directory_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    suite(
        &dir.path().display().to_string(),
        &StorageSettings::default(),
        true,
    )
    .await;
}

/// Google Cloud Storage through fake-gcs-server: it does not implement the XML API uploads
/// object_store writes with (fsouza/fake-gcs-server#852), so a repository written to a
/// directory is uploaded through the emulator's JSON API; lifeboat then opens, lists, reads,
/// decrypts, refuses a planted manifest and deletes over `gs://`.
#[tokio::test]
async fn google_cloud_storage_reads_lists_and_deletes_a_repository() {
    let server = GcsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = Storage::open(
        &Location::parse(&dir.path().display().to_string()).unwrap(),
        &StorageSettings::default(),
    )
    .unwrap();
    let identity = age::x25519::Identity::generate();
    let (written, _) = init(&local, identity.to_public().to_string()).await;
    let backup = committed(&written, 1_700_000_000).await;
    let planted = BackupId::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let forged = serde_json::to_string(&backup)
        .unwrap()
        .replace(backup.id.as_str(), planted.as_str())
        .replace(
            &format!("backups/{planted}/etcd-snapshot.db"),
            "lifeboat-repo.json",
        );
    local
        .put(&format!("backups/{planted}/manifest.json"), forged.into_bytes())
        .await
        .unwrap();
    for (key, _) in local.list("").await.unwrap() {
        let bytes = local.get(&key).await.unwrap().unwrap();
        server.upload(&format!("cluster-a/{key}"), &bytes).unwrap();
    }

    let settings = StorageSettings {
        config: server.config(),
        ..StorageSettings::default()
    };
    let location = Location::parse(&format!(
        "gs://{}/cluster-a",
        lifeboat_test_support::cloud::BUCKET
    ))
    .unwrap();
    let repo = Repository::open(Storage::open(&location, &settings).unwrap())
        .await
        .unwrap();
    assert_eq!(repo.config(), written.config());
    let listing = repo.list().await.unwrap();
    assert_eq!(listing.backups, std::slice::from_ref(&backup));
    assert_eq!(listing.unreadable.len(), 1);
    assert!(matches!(repo.manifest(&planted).await, Err(Error::Forged { .. })));
    let artefact = &backup.artefacts[0];
    let (plain, read) = repo
        .read_plain(artefact, vec![identity], Vec::new(), &|_| {})
        .await
        .unwrap();
    assert_eq!(plain, [1; 10]);
    assert!(artefact.mismatches(&read).is_empty());
    repo.delete(&backup.id).await.unwrap();
    assert_eq!(repo.list().await.unwrap().backups, []);
    assert_eq!(
        repo.storage()
            .list(&format!("backups/{}", backup.id))
            .await
            .unwrap(),
        []
    );
}

#[tokio::test]
async fn azure_blob_storage_passes_the_suite() {
    let server = AzureServer::start().unwrap();
    let settings = StorageSettings {
        config: server.config(),
        ..StorageSettings::default()
    };
    suite(
        &format!("az://{}", lifeboat_test_support::cloud::BUCKET),
        &settings,
        false,
    )
    .await;
}

fn s3_settings(server: &S3Server) -> StorageSettings {
    StorageSettings {
        access_key_id: Some(server.access_key_id.clone()),
        secret_access_key: Some(server.secret_access_key.clone()),
        region: Some("us-east-1".into()),
        endpoint: Some(server.endpoint.clone()),
        allow_http: false,
        config: Vec::new(),
    }
}

#[tokio::test]
async fn s3_server_passes_the_suite_and_names_bad_credentials() {
    let server = S3Server::start().unwrap();
    let location = Location::parse(&format!("s3://{}/cluster-a", server.bucket)).unwrap();
    let storage = Storage::open(&location, &s3_settings(&server)).unwrap();
    conformance(&storage).await;
    // s3s-fs does not implement ListMultipartUploads (Garage's test lists them).
    suite(&format!("s3://{}", server.bucket), &s3_settings(&server), false).await;
    assert!(
        server
            .bucket_dir()
            .join("cluster-a/backups/b/manifest.json")
            .exists(),
        "the prefix is honoured"
    );

    let wrong = StorageSettings {
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

    // The server dies mid-upload: the upload fails, naming the repository and the object.
    let mut upload = storage.upload("backups/e/etcd-snapshot.db").await.unwrap();
    upload.write(vec![3; PART_SIZE_PLUS]).await.unwrap();
    let mut server = server;
    server.kill();
    let mut result = upload.write(vec![3; PART_SIZE_PLUS]).await;
    if result.is_ok() {
        result = upload.finish().await;
    }
    let error = result.unwrap_err().to_string();
    assert!(error.contains("backups/e/etcd-snapshot.db"), "{error}");

    let remote = StorageSettings {
        endpoint: Some("http://192.0.2.1:9000".into()),
        ..s3_settings(&server)
    };
    let error = Storage::open(&location, &remote).unwrap_err().to_string();
    assert!(error.contains("plain http"), "{error}");
}

/// Garage implements ListMultipartUploads: the suite lists and aborts open multipart uploads,
/// and Garage's own count (its admin API, not S3) confirms one begins and the abort ends it.
#[tokio::test]
async fn garage_passes_the_suite_and_aborts_open_uploads() {
    let server = GarageServer::start().unwrap();
    let settings = StorageSettings {
        access_key_id: Some(GarageServer::ACCESS_KEY_ID.into()),
        secret_access_key: Some(GarageServer::SECRET_ACCESS_KEY.into()),
        region: Some(GARAGE_REGION.into()),
        endpoint: Some(server.endpoint.clone()),
        allow_http: false,
        config: Vec::new(),
    };
    suite(&format!("s3://{}", GarageServer::BUCKET), &settings, true).await;
    assert_eq!(server.unfinished_multipart_uploads().unwrap(), 0);

    let location = Location::parse(&format!("s3://{}/crashed", GarageServer::BUCKET)).unwrap();
    let storage = Storage::open(&location, &settings).unwrap();
    let mut upload = storage.upload("backups/y/etcd-snapshot.db").await.unwrap();
    upload.write(vec![9; PART_SIZE_PLUS]).await.unwrap();
    std::mem::forget(upload);
    assert_eq!(server.unfinished_multipart_uploads().unwrap(), 1);
    let found = storage.open_uploads().await.unwrap().unwrap();
    assert_eq!(found.len(), 1);
    storage.abort_open_upload(&found[0]).await.unwrap();
    assert_eq!(server.unfinished_multipart_uploads().unwrap(), 0);
}

/// Transient 503s (an overloaded S3) are retried with backoff until the server answers; a
/// server that keeps failing is given up after the bounded retries, named in one error.
#[tokio::test]
async fn transient_failures_are_retried_with_backoff() {
    let server = S3Server::start().unwrap();
    let location = Location::parse(&format!("s3://{}/retries", server.bucket)).unwrap();
    let direct = Storage::open(&location, &s3_settings(&server)).unwrap();
    direct.put("backups/x/object", b"payload".to_vec()).await.unwrap();
    let upstream: u16 = server.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let through = |proxy: &FaultyProxy| {
        let settings = StorageSettings {
            endpoint: Some(proxy.endpoint.clone()),
            ..s3_settings(&server)
        };
        Storage::open(&location, &settings).unwrap()
    };

    let flaky = FaultyProxy::start(upstream, 3).unwrap();
    let read = through(&flaky).get("backups/x/object").await.unwrap();
    assert_eq!(read.as_deref(), Some(&b"payload"[..]));
    assert_eq!(flaky.failed(), 3, "three 503s, then the real answer");

    let down = FaultyProxy::start(upstream, usize::MAX).unwrap();
    let error = through(&down)
        .get("backups/x/object")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(down.failed(), 6, "the first attempt and five retries");
    assert!(
        error.contains("backups/x/object") && error.contains("503"),
        "{error}"
    );
}
