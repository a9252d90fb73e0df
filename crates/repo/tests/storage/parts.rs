//! The parts of the storage conformance suite, each run on its own prefix of every backend.

use std::io::Read;
use std::time::{Duration, UNIX_EPOCH};

use lifeboat_repo::{
    BackupId, Compression, Description, Encryption, Error, Location, LockKind, LockRecord, LockTiming,
    Manifest, RepoLock, Repository, Storage, StorageSettings, open_sealed,
};
use sha2::{Digest, Sha256};

pub(crate) const PART_SIZE_PLUS: usize = lifeboat_repo::PART_SIZE + 1;

pub(crate) async fn conformance(storage: &Storage) {
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
    // Streaming: several parts, past what is read whole; an aborted upload never appears.
    let big_len = (2 * lifeboat_repo::PART_SIZE).max(lifeboat_repo::SMALL_OBJECT_MAX as usize) + 12345;
    let big: Vec<u8> = (0..big_len).map(|i| (i % 251) as u8).collect();
    let mut upload = storage.upload("backups/c/etcd-snapshot.db").await.unwrap();
    for chunk in big.chunks(1 << 20) {
        upload.write(chunk.to_vec()).await.unwrap();
    }
    upload.finish().await.unwrap();
    let mut download = storage
        .download("backups/c/etcd-snapshot.db")
        .await
        .unwrap()
        .unwrap();
    let mut read = Vec::new();
    while let Some(chunk) = download.next_chunk().await.unwrap() {
        read.extend_from_slice(&chunk);
    }
    assert!(read == big);
    // Read whole, an object past SMALL_OBJECT_MAX (a planted "manifest") is refused.
    assert!(big.len() as u64 > lifeboat_repo::SMALL_OBJECT_MAX);
    assert!(matches!(
        storage.get("backups/c/etcd-snapshot.db").await,
        Err(Error::TooLarge { .. })
    ));
    let mut upload = storage.upload("backups/d/etcd-snapshot.db").await.unwrap();
    upload.write(big[..PART_SIZE_PLUS].to_vec()).await.unwrap();
    upload.abort().await.unwrap();
    assert_eq!(storage.get("backups/d/etcd-snapshot.db").await.unwrap(), None);
    storage.delete("backups/c/etcd-snapshot.db").await.unwrap();

    storage.delete("backups/a/manifest.json").await.unwrap();
    storage.delete("backups/a/manifest.json").await.unwrap();
    assert_eq!(storage.get("backups/a/manifest.json").await.unwrap(), None);
    assert_eq!(storage.list("backups/a").await.unwrap().len(), 1);
}

fn description(now: std::time::SystemTime) -> Description {
    Description {
        kind: "etcd".into(),
        created: lifeboat_repo::timestamp(now),
        host: "node-1".into(),
        tool: "lifeboat test".into(),
        tags: vec!["nightly".into()],
        etcd: None,
        cluster: None,
    }
}

/// A committed backup created at `seconds` with one small artefact.
pub(crate) async fn committed(repo: &Repository, seconds: u64) -> Manifest {
    committed_at(repo, UNIX_EPOCH + Duration::from_secs(seconds)).await
}

/// A committed backup whose ID says `now`, with one small artefact.
async fn committed_at(repo: &Repository, now: std::time::SystemTime) -> Manifest {
    let mut backup = repo.begin(BackupId::new(now));
    backup.start_artefact("etcd-snapshot.db").await.unwrap();
    backup.write(&[1; 10]).await.unwrap();
    backup
        .finish_artefact(hex::encode(Sha256::digest([1; 10])))
        .await
        .unwrap();
    backup.commit(description(now)).await.unwrap()
}

/// A new repository encrypting to `recipient`.
pub(crate) async fn init(storage: &Storage, recipient: String) -> (Repository, Encryption) {
    let encryption = Encryption::Age {
        recipients: vec![recipient],
    };
    let repo = Repository::init(
        storage.clone(),
        encryption.clone(),
        Compression::Zstd { level: 1 },
        UNIX_EPOCH,
    )
    .await
    .unwrap();
    (repo, encryption)
}

