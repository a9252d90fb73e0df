//! The etcd executable: where it is and which version it is.

use std::path::{Path, PathBuf};
use std::process::Command;

use lifeboat_etcd_data::Version;

use crate::process::clear_etcd_env;
use crate::{Error, Result};

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
        version
            .check_supported("it")
            .map_err(|source| Error::VersionRule {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            version,
        })
    }

    /// Applies etcd's upgrade policy to data written by `data_version` (a snapshot's cluster
    /// version or the version of the member that took it): refused when this binary may not
    /// boot it; `Some` says why an allowed upgrade is safe despite a condition of etcd's guide.
    pub fn check_runs(&self, data_version: &str) -> Result<Option<String>> {
        let Some(data) = Version::parse(data_version) else {
            return Ok(None);
        };
        lifeboat_etcd_data::boot_rule(data, self.version).map_err(|source| Error::VersionRule {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_newer_data() {
        let binary = EtcdBinary {
            path: "/usr/bin/etcd".into(),
            version: Version::new(3, 4, 23),
        };
        assert!(binary.check_runs("3.4.1").is_ok());
        assert!(binary.check_runs("3.3.0").is_ok());
        let refused = binary.check_runs("3.5.1").unwrap_err().to_string();
        assert!(
            refused.starts_with("/usr/bin/etcd: data written by etcd 3.5.1 cannot run on etcd 3.4.23"),
            "{refused}"
        );
        assert!(
            refused.contains("use etcd 3.5 or newer; give another etcd binary with --etcd"),
            "{refused}"
        );
    }

    #[test]
    fn a_missing_binary_is_named() {
        let missing = EtcdBinary::locate(Some(Path::new("/nonexistent/etcd")), None).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/etcd does not exist"));
        let none = EtcdBinary::locate(None, Some(std::ffi::OsStr::new("/nonexistent"))).unwrap_err();
        assert!(none.to_string().contains("none on PATH"));
    }
}
