//! `snapshot restore` against real etcd 3.4 to 3.7: the directories boot on the version that
//! wrote the snapshot (and on the next minor), serve every key exactly as the source did at the
//! snapshot, accept writes, form multi-member clusters, and hold what the reference tool of that
//! version writes: the same buckets (membership, meta, cluster, keys), the same WAL, byte for
//! byte, and the same `.snap`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use etcd_client::{GetOptions, WatchOptions};
use lifeboat_test_support::{EtcdConfig, EtcdServer, EtcdVersion, ExistingMember, FillSpec, fill, free_port};

use crate::common::*;

/// key → (value, create_revision, mod_revision, version, lease)
pub type Dump = BTreeMap<Vec<u8>, (Vec<u8>, i64, i64, i64, i64)>;

pub async fn dump(server: &EtcdServer) -> (Dump, i64) {
    let mut client = server.member().await.unwrap().client();
    let response = client
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .unwrap();
    let revision = response.header().unwrap().revision();
    let keys = response
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key().to_vec(),
                (
                    kv.value().to_vec(),
                    kv.create_revision(),
                    kv.mod_revision(),
                    kv.version(),
                    kv.lease(),
                ),
            )
        })
        .collect();
    (keys, revision)
}

/// A filled source and a snapshot of it.
async fn source(version: EtcdVersion, dir: &Path) -> (EtcdServer, PathBuf) {
    let server = EtcdServer::start(EtcdConfig::new(version)).await.unwrap();
    fill(&server.member().await.unwrap().client(), &FillSpec::small())
        .await
        .unwrap();
    let file = dir.join("source.db");
    run_ok(&mut save_command(&server, &file));
    (server, file)
}

pub struct Plan {
    pub initial_cluster: String,
    pub members: Vec<ExistingMember>,
}

fn plan(dir: &Path, names: &[&str]) -> Plan {
    let members: Vec<ExistingMember> = names
        .iter()
        .map(|name| ExistingMember {
            name: name.to_string(),
            data_dir: dir.join(format!("{name}.etcd")),
            peer_url: format!("http://127.0.0.1:{}", free_port().unwrap()),
        })
        .collect();
    let initial_cluster = members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url))
        .collect::<Vec<_>>()
        .join(",");
    Plan {
        initial_cluster,
        members,
    }
}

pub fn restore_args(plan: &Plan, member: &ExistingMember) -> Vec<String> {
    vec![
        format!("--data-dir={}", member.data_dir.display()),
        format!("--name={}", member.name),
        format!("--initial-cluster={}", plan.initial_cluster),
        format!("--initial-advertise-peer-urls={}", member.peer_url),
        "--initial-cluster-token=lifeboat-restore-test".to_string(),
    ]
}

pub fn restore(snapshot: &Path, plan: &Plan, extra: &[&str]) {
    for member in &plan.members {
        run_ok(
            lifeboat()
                .args(["snapshot", "restore"])
                .arg(snapshot)
                .args(restore_args(plan, member))
                .args(extra),
        );
    }
}