/// Repository rules on any storage: init once, manifests make backups, delete removes the
/// manifest first, directories without a manifest are orphans.
async fn repository_rules(storage: Storage) {
    assert!(matches!(
        Repository::open(storage.clone()).await,
        Err(Error::NotARepository { .. })
    ));
    let (repo, encryption) = init(
        &storage,
        age::x25519::Identity::generate().to_public().to_string(),
    )
    .await;
    let again = Repository::init(
        storage.clone(),
        Encryption::None,
        Compression::Zstd { level: 1 },
        UNIX_EPOCH,
    )
    .await;
    assert!(matches!(again, Err(Error::AlreadyInitialized { .. })));
    let reopened = Repository::open(storage.clone()).await.unwrap();
    assert_eq!(reopened.config(), repo.config());
    assert_eq!(reopened.config().encryption, encryption);

    let old = committed(&repo, 1_700_000_000).await;
    let new = committed(&repo, 1_800_000_000).await;
    assert_eq!(
        old.artefacts[0].key,
        format!("backups/{}/etcd-snapshot.db", old.id)
    );
    let interrupted = BackupId::new(UNIX_EPOCH + Duration::from_secs(1_750_000_000));
    storage
        .put(&format!("backups/{interrupted}/etcd-snapshot.db"), vec![2; 10])
        .await
        .unwrap();
    assert_eq!(
        repo.list().await.unwrap().backups,
        [old.clone(), new.clone()],
        "oldest first, no orphan"
    );
    assert_eq!(repo.orphans().await.unwrap(), [interrupted.to_string()]);

    repo.delete(&old.id).await.unwrap();
    assert_eq!(repo.list().await.unwrap().backups, std::slice::from_ref(&new));
    assert!(
        storage
            .list(&format!("backups/{}", old.id))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        repo.delete(&old.id).await,
        Err(Error::NoSuchBackup { .. })
    ));
    assert!(matches!(
        repo.manifest(&old.id).await,
        Err(Error::NoSuchBackup { .. })
    ));
}

/// An artefact streams through zstd and age into storage and reads back exactly; an aborted
/// one leaves nothing.
async fn artefacts(storage: Storage) {
    let identity = age::x25519::Identity::generate();
    let (repo, encryption) = init(&storage, identity.to_public().to_string()).await;
    let id = BackupId::new(UNIX_EPOCH);
    let plain: Vec<u8> = (0..12_000_000u32)
        .map(|i| (i / 1000 % 251) as u8 ^ (i as u8 & 3))
        .collect();
    let mut backup = repo.begin(id.clone());
    backup.start_artefact("etcd-snapshot.db").await.unwrap();
    for chunk in plain.chunks(32 * 1024) {
        backup.write(chunk).await.unwrap();
    }
    let artefact = backup
        .finish_artefact(hex::encode(Sha256::digest(&plain)))
        .await
        .unwrap();
    assert_eq!(artefact.key, format!("backups/{id}/etcd-snapshot.db"));
    assert_eq!(artefact.plain_size, plain.len() as u64);
    assert_eq!(artefact.plain_sha256, hex::encode(Sha256::digest(&plain)));
    let stored = storage.get(&artefact.key).await.unwrap().unwrap();
    assert_eq!(artefact.stored_size, stored.len() as u64);
    assert_eq!(artefact.stored_sha256, hex::encode(Sha256::digest(&stored)));
    assert!(artefact.stored_size < artefact.plain_size / 2, "compressed");
    let mut read_back = Vec::new();
    open_sealed(&artefact.key, &stored[..], &encryption, &[identity])
        .unwrap()
        .read_to_end(&mut read_back)
        .unwrap();
    assert!(read_back == plain, "the artefact reads back exactly");

    // Given up with one artefact complete and one open: nothing of it stays.
    backup.start_artefact("given-up.db").await.unwrap();
    backup.write(&plain[..3_000_000]).await.unwrap();
    backup.abort().await;
    assert_eq!(storage.list(&format!("backups/{id}")).await.unwrap(), []);

    // Names that are not plain file names are refused before anything is written.
    let mut backup = repo.begin(BackupId::new(UNIX_EPOCH + Duration::from_secs(5)));
    for bad in ["../lifeboat-repo.json", "manifest.json", "a/b", ".hidden", ""] {
        assert!(
            matches!(backup.start_artefact(bad).await, Err(Error::ArtefactName { .. })),
            "{bad:?}"
        );
    }
    // Dropped half-way (a cancelled task): the upload is aborted in the background.
    let dropped = backup.id().clone();
    backup.start_artefact("etcd-snapshot.db").await.unwrap();
    backup.write(&plain[..3_000_000]).await.unwrap();
    drop(backup);
    let mut left = storage.list(&format!("backups/{dropped}")).await.unwrap();
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = storage.list(&format!("backups/{dropped}")).await.unwrap();
    }
    assert_eq!(left, []);
    assert_eq!(repo.list().await.unwrap().backups, []);
}

