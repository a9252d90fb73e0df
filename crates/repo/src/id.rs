//! Backup IDs: `YYYYMMDDTHHMMSS.mmmZ-<16 hex>`, UTC. They sort by creation time (to the
//! millisecond, so backups made in one second still order), and the random part
//! keeps two writers apart without relying on conditional puts (which some S3 stores ignore).

use std::time::SystemTime;

use time::OffsetDateTime;
use time::macros::format_description;

/// A backup's ID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct BackupId(String);

impl From<BackupId> for String {
    fn from(id: BackupId) -> Self {
        id.0
    }
}

impl TryFrom<String> for BackupId {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text).ok_or_else(|| format!("{text:?} is not a backup ID"))
    }
}

const STAMP: &[time::format_description::FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second].[subsecond digits:3]Z");

impl BackupId {
    /// A new ID for a backup created at `now`.
    pub fn new(now: SystemTime) -> Self {
        let stamp = OffsetDateTime::from(now).format(STAMP).unwrap_or_default();
        Self(format!("{stamp}-{:016x}", rand::random::<u64>()))
    }

    /// Parses an ID as it appears in keys and on the command line.
    pub fn parse(text: &str) -> Option<Self> {
        let (stamp, random) = text.split_once('-')?;
        let valid = time::PrimitiveDateTime::parse(stamp, STAMP).is_ok()
            && random.len() == 16
            && random
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        valid.then(|| Self(text.to_string()))
    }

    /// When the backup was created (UTC, to the millisecond).
    pub fn time(&self) -> OffsetDateTime {
        self.0
            .split_once('-')
            .and_then(|(stamp, _)| time::PrimitiveDateTime::parse(stamp, STAMP).ok())
            .map(|t| t.assume_utc())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BackupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn ids_sort_by_time_and_round_trip() {
        let early = BackupId::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let late = BackupId::new(UNIX_EPOCH + Duration::from_millis(1_700_000_000_001));
        assert!(early.as_str().starts_with("20231114T221320.000Z-"), "{early}");
        assert!(late.as_str().starts_with("20231114T221320.001Z-"), "{late}");
        assert!(early < late);
        assert_eq!(BackupId::parse(early.as_str()), Some(early.clone()));
        assert_eq!(late.time().unix_timestamp_nanos(), 1_700_000_000_001_000_000);
        for bad in [
            "",
            "20231114T221320.000Z",
            "20231114T221320.000Z-xyz",
            "20231114T221320Z-0123456789abcdef",
            "2023-11-14-0123456789abcdef",
            "../etc",
        ] {
            assert_eq!(BackupId::parse(bad), None, "{bad}");
        }
    }
}
