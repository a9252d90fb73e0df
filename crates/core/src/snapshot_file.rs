//! Reading snapshot files (or a member's `db`): status and verify, without etcdutl.

use std::path::Path;

use lifeboat_bbolt::{Db, FileSource, MappedFile, Source};
use lifeboat_etcd_data::{HashKv, HashRules, SnapshotStatus, StoreFacts, VerifyReport, Version};

use crate::{Error, Result};

/// How a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Mapped into memory: fastest; its pages count in the process's RSS while mapped.
    Mapped,
    /// Read page by page: memory stays at a few pages whatever the file's size.
    Paged,
}

fn failed(path: &Path) -> impl Fn(lifeboat_etcd_data::Error) -> Error + '_ {
    move |source| Error::SnapshotFile {
        path: path.to_path_buf(),
        source,
    }
}

/// `snapshot status` by the rules of `as_version`'s etcdutl (`None`: the file's own etcd
/// version's): fails, like etcdutl, when the consistency check finds anything.
pub fn status(path: &Path, access: Access, as_version: Option<Version>) -> Result<SnapshotStatus> {
    fn of<S: Source + ?Sized>(
        source: &S,
        as_version: Option<Version>,
    ) -> lifeboat_etcd_data::Result<SnapshotStatus> {
        lifeboat_etcd_data::status(&Db::open(source)?, as_version)
    }
    match access {
        Access::Mapped => MappedFile::open(path)
            .map_err(|e| failed(path)(e.into()))?
            .read_with(|bytes| of(bytes, as_version)),
        Access::Paged => of(
            &FileSource::open(path).map_err(|e| failed(path)(e.into()))?,
            as_version,
        ),
    }
    .map_err(failed(path))
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
/// etcd serves them; the others are not kept.
pub fn key_space(
    path: &Path,
    prefix: &[u8],
    revision: Option<i64>,
    select: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<lifeboat_etcd_data::KeySpace> {
    MappedFile::open(path)
        .map_err(|e| failed(path)(e.into()))?
        .read_with(|bytes| {
            lifeboat_etcd_data::key_space_selected(&Db::open(bytes)?, prefix, revision, select)
        })
        .map_err(failed(path))
}