/// Manifests are data from storage: one that does not belong where it lies is reported, never
/// followed.
async fn planted_manifests(storage: Storage) {
    let (repo, _) = init(
        &storage,
        age::x25519::Identity::generate().to_public().to_string(),
    )
    .await;
    let honest = committed(&repo, 1_700_000_000).await;
    let json = serde_json::to_string(&honest).unwrap();
    let planted_id = BackupId::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let honest_key = honest.artefacts[0].key.clone();
    let cases = [
        // Points at the repository's config.
        json.replace(honest.id.as_str(), planted_id.as_str()).replace(
            &format!("backups/{planted_id}/etcd-snapshot.db"),
            "lifeboat-repo.json",
        ),
        // Points at another backup's object.
        json.replace(
            &format!("\"id\": \"{}\"", honest.id),
            &format!("\"id\": \"{planted_id}\""),
        )
        .replace(
            &format!("\"id\":\"{}\"", honest.id),
            &format!("\"id\":\"{planted_id}\""),
        ),
        // Claims another ID than its directory's.
        json.clone(),
        // An artefact name that is a path.
        json.replace(honest.id.as_str(), planted_id.as_str())
            .replace("\"etcd-snapshot.db\"", "\"../x\""),
        // An unknown kind.
        json.replace(honest.id.as_str(), planted_id.as_str())
            .replace("\"kind\":\"etcd\"", "\"kind\":\"other\""),
    ];
    for (index, planted) in cases.iter().enumerate() {
        storage
            .put(
                &format!("backups/{planted_id}/manifest.json"),
                planted.as_bytes().to_vec(),
            )
            .await
            .unwrap();
        let error = repo.manifest(&planted_id).await.unwrap_err();
        assert!(matches!(error, Error::Forged { .. }), "case {index}: {error}");
        let listing = repo.list().await.unwrap();
        assert_eq!(listing.backups, std::slice::from_ref(&honest), "case {index}");
        assert_eq!(listing.unreadable.len(), 1, "case {index}");
        assert_eq!(listing.unreadable[0].0, planted_id.to_string());
    }
    assert!(
        cases[1].contains(&honest_key),
        "the second case points at the honest object"
    );
    // A manifest in a directory that is no backup ID is reported too.
    storage
        .put("backups/not-an-id/manifest.json", json.into_bytes())
        .await
        .unwrap();
    let listing = repo.list().await.unwrap();
    assert!(listing.unreadable.iter().any(|(name, _)| name == "not-an-id"));
}