/// Restores `names` with `restore_members` and boots them. The peer ports are only probed free,
/// so another process may take one before etcd binds it: then the whole restore is retried
/// with new ports.
pub async fn restore_and_boot(
    version: EtcdVersion,
    dir: &Path,
    names: &[&str],
    restore_members: impl Fn(&Plan),
) -> (Plan, Vec<EtcdServer>) {
    for attempt in 0..3 {
        let attempt_dir = dir.join(format!("attempt-{attempt}"));
        std::fs::create_dir(&attempt_dir).unwrap();
        let plan = plan(&attempt_dir, names);
        restore_members(&plan);
        match EtcdServer::boot_existing(version, &plan.members).await {
            Ok(servers) => return (plan, servers),
            Err(error) if attempt < 2 && error.to_string().contains("address already in use") => continue,
            Err(error) => panic!("{error:#}"),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// The reference tool's restore of the same snapshot with the same flags.
fn reference_restore(
    version: EtcdVersion,
    snapshot: &Path,
    plan: &Plan,
    member: &ExistingMember,
    data_dir: &Path,
    extra: &[&str],
) {
    let elsewhere = ExistingMember {
        data_dir: data_dir.to_path_buf(),
        ..member.clone()
    };
    let mut args = vec![
        "snapshot".to_string(),
        "restore".to_string(),
        snapshot.display().to_string(),
    ];
    args.extend(restore_args(plan, &elsewhere));
    args.extend(extra.iter().map(ToString::to_string));
    reference_tool(version, &args);
}

/// Where the last record of a WAL segment starts.
fn last_frame_start(wal: &[u8]) -> usize {
    let (mut at, mut last) = (0, 0);
    while at + 8 <= wal.len() {
        let length = u64::from_le_bytes(wal[at..at + 8].try_into().unwrap());
        if length == 0 {
            break;
        }
        let pad = if length >> 63 == 1 {
            ((length >> 56) & 0x7) as usize
        } else {
            0
        };
        last = at;
        at += 8 + (length & 0x00FF_FFFF_FFFF_FFFF) as usize + pad;
    }
    last
}

fn wal(data_dir: &Path) -> Vec<u8> {
    std::fs::read(data_dir.join("member/wal/0000000000000000-0000000000000000.wal")).unwrap()
}

/// Every bucket of a db: name → key → value.
type Buckets = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

fn buckets(db: &Path) -> Buckets {
    use lifeboat_etcd_data::bbolt::{Db, MappedFile};
    let file = MappedFile::open(db).unwrap();
    file.read_with(|bytes| {
        let db = Db::open(bytes).unwrap();
        let mut all = Buckets::new();
        let mut current = String::new();
        let findings = db.walk(|entry| match entry.depth {
            0 => {
                current = String::from_utf8_lossy(entry.key).into_owned();
                all.entry(current.clone()).or_default();
            }
            1 => {
                all.get_mut(&current)
                    .unwrap()
                    .insert(entry.key.to_vec(), entry.value.to_vec());
            }
            _ => {}
        });
        assert!(findings.is_empty(), "{findings:?}");
        all
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Our restored member holds what the reference tool's holds: every bucket equal (membership
/// JSON, `members_removed` empty, meta and cluster keys, every revision), the WAL byte for byte
/// and the `.snap` file's store and raft metadata. etcdctl 3.4 differs thrice: it leaves the source's members in bbolt
/// (3.4 reads membership from the v2 store; we write the new members, as 3.5+ does), it writes
/// no meta `term` (3.4 ignores it; we write it, as etcdutl 3.5 does for a 3.4 snapshot, so 3.5
/// and later detect the schema), and writes the WAL's final snapshot record without the
/// ConfState.
fn assert_same_as_reference(version: EtcdVersion, ours_dir: &Path, theirs_dir: &Path) {
    let mut ours = buckets(&ours_dir.join("member/snap/db"));
    let mut theirs = buckets(&theirs_dir.join("member/snap/db"));
    assert!(
        !ours["members"].is_empty(),
        "{version:?}: the new members are in bbolt"
    );
    assert!(ours["members_removed"].is_empty());
    if version == EtcdVersion::V3_4 {
        for membership in ["members", "members_removed"] {
            ours.remove(membership);
            theirs.remove(membership);
        }
        let term = ours.get_mut("meta").unwrap().remove(b"term".as_slice());
        assert_eq!(term, Some(1u64.to_be_bytes().to_vec()));
    }
    let names = |b: &Buckets| b.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&theirs), "{version:?}: bucket names");
    for (name, their_entries) in &theirs {
        let our_entries = &ours[name];
        if our_entries != their_entries {
            let keys = |e: &BTreeMap<Vec<u8>, Vec<u8>>| e.keys().map(|k| text(k)).collect::<Vec<_>>();
            let differing: Vec<String> = their_entries
                .iter()
                .filter(|(k, v)| our_entries.get(*k) != Some(v))
                .map(|(k, v)| {
                    format!(
                        "{}={:?}/{:?}",
                        text(k),
                        text(v),
                        our_entries.get(k).map(|v| text(v))
                    )
                })
                .collect();
            panic!(
                "{version:?}: bucket {name} differs: ours {:?}, theirs {:?}; differing {differing:?}",
                keys(our_entries),
                keys(their_entries)
            );
        }
    }

    let (our_wal, their_wal) = (wal(ours_dir), wal(theirs_dir));
    let compared = match version {
        EtcdVersion::V3_4 => last_frame_start(&our_wal),
        _ => our_wal.len(),
    };
    assert_eq!(
        &their_wal[..compared],
        &our_wal[..compared],
        "{version:?}: WAL differs from the reference's"
    );
    let (our_snap, their_snap) = (snap_files(ours_dir), snap_files(theirs_dir));
    let names = |files: &[(String, Vec<u8>)]| files.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&our_snap),
        names(&their_snap),
        "{version:?}: .snap file names"
    );
    for ((name, ours), (_, theirs)) in our_snap.iter().zip(&their_snap) {
        assert_eq!(snap_contents(ours), snap_contents(theirs), "{version:?}: {name}");
    }
}

/// The `.snap` files of a member directory, by name.
fn snap_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let snap_dir = dir.join("member/snap");
    entries(&snap_dir)
        .into_iter()
        .filter(|n| n.ends_with(".snap"))
        .map(|n| (n.clone(), std::fs::read(snap_dir.join(&n)).unwrap()))
        .collect()
}

/// What a `.snap` file says: the v2 store's tree, index and version (the references serialise
/// their whole store, watcher history and statistics included, in Go's field order), and the
/// raft snapshot metadata, byte for byte. etcdutl 3.6+ stores the members in Go's map order, so
/// which member got which of the indices 1..N varies from run to run: the members' indices are
/// compared as a set.
fn snap_contents(file: &[u8]) -> (serde_json::Value, Vec<u64>, Vec<u8>) {
    let raft_snapshot = proto_field(file, 2);
    let mut store: serde_json::Value = serde_json::from_slice(&proto_field(&raft_snapshot, 1)).unwrap();
    let mut indices = Vec::new();
    let members = store["Root"]["Children"]["0"]["Children"]["members"]["Children"]
        .as_object_mut()
        .unwrap();
    for member in members.values_mut() {
        indices.push(member["CreatedIndex"].as_u64().unwrap());
        for field in ["CreatedIndex", "ModifiedIndex"] {
            member[field] = serde_json::Value::Null;
            member["Children"]["raftAttributes"][field] = serde_json::Value::Null;
        }
    }
    indices.sort_unstable();
    let tree = serde_json::json!({
        "Root": store["Root"],
        "CurrentIndex": store["CurrentIndex"],
        "CurrentVersion": store["CurrentVersion"],
    });
    (tree, indices, proto_field(&raft_snapshot, 2))
}

/// The bytes of length-delimited field `number` in a protobuf message (the first occurrence).
fn proto_field(mut message: &[u8], number: u64) -> Vec<u8> {
    fn varint(bytes: &mut &[u8]) -> u64 {
        let mut value = 0;
        for shift in (0..64).step_by(7) {
            let byte = bytes[0];
            *bytes = &bytes[1..];
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                break;
            }
        }
        value
    }
    while !message.is_empty() {
        let tag = varint(&mut message);
        match tag & 7 {
            0 => {
                varint(&mut message);
            }
            2 => {
                let len = varint(&mut message) as usize;
                let (field, rest) = message.split_at(len);
                if tag >> 3 == number {
                    return field.to_vec();
                }
                message = rest;
            }
            other => panic!("wire type {other} in a .snap file"),
        }
    }
    panic!("no field {number}")
}

