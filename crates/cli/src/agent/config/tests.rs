//! The configuration parser's tests.

use std::collections::BTreeSet;

use super::*;

const EXAMPLE: &str = include_str!("../../../../../deploy/agent.example.yaml");

fn error(text: &str) -> String {
    format!("{:#}", Config::parse("agent.yaml", text).unwrap_err())
}

#[test]
fn the_example_file_parses_with_every_kind() {
    let config = Config::parse("example", EXAMPLE).unwrap();
    assert_eq!(config.leader_ttl, Duration::from_secs(15));
    let kinds: BTreeSet<&str> = config.jobs.iter().map(|j| j.kind.as_str()).collect();
    assert_eq!(kinds.len(), 9, "{kinds:?}");
    assert_eq!(config.objectives.rpo, Duration::from_secs(3600));
    assert_eq!(config.leader, LeaderMode::Etcd);
}

#[test]
fn errors_name_the_line_and_the_field() {
    let text = "repository: /tmp/r\nleader: always\njobs:\n  - {name: a, kind: certs, every: 1h}\n  - name: b\n    kind: backup\n    every: 10 parsecs\n";
    let message = error(text);
    assert!(message.contains("line 7"), "{message}");
    assert!(
        message.contains("every") || message.contains("jobs[1]"),
        "{message}"
    );
    assert!(message.contains("10 parsecs"), "{message}");

    let message = error(
        "repository: /tmp/r\nleader: always\nleader_ttl: 1s\njobs:\n  - {name: c, kind: certs, every: 1h}\n",
    );
    assert!(
        message.contains("leader_ttl") && message.contains("3s or more"),
        "{message}"
    );

    let message = error("repository: /tmp/r\nleader: always\nlisten: nowhere\njobs: []\n");
    assert!(
        message.contains("line 3") && message.contains("listen"),
        "{message}"
    );

    let message = error(
        "repository: /tmp/r\nleader: always\njobs:\n  - {name: a, kind: certs, every: 1h, colour: red}\n",
    );
    assert!(
        message.contains("colour") && message.contains("line 4"),
        "{message}"
    );
}

#[test]
fn fields_of_another_kind_and_missing_ones_are_refused() {
    let message =
        error("repository: /tmp/r\nleader: always\njobs:\n  - {name: c, kind: certs, every: 1h, to: /x}\n");
    assert!(message.contains("`to` does not apply to kind certs"), "{message}");
    let message = error(
        "repository: /tmp/r\nleader: always\njobs:\n  - {name: s, kind: stream, every: 1h, artifact: a.sql}\n",
    );
    assert!(message.contains("needs `command`"), "{message}");
    let message =
        error("repository: /tmp/r\nleader: always\njobs:\n  - {name: f, kind: forget, every: 1h}\n");
    assert!(message.contains("needs `keep`"), "{message}");
    let message = error(
        "repository: /tmp/r\nleader: always\njobs:\n  - {name: f, kind: files, every: 1h, cron: '* * * * *'}\n",
    );
    assert!(message.contains("not both"), "{message}");
    let message = error(
        "repository: /tmp/r\nleader: always\njobs:\n  - {name: f, kind: files, cron: 'every tuesday'}\n",
    );
    assert!(message.contains("every tuesday"), "{message}");
    let message = error(
        "repository: /tmp/r\nleader: always\njobs:\n  - {name: f, kind: files, every: 1h}\n  - {name: f, kind: certs, every: 1h}\n",
    );
    assert!(message.contains("two jobs are named \"f\""), "{message}");
    let message = error("repository: /tmp/r\njobs:\n  - {name: b, kind: backup, every: 1h}\n");
    assert!(message.contains("etcd: no endpoints"), "{message}");
}

#[test]
fn no_prefix_or_mangled_copy_of_the_example_panics() {
    // Every prefix (cut at each character), and copies with one character replaced by
    // characters YAML and the error locator treat specially: each parses or is one error.
    let chars: Vec<(usize, char)> = EXAMPLE.char_indices().collect();
    for &(at, _) in &chars {
        let _ = Config::parse("cut", &EXAMPLE[..at]);
    }
    for (index, &(at, c)) in chars.iter().enumerate().step_by(7) {
        for replacement in ['"', ':', '{', '-', '\n', 'x', '\'', '#'] {
            let mut text = EXAMPLE.to_string();
            text.replace_range(at..at + c.len_utf8(), &replacement.to_string());
            if let Err(error) = Config::parse("mangled", &text) {
                let line = format!("{error:#}");
                assert!(!line.contains('\n'), "one line at {index}: {line}");
            }
        }
    }
}

