//! `snapshot verify`: the trailer, the bbolt check and etcd's structure, every finding reported.

use lifeboat_bbolt::{Db, Entry};
use prost::Message;

use crate::kv::{KeyValue, Revision};
use crate::status::{KEY_BUCKET, SnapshotStatus, StatusBuilder};
use crate::{Result, TrailerCheck};

/// Buckets etcd cannot do without (it recreates the others at start-up).
pub const REQUIRED_BUCKETS: [&str; 2] = ["key", "meta"];
const META_BUCKET: &[u8] = b"meta";
const CONSISTENT_INDEX: &[u8] = b"consistent_index";

/// Whether the file ends with etcd's sha256 trailer, and whether it matches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Trailer {
    /// Present and matching the image.
    Valid { sha256: String },
    /// Present (by etcd's size rule) but not matching: a finding.
    Mismatch { expected: String, actual: String },
    /// No trailer: a db copied out of a data directory, not from `snapshot save`.
    Absent,
}

/// Which layer a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    Trailer,
    Meta,
    Bbolt,
    Etcd,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyFinding {
    pub area: Area,
    /// The page, for bbolt findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for VerifyFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let area = match self.area {
            Area::Trailer => "trailer",
            Area::Meta => "meta",
            Area::Bbolt => "bbolt",
            Area::Etcd => "etcd",
        };
        write!(f, "{area}: {}", self.message)
    }
}

/// Everything `verify` found out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    pub trailer: Trailer,
    pub page_size: usize,
    pub pages: u64,
    /// The meta page in use (0 or 1) and its transaction ID.
    pub meta_page: u64,
    pub txid: u64,
    /// Status as etcdutl computes it; absent when the structure is damaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<SnapshotStatus>,
    pub findings: Vec<VerifyFinding>,
}

impl VerifyReport {
    /// No findings.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// The trailer state of a whole file.
pub fn trailer(file: &[u8]) -> Trailer {
    if !crate::has_trailer(file.len() as u64) {
        return Trailer::Absent;
    }
    let mut check = TrailerCheck::new();
    check.update(file);
    check.state()
}

/// Checks the file's trailer, bbolt structure and etcd structure. `Err` only when the file
/// cannot be read as bbolt at all.
pub fn verify(file: &[u8]) -> Result<VerifyReport> {
    verify_structure(file, trailer(file))
}

/// The trailer a file ends in, taken as valid without hashing: for bytes whose whole sha256 was
/// just found equal to that of a stream whose trailer was checked when it arrived.
pub fn trusted_trailer(file: &[u8]) -> Trailer {
    match file.len().checked_sub(crate::TRAILER_LEN) {
        Some(start) if crate::has_trailer(file.len() as u64) => Trailer::Valid {
            sha256: hex::encode(&file[start..]),
        },
        _ => Trailer::Absent,
    }
}

/// Checks the bbolt and etcd structure of a file whose trailer state is already known.
pub fn verify_structure(file: &[u8], trailer: Trailer) -> Result<VerifyReport> {
    let db = Db::open(file)?;
    let mut findings = Vec::new();
    if let Trailer::Mismatch { expected, actual } = &trailer {
        findings.push(VerifyFinding {
            area: Area::Trailer,
            page: None,
            message: format!("sha256 trailer says {expected}, image hashes to {actual}"),
        });
    }
    if let Some(problem) = db.other_meta_problem() {
        findings.push(VerifyFinding {
            area: Area::Meta,
            page: None,
            message: problem.to_string(),
        });
    }
    let mut status = StatusBuilder::new(None);
    let mut etcd = EtcdChecks::default();
    let bbolt = db.check(|entry| {
        status.entry(&entry);
        etcd.entry(&entry);
    });
    let clean_structure = bbolt.is_empty();
    findings.extend(bbolt.into_iter().map(|f| VerifyFinding {
        area: Area::Bbolt,
        page: Some(f.page),
        message: f.to_string(),
    }));
    findings.extend(etcd.finish());
    let status = match status.finish(&db) {
        Ok(status) if clean_structure => Some(status),
        Ok(_) => None,
        // The etcd checks name the missing bucket already.
        Err(crate::Error::NotEtcd) => None,
        Err(error) => {
            findings.push(VerifyFinding {
                area: Area::Etcd,
                page: None,
                message: error.to_string(),
            });
            None
        }
    };
    let meta = db.meta();
    Ok(VerifyReport {
        trailer,
        page_size: db.page_size(),
        pages: meta.hwm,
        meta_page: db.meta_page(),
        txid: meta.txid,
        status,
        findings,
    })
}

/// etcd's rules over the entries of a walk.
#[derive(Debug, Default)]
struct EtcdChecks {
    buckets: Vec<Vec<u8>>,
    current: Vec<u8>,
    previous: Option<Revision>,
    consistent_index: Option<usize>,
    findings: Vec<VerifyFinding>,
}

impl EtcdChecks {
    fn report(&mut self, message: String) {
        self.findings.push(VerifyFinding {
            area: Area::Etcd,
            page: None,
            message,
        });
    }

    fn entry(&mut self, entry: &Entry<'_>) {
        match entry.depth {
            0 => {
                self.current = entry.key.to_vec();
                self.buckets.push(entry.key.to_vec());
            }
            1 if self.current == KEY_BUCKET => self.revision(entry.key, entry.value),
            1 if self.current == META_BUCKET && entry.key == CONSISTENT_INDEX => {
                self.consistent_index = Some(entry.value.len());
            }
            _ => {}
        }
    }

    fn revision(&mut self, key: &[u8], value: &[u8]) {
        let Some(revision) = Revision::parse(key) else {
            return self.report(format!("key bucket: {} is not a revision", hex::encode(key)));
        };
        let at = format!("revision {}_{}", revision.main, revision.sub);
        if let Some(previous) = self.previous
            && (previous.main, previous.sub) >= (revision.main, revision.sub)
        {
            self.report(format!(
                "{at}: not after the previous revision {}_{}",
                previous.main, previous.sub
            ));
        }
        self.previous = Some(revision);
        // `--bump-revision` leaves one empty marker value; it decodes as an empty KeyValue.
        if value.is_empty() {
            return;
        }
        let kv = match KeyValue::decode(value) {
            Ok(kv) => kv,
            Err(error) => return self.report(format!("{at}: value is not an mvccpb.KeyValue: {error}")),
        };
        if kv.key.is_empty() {
            self.report(format!("{at}: record without a key"));
        } else if !revision.tombstone {
            if kv.mod_revision != revision.main {
                self.report(format!(
                    "{at}: mod_revision {} differs from the revision",
                    kv.mod_revision
                ));
            }
            if kv.create_revision < 1 || kv.create_revision > kv.mod_revision || kv.version < 1 {
                self.report(format!(
                    "{at}: create_revision {} and version {} do not fit mod_revision {}",
                    kv.create_revision, kv.version, kv.mod_revision
                ));
            }
        }
    }

    fn finish(mut self) -> Vec<VerifyFinding> {
        for name in REQUIRED_BUCKETS {
            if !self.buckets.iter().any(|b| b == name.as_bytes()) {
                self.report(format!("bucket {name:?} is missing"));
            }
        }
        match self.consistent_index {
            Some(8) => {}
            Some(len) => self.report(format!("meta/consistent_index is {len} bytes, expected 8")),
            // A member that never applied a write (etcd 3.4 right after start) has none yet;
            // once the key bucket holds a revision, one was applied and recorded.
            None if self.previous.is_some() => {
                self.report("meta/consistent_index is missing".to_string());
            }
            None => {}
        }
        self.findings
    }
}