#[tokio::test]
async fn restored_member_boots_with_every_key_and_holds_what_etcdutl_writes() {
    for version in EtcdVersion::ALL {
        let dir = tempfile::tempdir().unwrap();
        let (source, snapshot) = source(version, dir.path()).await;
        let (expected, revision) = dump(&source).await;
        drop(source);
        let plan = plan(dir.path(), &["restored"]);
        restore(&snapshot, &plan, &[]);
        let member = &plan.members[0];
        assert_eq!(mode(&member.data_dir), 0o700);
        assert_eq!(mode(&member.data_dir.join("member/snap/db")), 0o600);

        let reference = dir.path().join("reference.etcd");
        reference_restore(version, &snapshot, &plan, member, &reference, &[]);
        assert_same_as_reference(version, &member.data_dir, &reference);
        let our_db = std::fs::metadata(member.data_dir.join("member/snap/db"))
            .unwrap()
            .len();
        let their_db = std::fs::metadata(reference.join("member/snap/db")).unwrap().len();
        assert!(
            our_db <= their_db,
            "{version:?}: our db {our_db} bytes, the reference's {their_db}"
        );
        // The restored db's status, as the reference tool reads it, equals ours.
        let db = member.data_dir.join("member/snap/db");
        let theirs: serde_json::Value =
            serde_json::from_str(&reference_status(version, &db, "json")).unwrap();
        let ours: serde_json::Value = serde_json::from_str(&run_ok(
            lifeboat().args(["snapshot", "status", "-w", "json"]).arg(&db),
        ))
        .unwrap();
        assert_eq!(ours, theirs, "{version:?}: status of the restored db");

        let servers = EtcdServer::boot_existing(version, &plan.members).await.unwrap();
        let (restored, restored_revision) = dump(&servers[0]).await;
        assert_eq!(restored_revision, revision, "{version:?}");
        assert_eq!(restored.len(), expected.len());
        assert!(restored == expected, "{version:?}: keys differ after restore");
        let mut client = servers[0].member().await.unwrap().client();
        let put = client.put("/registry/after/restore", "ok", None).await.unwrap();
        assert_eq!(put.header().unwrap().revision(), revision + 1);
        let members = client.member_list().await.unwrap();
        assert_eq!(members.members().len(), 1);
        assert_eq!(members.members()[0].name(), "restored");
        assert_eq!(
            members.members()[0].peer_urls(),
            std::slice::from_ref(&member.peer_url)
        );
    }
}

