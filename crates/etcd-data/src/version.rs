//! etcd versions: read as etcd prints them, the window Lifeboat supports (3.4 to 3.7), and
//! etcd's upgrade policy applied to restored data (which binary may boot which data).

use crate::{Error, Result};

/// A `major.minor.patch` etcd version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// The oldest minor Lifeboat reads, writes and boots.
pub const OLDEST_SUPPORTED: Version = Version::new(3, 4, 0);
/// The newest minor Lifeboat reads, writes and boots: every format fact it relies on was
/// checked against this release line, and nothing newer.
pub const NEWEST_SUPPORTED: Version = Version::new(3, 7, 0);

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self { major, minor, patch }
    }

    /// Parses `3.5.1` (also `v3.5.1`, `3.5.0-rc.0`, `3.5`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().trim_start_matches('v');
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(str::parse::<u32>);
        let major = parts.next()?.ok()?;
        let minor = parts.next()?.ok()?;
        let patch = parts.next().transpose().ok()?.unwrap_or(0);
        if parts.next().is_some() {
            return None;
        }
        Some(Self { major, minor, patch })
    }

    /// `major.minor`, the unit of etcd's storage format and upgrade policy.
    pub fn minor_version(self) -> (u32, u32) {
        (self.major, self.minor)
    }

    /// `3.6`.
    pub fn minor_text(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// Refuses a version outside [`OLDEST_SUPPORTED`]..=[`NEWEST_SUPPORTED`] (by minor);
    /// `what` names whose version it is ("the snapshot", "etcd at https://...").
    pub fn check_supported(self, what: &str) -> Result<()> {
        let minor = self.minor_version();
        if minor < OLDEST_SUPPORTED.minor_version() || minor > NEWEST_SUPPORTED.minor_version() {
            return Err(Error::UnsupportedVersion {
                what: what.to_string(),
                version: self.to_string(),
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Whether an etcd binary may boot data restored from a snapshot written by `data`, by etcd's
/// upgrade policy: the same minor, or the next one (one minor at a time; never down). The `Ok`
/// value says why an upgrade is allowed when etcd's guide adds a condition, for the plan.
///
/// The guide asks for 3.5.26+ before 3.6 and 3.6.11+ before 3.7 because a *rolling* upgrade
/// runs old and new members side by side, and old 3.5 members could keep membership in the v2
/// store that disagrees with bbolt's. A restore writes membership anew, in both, for a cluster
/// that runs one binary, so those conditions do not apply to it (tested with 3.5.1 data on 3.6).
pub fn boot_rule(data: Version, binary: Version) -> Result<Option<String>> {
    let (data_minor, binary_minor) = (data.minor_version(), binary.minor_version());
    if data_minor > binary_minor {
        return Err(Error::DowngradeRefused {
            data: data.to_string(),
            binary: binary.to_string(),
            data_minor: data.minor_text(),
        });
    }
    if data.major != binary.major || binary.minor > data.minor.saturating_add(1) {
        return Err(Error::MinorSkipRefused {
            data: data.to_string(),
            binary: binary.to_string(),
            next_minor: format!("{}.{}", data.major, data.minor.saturating_add(1)),
        });
    }
    let prerequisite = match binary_minor {
        (3, 6) => Some(Version::new(3, 5, 26)),
        (3, 7) => Some(Version::new(3, 6, 11)),
        _ => None,
    };
    Ok(match prerequisite {
        Some(wanted) if data_minor < binary_minor && data.patch != 0 && data < wanted => Some(format!(
            "etcd's guide asks for {wanted} or later before a rolling upgrade to {}; a restore writes membership anew for one version, so {data} data boots on {binary}",
            binary.minor_text()
        )),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn parses_versions_as_etcd_prints_them() {
        assert_eq!(v("3.5.1"), Version::new(3, 5, 1));
        assert_eq!(v(" v3.4.23\n"), Version::new(3, 4, 23));
        assert_eq!(v("3.6.0-rc.0"), Version::new(3, 6, 0));
        assert_eq!(v("3.5"), Version::new(3, 5, 0));
        assert_eq!(Version::parse("three"), None);
        assert_eq!(Version::parse(""), None);
        assert_eq!(Version::parse("3.5.1.2"), None);
        assert_eq!(v("3.7.4").to_string(), "3.7.4");
    }

    #[test]
    fn supports_3_4_to_3_7() {
        for ok in ["3.4.0", "3.5.36", "3.6.17", "3.7.4"] {
            assert!(v(ok).check_supported("x").is_ok(), "{ok}");
        }
        let newer = v("3.8.0")
            .check_supported("etcd at http://h:1")
            .unwrap_err()
            .to_string();
        assert_eq!(
            newer,
            "etcd at http://h:1 is etcd 3.8.0, outside the versions Lifeboat supports (3.4 to 3.7); use a Lifeboat release that supports it"
        );
        assert!(v("3.3.25").check_supported("x").is_err());
        assert!(v("4.0.0").check_supported("x").is_err());
    }

    #[test]
    fn boots_the_same_or_the_next_minor_only() {
        assert_eq!(
            boot_rule(v("3.5.36"), v("3.5.1")).unwrap(),
            None,
            "patch downgrade"
        );
        assert_eq!(boot_rule(v("3.5.36"), v("3.6.17")).unwrap(), None);
        assert_eq!(boot_rule(v("3.4.23"), v("3.5.36")).unwrap(), None);
        let old_patch = boot_rule(v("3.5.1"), v("3.6.17")).unwrap().unwrap();
        assert!(old_patch.contains("3.5.26"), "{old_patch}");
        assert!(
            boot_rule(v("3.6.5"), v("3.7.4"))
                .unwrap()
                .unwrap()
                .contains("3.6.11")
        );
        // A cluster version says only the minor: no patch condition to name.
        assert_eq!(boot_rule(v("3.5.0"), v("3.6.17")).unwrap(), None);

        let down = boot_rule(v("3.6.0"), v("3.5.36")).unwrap_err().to_string();
        assert!(
            down.contains("etcd cannot downgrade data") && down.contains("3.6 or newer"),
            "{down}"
        );
        let skip = boot_rule(v("3.4.23"), v("3.6.17")).unwrap_err().to_string();
        assert!(
            skip.contains("one minor at a time") && skip.contains("etcd 3.5"),
            "{skip}"
        );
        assert!(boot_rule(v("3.5.0"), v("3.7.4")).is_err());
        // A crafted version cannot overflow the rule.
        assert!(boot_rule(v("2.4294967295"), v("3.7.4")).is_err());
    }
}
