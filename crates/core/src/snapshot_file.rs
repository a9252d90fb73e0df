//! Reading snapshot files (or a member's `db`): status and verify, without etcdutl.

use std::path::Path;

use lifeboat_bbolt::{Db, MappedFile};
use lifeboat_etcd_data::{SnapshotStatus, VerifyReport};

use crate::{Error, Result};

fn mapped(path: &Path) -> Result<MappedFile> {
    MappedFile::open(path).map_err(|e| Error::SnapshotFile {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// `snapshot status`: fails, like etcdutl, when the consistency check finds anything.
pub fn status(path: &Path) -> Result<SnapshotStatus> {
    let file = mapped(path)?;
    let with_path = |source| Error::SnapshotFile {
        path: path.to_path_buf(),
        source,
    };
    let db = Db::open(file.bytes()).map_err(|e| with_path(e.into()))?;
    lifeboat_etcd_data::status(&db).map_err(with_path)
}

/// `snapshot verify`: every finding; `Err` only when the file is not readable as bbolt.
pub fn verify(path: &Path) -> Result<VerifyReport> {
    let file = mapped(path)?;
    lifeboat_etcd_data::verify(file.bytes()).map_err(|source| Error::SnapshotFile {
        path: path.to_path_buf(),
        source,
    })
}
