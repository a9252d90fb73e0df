//! The etcd executable: where it is and which version it is.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::clear_etcd_env;
use crate::{Error, Result};

/// A `major.minor.patch` etcd version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// Parses `3.5.1` (also `v3.5.1`, `3.5.0-rc.0`, `3.5`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().trim_start_matches('v');
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(str::parse::<u32>);
        let major = parts.next()?.ok()?;
        let minor = parts.next()?.ok()?;
        let patch = parts.next().transpose().ok()?.unwrap_or(0);
        Some(Self { major, minor, patch })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// An etcd server binary and the version it reports.
#[derive(Debug, Clone)]
pub struct EtcdBinary {
    pub path: PathBuf,
    pub version: Version,
}

impl EtcdBinary {
    /// The binary at `explicit` (`--etcd`, then `LIFEBOAT_ETCD`, as the caller resolved them), or
    /// `etcd` on `search_path` (the `PATH` value).
    pub fn locate(explicit: Option<&Path>, search_path: Option<&std::ffi::OsStr>) -> Result<Self> {
        if let Some(path) = explicit {
            if !path.is_file() {
                return Err(Error::NotFound {
                    looked: format!("{} does not exist", path.display()),
                });
            }
            return Self::at(path);
        }
        let found = search_path
            .into_iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join("etcd"))
            .find(|candidate| candidate.is_file());
        match found {
            Some(path) => Self::at(&path),
            None => Err(Error::NotFound {
                looked: "none on PATH".into(),
            }),
        }
    }

    /// The binary at `path`, asked for its version (`etcd --version`).
    pub fn at(path: &Path) -> Result<Self> {
        let not_etcd = |reason: String| Error::NotEtcd {
            path: path.to_path_buf(),
            reason,
        };
        let mut command = Command::new(path);
        clear_etcd_env(&mut command);
        let output = command
            .arg("--version")
            .output()
            .map_err(|e| not_etcd(e.to_string()))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let version = text
            .lines()
            .find_map(|line| line.strip_prefix("etcd Version:"))
            .and_then(Version::parse)
            .ok_or_else(|| not_etcd("`--version` does not print \"etcd Version: X.Y.Z\"".into()))?;
        Ok(Self {
            path: path.to_path_buf(),
            version,
        })
    }

    /// Refuses data written by a newer minor version than this binary's.
    pub fn check_runs(&self, data_version: &str) -> Result<()> {
        let Some(data) = Version::parse(data_version) else {
            return Ok(());
        };
        if (data.major, data.minor) > (self.version.major, self.version.minor) {
            return Err(Error::Downgrade {
                path: self.path.clone(),
                binary: self.version.to_string(),
                data: data_version.to_string(),
                data_minor: format!("{}.{}", data.major, data.minor),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_as_etcd_prints_them() {
        let v = |s| Version::parse(s);
        assert_eq!(
            v("3.5.1"),
            Some(Version {
                major: 3,
                minor: 5,
                patch: 1
            })
        );
        assert_eq!(
            v(" v3.4.23\n"),
            Some(Version {
                major: 3,
                minor: 4,
                patch: 23
            })
        );
        assert_eq!(
            v("3.6.0-rc.0"),
            Some(Version {
                major: 3,
                minor: 6,
                patch: 0
            })
        );
        assert_eq!(
            v("3.5"),
            Some(Version {
                major: 3,
                minor: 5,
                patch: 0
            })
        );
        assert_eq!(v("three"), None);
        assert_eq!(v(""), None);
    }

    #[test]
    fn refuses_newer_data_only() {
        let binary = EtcdBinary {
            path: "/usr/bin/etcd".into(),
            version: Version {
                major: 3,
                minor: 4,
                patch: 23,
            },
        };
        assert!(binary.check_runs("3.4.1").is_ok());
        assert!(binary.check_runs("3.3.0").is_ok());
        let refused = binary.check_runs("3.5.1").unwrap_err().to_string();
        assert!(
            refused.contains("cannot run data written by etcd 3.5.1"),
            "{refused}"
        );
        assert!(refused.contains("etcd 3.5 or newer"), "{refused}");
    }

    #[test]
    fn a_missing_binary_is_named() {
        let missing = EtcdBinary::locate(Some(Path::new("/nonexistent/etcd")), None).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/etcd does not exist"));
        let none = EtcdBinary::locate(None, Some(std::ffi::OsStr::new("/nonexistent"))).unwrap_err();
        assert!(none.to_string().contains("none on PATH"));
    }
}
