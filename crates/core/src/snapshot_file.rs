//! Reading snapshot files (or a member's `db`): status and verify, without etcdutl.

use std::path::Path;

use lifeboat_bbolt::{Db, FileSource, MappedFile};
use lifeboat_etcd_data::{
    HashKv, HashRules, SnapshotStatus, StoreFacts, Trailer, TrailerCheck, VerifyReport, Version,
};

use crate::{Error, Result};

fn failed(path: &Path) -> impl Fn(lifeboat_etcd_data::Error) -> Error + '_ {
    move |source| Error::SnapshotFile {
        path: path.to_path_buf(),
        source,
    }
}

/// `snapshot status` by the rules of `as_version`'s etcdutl (`None`: the file's own etcd
/// version's): fails, like etcdutl, when the consistency check finds anything. The file is read
/// page by page: as fast as a mapping here, and memory stays at the pages being read whatever
/// the file's size (a mapping would count the whole file in the process's RSS).
pub fn status(path: &Path, as_version: Option<Version>) -> Result<SnapshotStatus> {
    let source = FileSource::open(path).map_err(|e| failed(path)(e.into()))?;
    Db::open(&source)
        .map_err(Into::into)
        .and_then(|db| lifeboat_etcd_data::status(&db, as_version))
        .map_err(failed(path))
}

/// The state of the sha256 trailer of the file at `path`, read front to back through `source`
/// (its open handle, so what is hashed is what is read otherwise), a MiB at a time.
pub fn trailer(path: &Path, source: &FileSource) -> std::result::Result<Trailer, lifeboat_etcd_data::Error> {
    use lifeboat_bbolt::Source;
    const STEP: u64 = 1 << 20;
    let mut check = TrailerCheck::new();
    let mut offset = 0;
    while offset < source.len() {
        let len = STEP.min(source.len() - offset);
        let bytes = source.read_at(offset, len as usize).ok_or_else(|| {
            lifeboat_etcd_data::Error::from(lifeboat_bbolt::Error::Io {
                path: path.display().to_string(),
                message: format!("{len} bytes at offset {offset} could not be read"),
            })
        })?;
        check.update(&bytes);
        offset += len;
    }
    Ok(check.state())
}

/// `snapshot verify`: every finding; `Err` only when the file is not readable as bbolt.
pub fn verify(path: &Path) -> Result<VerifyReport> {
    let file = MappedFile::open(path).map_err(|e| failed(path)(e.into()))?;
    file.read_with(lifeboat_etcd_data::verify).map_err(failed(path))
}

/// [`verify`] without hashing the trailer again: for a file whose whole sha256 was just found
/// equal to what a backup recorded (its trailer was checked when the backup was made).
pub fn verify_sha_checked(path: &Path) -> Result<VerifyReport> {
    let file = MappedFile::open(path).map_err(|e| failed(path)(e.into()))?;
    file.read_with(|bytes| {
        lifeboat_etcd_data::verify_structure(bytes, lifeboat_etcd_data::trusted_trailer(bytes))
    })
    .map_err(failed(path))
}

/// etcd's HashKV of the file at `revision` (`None`: its current one), compacted at
/// `compact_revision` (`None`: the file's own), as a member following `rules` computes it.
pub fn hash_kv(
    path: &Path,
    revision: Option<i64>,
    compact_revision: Option<i64>,
    rules: HashRules,
) -> Result<HashKv> {
    MappedFile::open(path)
        .map_err(|e| failed(path)(e.into()))?
        .read_with(|bytes| lifeboat_etcd_data::hash_kv(&Db::open(bytes)?, revision, compact_revision, rules))
        .map_err(failed(path))
}

/// The file's current and compact revisions and the cluster version it records.
pub fn store_facts(path: &Path) -> Result<StoreFacts> {
    MappedFile::open(path)
        .map_err(|e| failed(path)(e.into()))?
        .read_with(|bytes| lifeboat_etcd_data::store_facts(&Db::open(bytes)?))
        .map_err(failed(path))
}

/// The live keys under `prefix` at `revision` (`None`: the current one) that `select` takes, as
/// etcd serves them, each as `keep` makes of its record; the others are not kept.
pub fn key_space<T>(
    path: &Path,
    prefix: &[u8],
    revision: Option<i64>,
    select: &mut dyn FnMut(&[u8]) -> bool,
    keep: &mut dyn FnMut(lifeboat_etcd_data::KeyValue) -> T,
) -> Result<lifeboat_etcd_data::KeySpace<T>> {
    // Read page by page: a selective read touches a fraction of a large file, and memory stays
    // at what the selection keeps.
    let source = FileSource::open(path).map_err(|e| failed(path)(e.into()))?;
    Db::open(&source)
        .map_err(Into::into)
        .and_then(|db| lifeboat_etcd_data::key_space(&db, prefix, revision, select, keep))
        .map_err(failed(path))
}