#[tokio::test]
async fn three_member_cluster_from_one_snapshot_elects_a_leader() {
    for version in EtcdVersion::ALL {
        let dir = tempfile::tempdir().unwrap();
        let (source, snapshot) = source(version, dir.path()).await;
        let (expected, _) = dump(&source).await;
        drop(source);
        let (plan, servers) = restore_and_boot(version, dir.path(), &["m1", "m2", "m3"], |plan| {
            restore(&snapshot, plan, &[]);
            // Each member's directory holds what the reference tool writes for it.
            for member in &plan.members {
                let reference = member.data_dir.with_extension("reference");
                reference_restore(version, &snapshot, plan, member, &reference, &[]);
                assert_same_as_reference(version, &member.data_dir, &reference);
            }
        })
        .await;
        let mut leaders = Vec::new();
        for server in &servers {
            let member = server.member().await.unwrap();
            leaders.push(member.status().leader);
            assert!(
                dump(server).await.0 == expected,
                "{version:?}: {} serves the snapshot's keys",
                server.name()
            );
        }
        assert!(
            leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]),
            "{version:?}: one leader: {leaders:?}"
        );
        let list = servers[0]
            .member()
            .await
            .unwrap()
            .client()
            .member_list()
            .await
            .unwrap();
        let mut names: Vec<(String, Vec<String>)> = list
            .members()
            .iter()
            .map(|m| (m.name().to_string(), m.peer_urls().to_vec()))
            .collect();
        names.sort();
        let mut wanted: Vec<(String, Vec<String>)> = plan
            .members
            .iter()
            .map(|m| (m.name.clone(), vec![m.peer_url.clone()]))
            .collect();
        wanted.sort();
        assert_eq!(names, wanted, "{version:?}");
    }
}

/// The upgrade path, one minor at a time: a snapshot of each minor restored and booted on the
/// next (3.5.1, older than the 3.5.26 the rolling-upgrade guide asks for, included).
#[tokio::test]
async fn snapshots_boot_on_the_next_minor() {
    let steps = [
        (EtcdVersion::V3_4, EtcdVersion::V3_5),
        (EtcdVersion::V3_5_1, EtcdVersion::V3_6),
        (EtcdVersion::V3_5, EtcdVersion::V3_6),
        (EtcdVersion::V3_6, EtcdVersion::V3_7),
    ];
    for (from, to) in steps {
        let dir = tempfile::tempdir().unwrap();
        let (source, snapshot) = source(from, dir.path()).await;
        let (expected, revision) = dump(&source).await;
        drop(source);
        let (_, servers) = restore_and_boot(to, dir.path(), &["upgraded"], |plan| {
            restore(&snapshot, plan, &[])
        })
        .await;
        let (restored, restored_revision) = dump(&servers[0]).await;
        assert_eq!(restored_revision, revision, "{from:?} on {to:?}");
        assert!(
            restored == expected,
            "{from:?} on {to:?}: keys differ after restoring"
        );
        let mut client = servers[0].member().await.unwrap().client();
        let put = client.put("/registry/after/upgrade", "ok", None).await.unwrap();
        assert_eq!(
            put.header().unwrap().revision(),
            revision + 1,
            "{from:?} on {to:?}"
        );
    }
}