/// Objects that lie about their size stop being read at the size their manifest records: a
/// decompression bomb, a stored object longer than recorded, an oversized manifest.
async fn hostile_objects(storage: Storage) {
    let identity = age::x25519::Identity::generate();
    let (repo, _) = init(&storage, identity.to_public().to_string()).await;
    // 64 MiB of zeros compress to a few kilobytes.
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut backup = repo.begin(BackupId::new(now));
    backup.start_artefact("etcd-snapshot.db").await.unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        backup.write(&zeros).await.unwrap();
    }
    let plain_sha256 = hex::encode(Sha256::digest(vec![0u8; 64 << 20]));
    backup.finish_artefact(plain_sha256).await.unwrap();
    let honest = backup.commit(description(now)).await.unwrap();
    let mut crafted = honest.clone();
    crafted.artefacts[0].plain_size = 1000;
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = CountingSink(written.clone());
    let error = repo
        .read_plain(&crafted.artefacts[0], vec![identity.clone()], sink, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, Error::TooLarge { limit: 1000, .. }), "{error}");
    assert!(error.to_string().contains("damaged or crafted"), "{error}");
    assert!(written.load(std::sync::atomic::Ordering::SeqCst) <= 1000);
    let mut crafted = honest.clone();
    crafted.artefacts[0].stored_size = 100;
    let error = repo
        .read_stored(&crafted.artefacts[0], &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, Error::TooLarge { limit: 100, .. }), "{error}");
    // A manifest past the bound is reported among the unreadable, never read whole.
    let planted = BackupId::new(now + Duration::from_secs(60));
    storage
        .put(
            &format!("backups/{planted}/manifest.json"),
            vec![b' '; lifeboat_repo::SMALL_OBJECT_MAX as usize + 1],
        )
        .await
        .unwrap();
    let listing = repo.list().await.unwrap();
    assert_eq!(listing.backups, std::slice::from_ref(&honest));
    assert!(matches!(listing.unreadable[..], [(_, Error::TooLarge { .. })]));
}

/// Counts what reaches it.
#[derive(Debug)]
struct CountingSink(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::SeqCst);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Two writers of one backup ID (two copies of one backup): the second never writes into the
/// committed backup, and giving up never deletes it, even when it began before the commit.
async fn concurrent_writers(storage: Storage) {
    let identity = age::x25519::Identity::generate();
    let (repo, _) = init(&storage, identity.to_public().to_string()).await;
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let id = BackupId::new(now);
    // The loser began first and completed an artefact of its own name.
    let mut loser = repo.begin(id.clone());
    loser.start_artefact("other.db").await.unwrap();
    loser.write(&[2; 10]).await.unwrap();
    loser
        .finish_artefact(hex::encode(Sha256::digest([2; 10])))
        .await
        .unwrap();
    let mut winner = repo.begin(id.clone());
    winner.start_artefact("etcd-snapshot.db").await.unwrap();
    winner.write(&[1; 10]).await.unwrap();
    winner
        .finish_artefact(hex::encode(Sha256::digest([1; 10])))
        .await
        .unwrap();
    let committed = winner.commit(description(now)).await.unwrap();
    // Too late to write, and its abort leaves the committed backup whole.
    assert!(matches!(
        loser.start_artefact("etcd-snapshot.db").await,
        Err(Error::BackupExists { .. })
    ));
    loser.abort().await;
    assert_eq!(
        repo.list().await.unwrap().backups,
        std::slice::from_ref(&committed)
    );
    let (plain, read) = repo
        .read_plain(&committed.artefacts[0], vec![identity], Vec::new(), &|_| {})
        .await
        .unwrap();
    assert_eq!(plain, [1; 10]);
    assert!(committed.artefacts[0].mismatches(&read).is_empty());
    assert_eq!(
        storage.list(&format!("backups/{id}")).await.unwrap().len(),
        2,
        "the loser's own artefact is gone: {:?}",
        storage.list(&format!("backups/{id}")).await.unwrap()
    );
}

