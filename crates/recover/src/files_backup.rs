//! The files backup of a node's recovery: which one (this node's host's, so that a node never
//! receives another node's certificates and static Pod manifests by accident), and what it may
//! place (only kubeadm's files, as plain files and directories, never through a symlink).

use std::path::{Component, Path, PathBuf};

use lifeboat_repo::Manifest;

use crate::{Error, Result};

/// The tree a recovery places files under, whole.
const KUBEADM_DIR: &str = "etc/kubernetes";
/// The single files it places elsewhere.
const KUBEADM_FILES: [&str; 3] = [
    "var/lib/kubelet/config.yaml",
    "etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
    "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
];

/// Whether a recovery may place `path` (relative to `/`): inside /etc/kubernetes, one of the
/// kubelet's files, or (`is_dir`) a directory on the way to them.
pub(crate) fn in_kubeadm_set(path: &Path, is_dir: bool) -> bool {
    let kubeadm_dir = Path::new(KUBEADM_DIR);
    path.starts_with(kubeadm_dir)
        || KUBEADM_FILES.iter().any(|file| path == Path::new(file))
        || (is_dir
            && (kubeadm_dir.starts_with(path)
                || KUBEADM_FILES.iter().any(|file| Path::new(file).starts_with(path))))
}

/// Refuses, by name and before anything is written, every entry of the files backup `id`
/// (`tar`) that a recovery must not place: outside the kubeadm set, not a plain file or
/// directory, setuid or setgid, or one whose place on the node under `root` lies through a
/// symlink. Every finding is named (the first few, and how many more), not only the first.
pub fn check_placeable(tar: &[u8], id: &str, root: &Path) -> Result<()> {
    const NAMED: usize = 5;
    let unreadable = |e: std::io::Error| Error::Refused {
        message: format!("files backup {id} cannot be read: {e}"),
    };
    let mut findings: Vec<String> = Vec::new();
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let path: PathBuf = entry.path().map_err(unreadable)?.into_owned();
        if let Some(why) = unplaceable(&path, entry.header(), root).map_err(unreadable)? {
            findings.push(format!("{}, {why}", path.display()));
        }
    }
    if findings.is_empty() {
        return Ok(());
    }
    let more = match findings.len().saturating_sub(NAMED) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    findings.truncate(NAMED);
    Err(Error::Refused {
        message: format!(
            "files backup {id} holds {}{more}; recover places only kubeadm's files (/etc/kubernetes, the kubelet's configuration): restore it with `lifeboat restore-files {id} --target DIR` and copy what you need",
            findings.join("; ")
        ),
    })
}

/// Why the entry `path` (with `header`) must not be placed under `root`, if it must not.
fn unplaceable(path: &Path, header: &tar::Header, root: &Path) -> std::io::Result<Option<String>> {
    let kind = header.entry_type();
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain || path.as_os_str().is_empty() {
        return Ok(Some("a path that is not plain".into()));
    }
    if !kind.is_file() && !kind.is_dir() {
        return Ok(Some("which is not a plain file or directory".into()));
    }
    if !in_kubeadm_set(path, kind.is_dir()) {
        return Ok(Some("outside the kubeadm set".into()));
    }
    if header.mode()? & 0o6000 != 0 {
        return Ok(Some("a setuid or setgid file".into()));
    }
    // Every directory on the way, and the entry itself, is a real one on the node.
    let mut on_node = root.to_path_buf();
    for component in path.components() {
        on_node.push(component);
        if std::fs::symlink_metadata(&on_node).is_ok_and(|m| m.file_type().is_symlink()) {
            return Ok(Some(format!(
                "whose place on the node goes through the symlink {}",
                on_node.display()
            )));
        }
    }
    Ok(None)
}

