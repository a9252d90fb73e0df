//! Every failure is one line that names the input, the cause and the fix, each once: the whole
//! error chain is rendered without a cause repeating what its parent already said.

use std::collections::BTreeMap;

use crate::common::*;

/// Fails if any `: `-separated part of `line` (longer than a word) appears twice.
fn assert_each_cause_once(line: &str) {
    let mut seen = BTreeMap::new();
    for part in line.trim_start_matches("Error: ").split(": ") {
        if part.len() > 12 {
            *seen.entry(part).or_insert(0) += 1;
        }
    }
    for (part, count) in seen {
        assert_eq!(count, 1, "{part:?} repeated in: {line}");
    }
    assert!(line.matches("os error").count() <= 1, "{line}");
}

#[test]
fn failing_commands_say_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("garbage.db"), b"not a database").unwrap();
    let cases: &[(&[&str], i32, &[&str])] = &[
        (
            &["snapshot", "status", &path("absent.db")],
            1,
            &["absent.db", "No such file"],
        ),
        (
            &["snapshot", "verify", &path("absent.db")],
            2,
            &["absent.db", "No such file"],
        ),
        (
            &["snapshot", "status", &path("garbage.db")],
            1,
            &["garbage.db", "not a bbolt file"],
        ),
        (
            &["snapshot", "verify", &path("garbage.db")],
            2,
            &["garbage.db", "not a bbolt file"],
        ),
        (
            &[
                "snapshot",
                "restore",
                &path("absent.db"),
                "--data-dir",
                &path("m1"),
            ],
            1,
            &["absent.db", "No such file"],
        ),
        (
            &["backups", "list", "--repo", &path("norepo")],
            1,
            &["is not a lifeboat repository", "repo init"],
        ),
        (
            &[
                "restore",
                "latest",
                "--repo",
                &path("norepo"),
                "--data-dir",
                &path("m2"),
            ],
            1,
            &["is not a lifeboat repository", "repo init"],
        ),
        (
            &["repo", "init", &path("repo"), "--recipient", "age1nope"],
            1,
            &["age1nope", "age-keygen"],
        ),
        (
            &[
                "snapshot",
                "save",
                &path("s.db"),
                "--endpoints",
                "127.0.0.1:1",
                "--dial-timeout",
                "1s",
            ],
            1,
            &["127.0.0.1:1", "connection refused"],
        ),
    ];
    for (args, code, needles) in cases {
        let line = run_failing(lifeboat().args(*args), *code);
        for needle in *needles {
            assert_eq!(line.matches(needle).count(), 1, "{needle:?} once in: {line}");
        }
        assert_each_cause_once(&line);
    }
    // An identity file that cannot be read: named with its cause, once.
    let repo = path("repo");
    run_ok(lifeboat().args(["repo", "init", &repo, "--insecure-no-encryption"]));
    let line = run_failing(
        lifeboat().args([
            "dump",
            "latest",
            "--repo",
            &repo,
            "--identity-file",
            &path("id.txt"),
        ]),
        1,
    );
    assert!(line.contains("id.txt") && line.contains("No such file"), "{line}");
    assert_each_cause_once(&line);
}