/// The lock protocol: shared locks coexist, an exclusive one excludes every other, a writer's
/// claim excludes another writer of that ID only; stale locks are ignored and listed as such.
async fn locks(storage: Storage) {
    let (repo, _) = init(
        &storage,
        age::x25519::Identity::generate().to_public().to_string(),
    )
    .await;
    let refused = |result: Result<RepoLock, Error>, holder: &str| match result {
        Err(error @ Error::Locked { .. }) => {
            let text = error.to_string();
            assert!(text.contains(holder) && text.contains("repo unlock"), "{text}");
        }
        other => panic!("not refused: {other:?}"),
    };
    let backup = repo.lock("backup", LockKind::Shared).await.unwrap();
    let drill = repo.lock("drill", LockKind::Shared).await.unwrap();
    // Either holder may be named: whichever the listing shows first.
    refused(repo.lock("forget", LockKind::Exclusive).await, " on host ");
    backup.ensure_held().unwrap();
    backup.release().await;
    refused(repo.lock("forget", LockKind::Exclusive).await, "drill");
    drill.release().await;
    let forget = repo.lock("forget", LockKind::Exclusive).await.unwrap();
    refused(repo.lock("backup", LockKind::Shared).await, "forget");
    refused(repo.lock("repo prune", LockKind::Exclusive).await, "forget");
    forget.release().await;
    assert!(repo.locks().await.unwrap().is_empty(), "released locks are gone");

    let id = BackupId::new(UNIX_EPOCH);
    let other = BackupId::new(UNIX_EPOCH + Duration::from_secs(1));
    let copy = repo.lock("copy", LockKind::Writing(id.clone())).await.unwrap();
    refused(
        repo.lock("copy", LockKind::Writing(id.clone())).await,
        &format!("copy writing {id}"),
    );
    let second = repo.lock("copy", LockKind::Writing(other)).await.unwrap();
    second.release().await;
    copy.release().await;

    // A holder that died: its lock expired. It is ignored, and listed as stale.
    let dead = LockRecord {
        exclusive: true,
        backup: None,
        operation: "forget".into(),
        host: "gone-host".into(),
        pid: 1,
        pid_namespace: None,
        created: lifeboat_repo::timestamp(UNIX_EPOCH),
        expires: lifeboat_repo::timestamp(UNIX_EPOCH + Duration::from_secs(300)),
    };
    storage
        .put("locks/dead.json", serde_json::to_vec(&dead).unwrap())
        .await
        .unwrap();
    let live = LockRecord {
        expires: lifeboat_repo::timestamp(std::time::SystemTime::now() + Duration::from_secs(300)),
        ..dead.clone()
    };
    storage
        .put("locks/live.json", serde_json::to_vec(&live).unwrap())
        .await
        .unwrap();
    refused(
        repo.lock("backup", LockKind::Shared).await,
        "forget on host gone-host",
    );
    storage.delete("locks/live.json").await.unwrap();
    let backup = repo.lock("backup", LockKind::Shared).await.unwrap();
    let listed = repo.locks().await.unwrap();
    assert_eq!(listed.len(), 2);
    let stale: Vec<bool> = listed
        .iter()
        .map(|l| l.record.as_ref().unwrap().is_stale(std::time::SystemTime::now()))
        .collect();
    assert_eq!(stale.iter().filter(|s| **s).count(), 1, "{listed:?}");
    backup.release().await;
    repo.remove_lock("locks/dead.json").await.unwrap();

    // Held, a lock is refreshed; removed from under its holder (`repo unlock --remove-all`), it
    // is lost at the next refresh, and the holder commits nothing more.
    let timing = LockTiming {
        validity: Duration::from_secs(30),
        refresh: Duration::from_millis(200),
    };
    let held = repo.lock_timed("copy", LockKind::Shared, timing).await.unwrap();
    let first = lock_expiry(&repo).await;
    let mut refreshed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if lock_expiry(&repo).await != first {
            refreshed = true;
            break;
        }
    }
    assert!(refreshed, "the expiry moved forward");
    held.ensure_held().unwrap();
    let key = repo.locks().await.unwrap()[0].key.clone();
    repo.remove_lock(&key).await.unwrap();
    let mut lost = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Err(error) = held.ensure_held() {
            lost = Some(error.to_string());
            break;
        }
    }
    let lost = lost.expect("the holder learns its lock is gone");
    assert!(lost.contains("was lost") && lost.contains("removed"), "{lost}");
    held.release().await;
}

/// The expiry of the one lock `repo` holds.
async fn lock_expiry(repo: &Repository) -> String {
    let locks = repo.locks().await.unwrap();
    locks[0].record.as_ref().unwrap().expires.clone()
}