#[tokio::test]
async fn bump_revision_and_mark_compacted() {
    for version in EtcdVersion::ALL {
        let dir = tempfile::tempdir().unwrap();
        let (source, snapshot) = source(version, dir.path()).await;
        let (expected, revision) = dump(&source).await;
        drop(source);
        let bump = ["--bump-revision=1000", "--mark-compacted"];
        let (_, servers) = restore_and_boot(version, dir.path(), &["bumped"], |plan| {
            restore(&snapshot, plan, &bump);
            // etcdutl (3.5 and later; etcdctl 3.4 has no such flags) writes the same marker
            // and scheduled compaction.
            if version != EtcdVersion::V3_4 {
                let member = &plan.members[0];
                let reference = member.data_dir.with_extension("reference");
                reference_restore(version, &snapshot, plan, member, &reference, &bump);
                assert_same_as_reference(version, &member.data_dir, &reference);
            }
        })
        .await;
        assert!(
            dump(&servers[0]).await.0 == expected,
            "{version:?}: keys survive the bump"
        );
        let mut client = servers[0].member().await.unwrap().client();
        let put = client.put("/registry/after/bump", "ok", None).await.unwrap();
        assert!(put.header().unwrap().revision() > revision + 1000, "{version:?}");
        let mut watch = client
            .watch(
                "/registry/",
                Some(WatchOptions::new().with_prefix().with_start_revision(revision)),
            )
            .await
            .unwrap();
        let response = tokio::time::timeout(std::time::Duration::from_secs(10), watch.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let response = if response.created() && !response.canceled() {
            tokio::time::timeout(std::time::Duration::from_secs(10), watch.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
        } else {
            response
        };
        assert!(
            response.canceled() && response.compact_revision() >= revision + 1000,
            "{version:?}: {response:?}"
        );
    }
}

#[tokio::test]
async fn restore_refuses_unsafe_or_wrong_input_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (source, snapshot) = source(EtcdVersion::V3_5, dir.path()).await;
    drop(source);
    let plan = plan(dir.path(), &["m1"]);
    let member = &plan.members[0];
    let restore_cmd = |file: &Path| {
        let mut command = lifeboat();
        command
            .args(["snapshot", "restore"])
            .arg(file)
            .args(restore_args(&plan, member));
        command
    };

    std::fs::create_dir(&member.data_dir).unwrap();
    std::fs::write(member.data_dir.join("precious"), b"old data").unwrap();
    let error = run_failing(&mut restore_cmd(&snapshot), 1);
    assert!(
        error.contains("is not empty") && error.contains("keep the old data"),
        "{error}"
    );
    assert_eq!(
        std::fs::read(member.data_dir.join("precious")).unwrap(),
        b"old data"
    );
    std::fs::remove_dir_all(&member.data_dir).unwrap();

    let mut bytes = std::fs::read(&snapshot).unwrap();
    let flip = bytes.len() / 2;
    bytes[flip] ^= 1;
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    let error = run_failing(&mut restore_cmd(&damaged), 1);
    assert!(error.contains("sha256 trailer mismatch"), "{error}");
    // The rewrite ran beside the hashing; nothing of it is left, hidden or not.
    assert!(!member.data_dir.exists());
    let parent = member.data_dir.parent().unwrap();
    assert!(
        entries(parent).iter().all(|name| !name.starts_with('.')),
        "{:?}",
        entries(parent)
    );

    let without_trailer = dir.path().join("no-trailer.db");
    std::fs::write(
        &without_trailer,
        &std::fs::read(&snapshot).unwrap()[..bytes.len() - 32],
    )
    .unwrap();
    let error = run_failing(&mut restore_cmd(&without_trailer), 1);
    assert!(error.contains("--skip-hash-check"), "{error}");

    // Structure is checked even when the trailer is not: every leaf page of no known type.
    let mut broken = std::fs::read(&snapshot).unwrap();
    for page in broken.chunks_exact_mut(4096).skip(2) {
        if page[8..10] == [0x02, 0] {
            page[8] = 0x20;
        }
    }
    let structure = dir.path().join("structure.db");
    std::fs::write(&structure, &broken).unwrap();
    let error = run_failing(restore_cmd(&structure).arg("--skip-hash-check"), 1);
    assert!(
        error.contains("integrity check failed") && error.contains("invalid type"),
        "{error}"
    );

    let error = run_failing(restore_cmd(&snapshot).arg("--mark-compacted"), 1);
    assert!(error.contains("--mark-compacted and --bump-revision"), "{error}");
    let stranger = ExistingMember {
        name: "stranger".into(),
        ..member.clone()
    };
    let error = run_failing(
        lifeboat()
            .args(["snapshot", "restore"])
            .arg(&snapshot)
            .args(restore_args(&plan, &stranger)),
        1,
    );
    assert!(
        error.contains("\"stranger\" does not appear in --initial-cluster"),
        "{error}"
    );

    let names = entries(dir.path());
    assert!(
        !names.iter().any(|n| n.contains("m1") || n.contains("lifeboat")),
        "left behind: {names:?}"
    );

    run_ok(restore_cmd(&without_trailer).arg("--skip-hash-check"));
    assert!(member.data_dir.join("member/wal").is_dir());

    // --wal-dir: the WAL goes there, and an existing one is refused.
    let elsewhere = dir.path().join("wal-elsewhere");
    let second = ExistingMember {
        data_dir: dir.path().join("second.etcd"),
        ..member.clone()
    };
    let mut command = lifeboat();
    command
        .args(["snapshot", "restore"])
        .arg(&snapshot)
        .args(restore_args(&plan, &second))
        .arg("--wal-dir")
        .arg(&elsewhere);
    run_ok(&mut command);
    assert!(elsewhere.join("0000000000000000-0000000000000000.wal").is_file());
    assert!(!second.data_dir.join("member/wal").exists());
    assert_eq!(mode(&elsewhere), 0o700);
    let error = run_failing(&mut command, 1);
    assert!(
        error.contains("already exists") || error.contains("not empty"),
        "{error}"
    );
}

/// A snapshot of an etcd newer than 3.7 (its cluster and storage versions say 3.8): restore
/// refuses it, naming the version, and writes nothing; status asks for `--etcd-version` and
/// reads it with one.
#[test]
fn a_snapshot_of_an_etcd_newer_than_3_7_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("future.db");
    {
        let out = std::fs::File::create(&file).unwrap();
        let mut writer = lifeboat_etcd_data::bbolt::BulkWriter::new(&out, 4096);
        let mut roots = Vec::new();
        for (bucket, entries) in [
            ("cluster", vec![(&b"clusterVersion"[..], &b"3.8.0"[..])]),
            ("key", vec![]),
            ("meta", vec![(&b"storageVersion"[..], &b"3.8.0"[..])]),
        ] {
            let mut writer_bucket = writer.bucket();
            for (key, value) in entries {
                writer.put(&mut writer_bucket, key, value, false).unwrap();
            }
            roots.push((
                bucket.as_bytes().to_vec(),
                writer.finish_bucket(writer_bucket).unwrap(),
            ));
        }
        writer.finish(roots).unwrap();
    }
    let plan = plan(dir.path(), &["m1"]);
    let error = run_failing(
        lifeboat()
            .args(["snapshot", "restore", "--skip-hash-check"])
            .arg(&file)
            .args(restore_args(&plan, &plan.members[0])),
        1,
    );
    assert!(
        error.contains("the snapshot is etcd 3.8.0, outside the versions Lifeboat supports (3.4 to 3.7)"),
        "{error}"
    );
    assert!(!plan.members[0].data_dir.exists());
    let error = run_failing(lifeboat().args(["snapshot", "status"]).arg(&file), 1);
    assert!(
        error.contains("future.db: cannot tell which etcd's status to reproduce: the file's cluster version is etcd 3.8.0")
            && error.ends_with("give --etcd-version"),
        "{error}"
    );
    let status = run_ok(
        lifeboat()
            .args(["snapshot", "status", "--etcd-version", "3.7", "-w", "json"])
            .arg(&file),
    );
    assert!(status.contains("\"version\":\"3.8.0\""), "{status}");
    let error = run(lifeboat()
        .args(["snapshot", "status", "--etcd-version", "3.8"])
        .arg(&file));
    assert_eq!(error.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&error.stderr).contains("outside the versions Lifeboat supports"));
}