#[test]
fn secrets_are_never_inline() {
    let message = error(
        "repository: s3://b/p\nleader: always\ncredentials: {secret_access_key: hunter2}\njobs:\n  - {name: f, kind: files, every: 1h}\n",
    );
    assert!(message.contains("not written inline"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    let config = Config::parse(
        "x",
        "repository: s3://b/p\nleader: always\ncredentials: {secret_access_key: {file: /run/secret}}\njobs:\n  - {name: f, kind: files, every: 1h}\n",
    )
    .unwrap();
    assert!(matches!(
        config.credentials.unwrap().secret_access_key,
        Some(SecretSource::File(_))
    ));
}

#[test]
fn distributions_are_one_at_a_time_and_the_identity_beside_backups_is_warned_of() {
    let config = Config::parse(
        "x",
        "repository: /tmp/r\netcd: {k3s: true}\njobs:\n  - {name: b, kind: backup, every: 1h}\n",
    )
    .unwrap();
    assert!(config.etcd.k3s && config.etcd.given());
    assert!(config.warnings().is_empty());
    let message = error(
        "repository: /tmp/r\netcd: {kubeadm: true, rke2: true}\njobs:\n  - {name: b, kind: backup, every: 1h}\n",
    );
    assert!(message.contains("not several"), "{message}");
    let message = error(
        "repository: /tmp/r\nleader: always\ncluster_id: prod\njobs:\n  - {name: c, kind: certs, every: 1h}\n",
    );
    assert!(
        message.contains("cluster_id") && message.contains("\"prod\""),
        "{message}"
    );

    let both = Config::parse(
        "x",
        "repository: /tmp/r\nidentity_file: /id\netcd: {rke2: true}\njobs:\n  - {name: b, kind: backup, every: 1h}\n  - {name: d, kind: drill, every: 24h}\n",
    )
    .unwrap();
    let warnings = both.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("identity_file") && warnings[0].contains("(b)"),
        "{warnings:?}"
    );
    let drills_only = Config::parse(
        "x",
        "repository: /tmp/r\nidentity_file: /id\nleader: always\ncluster_id: 5a1e\njobs:\n  - {name: d, kind: drill, every: 24h}\n",
    )
    .unwrap();
    assert!(drills_only.warnings().is_empty());
}

#[test]
fn a_capture_runs_continuously_and_refuses_a_schedule() {
    let config = Config::parse(
        "agent.yaml",
        "repository: /tmp/r\nleader: always\njobs:\n  - {name: pitr, kind: capture, segment: 500ms}\n",
    )
    .unwrap();
    let job = &config.jobs[0];
    assert_eq!(
        job.timeout, None,
        "it runs until the leadership or the agent ends"
    );
    assert_eq!(job.schedule.describe(), "continuously while leading");
    use lifeboat_core::capture::{DEFAULT_BUFFER_BYTES, DEFAULT_HASH_EVERY, DEFAULT_SEGMENT_BYTES};
    let defaults = matches!(job.action, Action::Capture { segment, segment_bytes: DEFAULT_SEGMENT_BYTES, hash_every: DEFAULT_HASH_EVERY, buffer_bytes: DEFAULT_BUFFER_BYTES } if segment == Duration::from_millis(500));
    assert!(defaults, "{:?}", job.action);

    for field in ["every: 1h", "cron: \"* * * * *\"", "timeout: 1h"] {
        let message = error(&format!(
            "repository: /tmp/r\nleader: always\njobs:\n  - {{name: pitr, kind: capture, {field}}}\n"
        ));
        assert!(message.contains("runs continuously"), "{field}: {message}");
    }
    let message =
        error("repository: /tmp/r\nleader: always\njobs:\n  - {name: pitr, kind: capture, segment: 10ms}\n");
    assert!(message.contains("below 100ms"), "{message}");
    let message =
        error("repository: /tmp/r\nleader: always\njobs:\n  - {name: pitr, kind: capture, root: /}\n");
    assert!(message.contains("does not apply to kind capture"), "{message}");
}

#[test]
fn a_compaction_takes_its_bounds_and_refuses_one_that_merges_nothing() {
    let config = Config::parse(
        "agent.yaml",
        "repository: /tmp/r\nleader: always\njobs:\n  - {name: c, kind: compact, every: 1h, per_merge: 60}\n",
    )
    .unwrap();
    let expected = lifeboat_core::pitr_compact::DEFAULT_MAX_BYTES;
    let bounds = matches!(config.jobs[0].action, Action::Compact { per_merge: 60, max_bytes } if max_bytes == expected);
    assert!(bounds, "{:?}", config.jobs[0].action);
    let message = error(
        "repository: /tmp/r\nleader: always\njobs:\n  - {name: c, kind: compact, every: 1h, per_merge: 1}\n",
    );
    assert!(message.contains("merges nothing"), "{message}");
}