/// The files backup `wanted` (an ID or `latest`) names, among `backups` (oldest first) of the
/// repository `repo`, for a node of `host`: `latest` is the newest files backup of `from_host`
/// (default `host`); a given ID must be a files backup of that host.
pub fn choose_files_backup<'a>(
    backups: &'a [Manifest],
    wanted: &str,
    host: &str,
    from_host: Option<&str>,
    repo: &str,
) -> Result<&'a Manifest> {
    let of_host = from_host.unwrap_or(host);
    let files = || backups.iter().filter(|m| m.kind == "files");
    let usage = |message: String| Error::Refused { message };
    if wanted == "latest" {
        if let Some(newest) = files().rev().find(|m| m.host == of_host) {
            return Ok(newest);
        }
        let mut hosts: Vec<&str> = files().map(|m| m.host.as_str()).collect();
        hosts.sort_unstable();
        hosts.dedup();
        return Err(usage(match hosts.is_empty() {
            true => {
                format!("{repo} has no files backups yet; run `lifeboat backup --files` on this node first")
            }
            false => format!(
                "{repo} has no files backup of host {of_host} (it has files backups of {}); run `lifeboat backup --files` on this node, or pass --files-from-host NAME to put another host's in place",
                hosts.join(", ")
            ),
        }));
    }
    let Some(chosen) = backups.iter().find(|m| m.id.to_string() == wanted) else {
        return Err(usage(format!(
            "{repo} has no backup {wanted}; `lifeboat backups list` shows them"
        )));
    };
    if chosen.kind != "files" {
        return Err(usage(format!(
            "backup {wanted} is a {} backup, not a files backup; `lifeboat backups list` shows the files backups",
            chosen.kind
        )));
    }
    if chosen.host != of_host {
        return Err(usage(format!(
            "files backup {wanted} is of host {}, not {of_host}: its certificates and manifests are that node's; pass --files-from-host {} if they are meant for this node",
            chosen.host, chosen.host
        )));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: &str, kind: &str, host: &str) -> Manifest {
        serde_json::from_value(serde_json::json!({
            "format": 1, "id": id, "kind": kind, "created": "2026-12-05T00:00:00Z",
            "host": host, "tool": "lifeboat", "artefacts": []
        }))
        .unwrap()
    }

    /// A tar of `(path, mode, kind)` entries.
    fn archive(entries: &[(&str, u32, tar::EntryType)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, mode, kind) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(*mode);
            header.set_size(0);
            if *kind == tar::EntryType::Symlink {
                header.set_link_name("/etc/shadow").unwrap();
            }
            builder.append_data(&mut header, path, std::io::empty()).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn only_kubeadms_plain_files_are_placed_and_never_through_a_symlink() {
        use tar::EntryType::{Directory, Regular, Symlink};
        let root = tempfile::tempdir().unwrap();
        let check = |entries: &[(&str, u32, tar::EntryType)]| {
            check_placeable(&archive(entries), "B", root.path()).map_err(|e| e.to_string())
        };
        check(&[
            ("etc", 0o755, Directory),
            ("etc/kubernetes", 0o755, Directory),
            ("etc/kubernetes/pki/ca.crt", 0o644, Regular),
            ("etc/kubernetes/manifests/etcd.yaml", 0o600, Regular),
            ("var/lib/kubelet", 0o700, Directory),
            ("var/lib/kubelet/config.yaml", 0o644, Regular),
        ])
        .unwrap();
        for (entries, needle) in [
            (
                vec![("etc/cron.d/job", 0o644, Regular)],
                "etc/cron.d/job, outside the kubeadm set",
            ),
            (
                vec![("var/lib/kubelet/pki/x", 0o644, Regular)],
                "outside the kubeadm set",
            ),
            (vec![("etc/cron.d", 0o755, Directory)], "outside the kubeadm set"),
            (vec![("etc/kubernetes/tool", 0o4755, Regular)], "setuid or setgid"),
            (
                vec![("etc/kubernetes/pki/key", 0o2640, Regular)],
                "setuid or setgid",
            ),
            (
                vec![("etc/kubernetes/link", 0o777, Symlink)],
                "not a plain file or directory",
            ),
        ] {
            let error = check(&entries).unwrap_err();
            assert!(
                error.contains(needle) && error.contains("restore-files B"),
                "{error}"
            );
        }
        // Every finding is named, not only the first.
        let error = check(&[
            ("etc/cron.d", 0o755, Directory),
            ("etc/cron.d/job", 0o644, Regular),
            ("etc/kubernetes/tool", 0o4755, Regular),
        ])
        .unwrap_err();
        assert!(
            error.contains("etc/cron.d, outside the kubeadm set; etc/cron.d/job, outside")
                && error.contains("etc/kubernetes/tool, a setuid"),
            "{error}"
        );
        // On the node, /etc/kubernetes is a symlink: nothing goes through it.
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/tmp", root.path().join("etc/kubernetes")).unwrap();
        let error = check(&[("etc/kubernetes/admin.conf", 0o600, Regular)]).unwrap_err();
        assert!(error.contains("goes through the symlink"), "{error}");
    }

    #[test]
    fn latest_is_the_newest_of_this_host_and_another_hosts_is_refused_unless_named() {
        let backups = [
            manifest("20261205T000001.000Z-0000000000000001", "files", "cp-1"),
            manifest("20261205T000002.000Z-0000000000000002", "files", "cp-2"),
            manifest("20261205T000003.000Z-0000000000000003", "etcd", "cp-1"),
        ];
        let choose = |wanted: &str, host: &str, from: Option<&str>| {
            choose_files_backup(&backups, wanted, host, from, "repo")
                .map(|m| m.id.to_string())
                .map_err(|e| e.to_string())
        };
        assert_eq!(choose("latest", "cp-1", None).unwrap(), backups[0].id.to_string());
        assert_eq!(
            choose("latest", "cp-1", Some("cp-2")).unwrap(),
            backups[1].id.to_string()
        );
        let none = choose("latest", "cp-3", None).unwrap_err();
        assert!(
            none.contains("no files backup of host cp-3") && none.contains("cp-1, cp-2"),
            "{none}"
        );
        let other = choose(&backups[1].id.to_string(), "cp-1", None).unwrap_err();
        assert!(
            other.contains("is of host cp-2") && other.contains("--files-from-host cp-2"),
            "{other}"
        );
        assert!(choose(&backups[1].id.to_string(), "cp-1", Some("cp-2")).is_ok());
        let etcd = choose(&backups[2].id.to_string(), "cp-1", None).unwrap_err();
        assert!(etcd.contains("not a files backup"), "{etcd}");
        let empty = choose_files_backup(&[], "latest", "cp-1", None, "repo").unwrap_err();
        assert!(empty.to_string().contains("has no files backups yet"));
    }
}