/// An upload whose process died (its [`lifeboat_repo::Upload`] neither finished nor aborted) is
/// listed where the storage can list them (`lists`), under its key and only in its own
/// repository, and is gone once aborted.
async fn open_uploads(storage: Storage, sibling: Storage, lists: bool) {
    let key = "backups/x/etcd-snapshot.db";
    for storage in [&storage, &sibling] {
        let mut upload = storage.upload(key).await.unwrap();
        upload.write(vec![5; 1 << 20]).await.unwrap();
        // As a crash leaves it: object_store aborts nothing on drop, and nothing runs here.
        std::mem::forget(upload);
    }
    let Some(found) = storage.open_uploads().await.unwrap() else {
        assert!(!lists, "{} must list its open uploads", storage.repo());
        return;
    };
    assert!(lists, "{} was not expected to list open uploads", storage.repo());
    let keys: Vec<&str> = found.iter().map(|u| u.key.as_str()).collect();
    assert_eq!(keys, [key], "one upload, and not the sibling repository's");
    let age = std::time::SystemTime::now()
        .duration_since(found[0].started)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(600), "{age:?}");
    storage.abort_open_upload(&found[0]).await.unwrap();
    assert_eq!(storage.open_uploads().await.unwrap(), Some(Vec::new()));
    assert_eq!(
        storage.get(key).await.unwrap(),
        None,
        "an aborted upload never appears"
    );
    // Aborting what another prune already aborted is not an error.
    storage.abort_open_upload(&found[0]).await.unwrap();
    let left = sibling.open_uploads().await.unwrap().unwrap();
    assert_eq!(left.len(), 1, "the sibling's upload is not touched");
    sibling.abort_open_upload(&left[0]).await.unwrap();
}

/// The whole suite, each part on its own prefix of one backend: `base` is the location
/// without a trailing slash (a directory, or scheme://bucket); `lists_uploads` says whether the
/// backend lists open uploads.
pub(crate) async fn suite(base: &str, settings: &StorageSettings, lists_uploads: bool) {
    let open =
        |part: &str| Storage::open(&Location::parse(&format!("{base}/{part}")).unwrap(), settings).unwrap();
    suite_on(open, lists_uploads).await;
}

/// The suite's parts, each on the storage `open` gives for its own part's name.
pub(crate) async fn suite_on(open: impl Fn(&str) -> Storage, lists_uploads: bool) {
    conformance(&open("conformance")).await;
    repository_rules(open("rules")).await;
    artefacts(open("artefacts")).await;
    planted_manifests(open("planted")).await;
    hostile_objects(open("hostile")).await;
    concurrent_writers(open("concurrent")).await;
    locks(open("locks")).await;
    clock_ahead(open("clock")).await;
    // A sibling whose name extends the other's: prefixes end at a `/`.
    open_uploads(open("uploads"), open("uploads-other"), lists_uploads).await;
}

/// A node whose clock runs a day ahead names its backup in the future: the listing orders it
/// by when the storage received it, so a backup made after it is the newest (`latest`, and
/// what retention keeps), and the skew is named.
async fn clock_ahead(storage: Storage) {
    let (repo, _) = init(
        &storage,
        age::x25519::Identity::generate().to_public().to_string(),
    )
    .await;
    let day = Duration::from_secs(86_400);
    let ahead = committed_at(&repo, std::time::SystemTime::now() + day).await;
    // IDs name milliseconds while a file's time is finer: within one millisecond the later
    // backup's ID may read earlier than the first one's storage time.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let later = committed_at(&repo, std::time::SystemTime::now()).await;
    let listing = repo.list().await.unwrap();
    let ids: Vec<&BackupId> = listing.backups.iter().map(|m| &m.id).collect();
    assert_eq!(ids, [&ahead.id, &later.id]);
    let skew = listing.backups[0].clock_ahead().unwrap();
    // Storage times may be whole seconds.
    assert!(
        skew > day - Duration::from_secs(600) && skew < day + Duration::from_secs(2),
        "{skew:?}"
    );
    assert_eq!(listing.backups[1].clock_ahead(), None);
    assert!(listing.backups[0].time() <= listing.backups[1].time());
    // An ID behind the storage's time (a copy stores an old backup late) keeps its own time.
    let old = committed(&repo, 1_000).await;
    let listing = repo.list().await.unwrap();
    assert_eq!(listing.backups[0].id, old.id);
    assert_eq!(listing.backups[0].time(), old.id.time());
}
