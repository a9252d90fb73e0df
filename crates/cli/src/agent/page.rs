//! The status page: server-rendered HTML with its style inline and no script or external asset,
//! so it works in an air-gapped cluster. It reloads itself every 30 s.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use lifeboat_core::certs::Expiry;
use lifeboat_core::drill::Outcome;

use super::Agent;
use super::config::{JobKind, LeaderMode};
use super::status::Status;

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin-bottom:1.5em}\
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#f0f0f0}.green{background:#d4f7d4}.amber{background:#ffe9b3}\
.red{background:#ffc9c9}.muted{color:#777}h2{margin-top:1.2em}";

/// Text safe inside HTML elements and attribute values.
/// Every text the page shows goes through here: URLs lose what can carry a credential (user
/// information and query strings, e.g. a SAS token or a presigned signature), then markup is
/// escaped.
fn escape(text: &str) -> String {
    let text = redact(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (index, word) in text.split(' ').enumerate() {
        if index > 0 {
            out.push(' ');
        }
        let Some(scheme_end) = word.find("://") else {
            out.push_str(word);
            continue;
        };
        let (scheme, rest) = word.split_at(scheme_end + 3);
        let rest = match rest.split_once('@') {
            Some((userinfo, host)) if !userinfo.contains('/') => {
                out.push_str(scheme);
                out.push_str("REDACTED@");
                host
            }
            _ => {
                out.push_str(scheme);
                rest
            }
        };
        match rest.split_once('?') {
            Some((path, _)) => {
                out.push_str(path);
                out.push_str("?REDACTED");
            }
            None => out.push_str(rest),
        }
    }
    out
}

fn age(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or_default()
}

fn short(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..120 => format!("{seconds} s"),
        120..7200 => format!("{} min", seconds / 60),
        7200..172_800 => format!("{} h", seconds / 3600),
        _ => format!("{} d", seconds / 86_400),
    }
}

fn when(time: SystemTime) -> String {
    let time = time::OffsetDateTime::from(time);
    time.replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// green within the objective, amber up to 1.5x (the alert's threshold), red beyond.
fn against(value: Duration, objective: Duration) -> (&'static str, &'static str) {
    if value <= objective {
        ("green", "within objective")
    } else if value.as_secs_f64() <= objective.as_secs_f64() * 1.5 {
        ("amber", "over objective")
    } else {
        ("red", "objective missed")
    }
}

fn table(page: &mut String, header: &[&str], rows: Vec<(String, Vec<String>)>, empty: &str) {
    if rows.is_empty() {
        let _ = writeln!(page, "<p class=\"muted\">{}</p>", escape(empty));
        return;
    }
    page.push_str("<table><tr>");
    for name in header {
        let _ = write!(page, "<th>{}</th>", escape(name));
    }
    page.push_str("</tr>\n");
    for (class, cells) in rows {
        let _ = write!(page, "<tr class=\"{class}\">");
        for cell in cells {
            let _ = write!(page, "<td>{}</td>", escape(&cell));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</table>\n");
}

pub fn render(agent: &Agent, now: SystemTime) -> String {
    let config = &agent.config;
    let status = agent.status();
    let objectives = config.objectives;
    let mut page = String::new();
    let title = match agent.cluster_label() {
        label if label.is_empty() => format!("Lifeboat: {}", config.repository),
        label => format!("Lifeboat: {label}"),
    };
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"30\"><title>{t}</title><style>{STYLE}</style></head><body>\
         <h1>{t}</h1>",
        t = escape(&title)
    );
    let leadership = &status.leadership;
    let leader_text = match (config.leader, leadership.leading, &leadership.error) {
        (LeaderMode::Always, _, _) => "runs every job (leader: always)".to_string(),
        (_, true, _) => "leader: elected through etcd, so it runs the cluster-wide jobs".to_string(),
        (_, false, Some(error)) => format!("leader unknown ({error}): cluster-wide jobs wait"),
        (_, false, None) => format!(
            "standby: {} leads; this agent runs only node-local jobs",
            leadership.leader.as_deref().unwrap_or("another agent")
        ),
    };
    let _ = write!(
        page,
        "<p>Host <b>{}</b> · repository <b>{}</b> · {} · lifeboat {} · {}</p>\
         <p>Objectives: RPO {}, RTO {}</p>",
        escape(&agent.host),
        escape(&config.repository),
        escape(&leader_text),
        env!("CARGO_PKG_VERSION"),
        when(now),
        short(objectives.rpo),
        short(objectives.rto),
    );

    page.push_str("<h2 id=\"backups\">Backups</h2>\n");
    if let Some(Err(error)) = &status.repository_checked {
        let _ = writeln!(
            page,
            "<p class=\"red\">Repository unreachable: {}</p>",
            escape(error)
        );
    }
    let rows = status
        .newest
        .iter()
        .map(|newest| {
            let age = age(now, newest.current_until);
            let (class, verdict) = against(age, objectives.rpo);
            (
                class.to_string(),
                vec![
                    newest.group.clone(),
                    newest.id.clone(),
                    match newest.unchanged_at {
                        Some(checked) => {
                            format!("{} (unchanged as of {})", when(newest.created), when(checked))
                        }
                        None => when(newest.created),
                    },
                    format!("{} ({verdict}, RPO {})", short(age), short(objectives.rpo)),
                    newest.revision.map_or("-".into(), |r| r.to_string()),
                    format!(
                        "{} plain, {} stored",
                        crate::output::si_bytes(newest.plain_bytes),
                        crate::output::si_bytes(newest.stored_bytes)
                    ),
                    newest.count.to_string(),
                ],
            )
        })
        .collect();
    table(
        &mut page,
        &[
            "Cluster or group",
            "Newest backup",
            "Created",
            "Age",
            "Revision",
            "Size",
            "Backups",
        ],
        rows,
        "No backups in the repository yet.",
    );

    if config.jobs.iter().any(|job| job.kind == JobKind::Capture) {
        capture_section(&mut page, agent, &status, now);
    }

    page.push_str("<h2 id=\"drill\">Restore drill</h2>\n");
    let rows = status
        .last_drill
        .iter()
        .map(|drill| {
            let rto = drill.rto.seconds.map(Duration::from_secs_f64);
            let class = match (drill.result, drill.rto.met) {
                (Outcome::Failed, _) | (_, false) => "red",
                (Outcome::Warning, _) => "amber",
                _ => "green",
            };
            (
                class.to_string(),
                vec![
                    drill.timestamp.clone(),
                    drill.backup.clone(),
                    crate::commands::drill::outcome(drill.result).to_string(),
                    format!(
                        "{} (objective {})",
                        rto.map_or("not proven".into(), |r| format!("{:.1} s", r.as_secs_f64())),
                        short(Duration::from_secs_f64(drill.rto.objective_seconds))
                    ),
                    format!("etcd {} × {}", drill.etcd_version, drill.members),
                    kubernetes_summary(drill.kubernetes.as_ref()),
                ],
            )
        })
        .collect();
    table(
        &mut page,
        &[
            "When",
            "Backup",
            "Result",
            "RTO",
            "Restored on",
            "Kubernetes objects",
        ],
        rows,
        "No drill has run yet.",
    );

    page.push_str("<h2 id=\"copies\">Copies</h2>\n");
    let rows = status
        .copies
        .iter()
        .map(|(target, copy)| {
            let lag = copy.lag_seconds.map(Duration::from_secs_f64);
            let class = match (copy.ok, lag) {
                (false, _) => "red",
                (true, Some(lag)) if lag > objectives.rpo => "amber",
                _ => "green",
            };
            (
                class.to_string(),
                vec![
                    target.clone(),
                    when(copy.last_run),
                    lag.map_or("-".into(), short),
                    format!("{} copied, {} failed", copy.copied, copy.failed),
                    copy.detail.clone(),
                ],
            )
        })
        .collect();
    table(
        &mut page,
        &["Target", "Last copy", "Lag", "Backups", "Detail"],
        rows,
        "No copy has run yet.",
    );

    page.push_str("<h2 id=\"retention\">Retention</h2>\n");
    let _ = writeln!(
        page,
        "<p>{} backups in the repository{}.</p>",
        status.repository_backups,
        match status.repository_unreadable {
            0 => String::new(),
            n => format!(", {n} manifests that cannot be trusted (lifeboat repo check)"),
        }
    );
    let rows = status
        .retention
        .iter()
        .map(|(repository, retention)| {
            (
                String::new(),
                vec![
                    repository.clone(),
                    retention.job.clone(),
                    retention.policy.clone(),
                    when(retention.last_run),
                    format!("kept {}, removed {}", retention.kept, retention.deleted),
                ],
            )
        })
        .collect();
    table(
        &mut page,
        &["Repository", "Job", "Policy", "Last run", "Result"],
        rows,
        "No retention job has run yet.",
    );

    page.push_str("<h2 id=\"certificates\">Certificates</h2>\n");
    let mut certificates = status.certificates.clone();
    certificates.sort_by_key(|c| c.days_left);
    let rows = certificates
        .iter()
        .map(|cert| {
            let class = match cert.status {
                Expiry::Expired => "red",
                Expiry::Expiring => "amber",
                Expiry::Ok => "green",
            };
            (
                class.to_string(),
                vec![
                    cert.source.clone(),
                    cert.subject.clone(),
                    cert.not_after.clone(),
                    format!("{} days left", cert.days_left),
                ],
            )
        })
        .collect();
    table(
        &mut page,
        &["Certificate", "Subject", "Expires", "Days left"],
        rows,
        "No certificate check has run yet.",
    );

    page.push_str("<h2 id=\"jobs\">Jobs</h2>\n");
    let rows = config
        .jobs
        .iter()
        .map(|job| {
            let state = match (status.running.get(&job.name), status.next_run.get(&job.name)) {
                (Some(started), _) => format!("running for {}", short(age(now, *started))),
                (None, Some(next)) => format!("next at {}", when(*next)),
                (None, None) => "starting".into(),
            };
            let scope = match job.kind.node_local() {
                true => "every node",
                false => "leader only",
            };
            (
                String::new(),
                vec![
                    job.name.clone(),
                    job.kind.as_str().into(),
                    job.schedule.describe(),
                    scope.into(),
                    state,
                ],
            )
        })
        .collect();
    table(
        &mut page,
        &["Job", "Kind", "Schedule", "Runs on", "State"],
        rows,
        "",
    );

    page.push_str("<h2 id=\"runs\">Last job runs</h2>\n");
    let rows = status
        .runs
        .iter()
        .rev()
        .map(|run| {
            (
                if run.ok { "green" } else { "red" }.to_string(),
                vec![
                    when(run.started),
                    run.job.clone(),
                    run.kind.into(),
                    match run.ok {
                        true => "success".into(),
                        false => format!("failure (attempt {})", run.attempt),
                    },
                    format!("{:.1} s", run.seconds),
                    run.detail.clone(),
                ],
            )
        })
        .collect();
    table(
        &mut page,
        &["Started", "Job", "Kind", "Result", "Duration", "Detail"],
        rows,
        "No job has run yet.",
    );
    page.push_str("</body></html>\n");
    page
}

/// Point-in-time capture: this agent's (while it leads) and the restorable window the
/// repository holds, whoever captured it.
fn capture_section(page: &mut String, agent: &Agent, status: &Status, now: SystemTime) {
    page.push_str("<h2 id=\"capture\">Point-in-time capture</h2>\n");
    let rpo = agent.config.objectives.rpo;
    let capture = &status.capture;
    let state = match (capture.running, &capture.live) {
        (true, Some(live)) => {
            let lag = capture.lag(now).unwrap_or_default();
            let (class, verdict) = against(lag, rpo);
            format!(
                "<p class=\"{class}\">Capturing on this agent since {}: stored up to revision {}, lag {} ({verdict}, RPO {}), {} segments stored, {} gaps, {} waiting for the storage.</p>",
                escape(&capture.since.map(when).unwrap_or_default()),
                live.stored_revision,
                short(lag),
                short(rpo),
                live.segments_stored,
                live.gaps,
                crate::output::si_bytes(live.buffered_bytes)
            )
        }
        (true, None) => "<p>Capture starting on this agent.</p>".into(),
        (false, _) if status.leadership.leading => {
            "<p class=\"amber\">This agent leads but does not capture now (see the last job runs).</p>".into()
        }
        (false, _) => "<p class=\"muted\">The leading agent captures; this one stands by.</p>".into(),
    };
    page.push_str(&state);
    page.push('\n');
    match &capture.windows {
        None => page.push_str("<p class=\"muted\">Restorable window: not looked at yet.</p>\n"),
        Some(Err(error)) => {
            let _ = writeln!(
                page,
                "<p class=\"red\">Restorable window unknown: {}</p>",
                escape(error)
            );
        }
        Some(Ok(windows)) => {
            let rows = windows
                .iter()
                .map(|w| {
                    (
                        String::new(),
                        vec![
                            format!("{} ({})", w.from_revision, w.from_time),
                            format!("{} ({})", w.to_revision, w.to_time),
                            w.backups.to_string(),
                            w.segments.to_string(),
                        ],
                    )
                })
                .collect();
            table(
                page,
                &["From revision", "To revision", "Base backups", "Segments"],
                rows,
                "Nothing restorable to a point yet: no etcd backup of this cluster.",
            );
        }
    }
}

/// The drill's Kubernetes content, counted as `lifeboat k8s ls --count` counts it: the total,
/// namespaces, and the largest resources.
fn kubernetes_summary(content: Option<&lifeboat_core::drill::KubernetesContent>) -> String {
    let Some(content) = content else {
        return "none found".into();
    };
    let total: u64 = content.resources.values().sum();
    let mut largest: Vec<(&String, &u64)> = content.resources.iter().collect();
    largest.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let shown: Vec<String> = largest.iter().take(3).map(|(r, n)| format!("{r} {n}")).collect();
    format!(
        "{total} in {} resources, {} namespaces ({})",
        content.resources.len(),
        content.namespaces.len(),
        shown.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_any_text_is_escaped() {
        assert_eq!(escape("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn credentials_in_urls_are_not_shown() {
        let shown =
            escape("GET https://key:secret@bucket.example/p?X-Amz-Signature=abc&sig=zz failed: s3://b/p");
        assert!(
            !shown.contains("secret") && !shown.contains("abc") && !shown.contains("zz"),
            "{shown}"
        );
        assert!(
            shown.contains("https://REDACTED@bucket.example/p?REDACTED"),
            "{shown}"
        );
        assert!(shown.contains("s3://b/p"), "{shown}");
    }

    #[test]
    fn ages_are_judged_against_the_objective() {
        let hour = Duration::from_secs(3600);
        assert_eq!(against(Duration::from_secs(3000), hour).0, "green");
        assert_eq!(against(Duration::from_secs(5000), hour).0, "amber");
        assert_eq!(against(Duration::from_secs(6000), hour).0, "red");
    }
}
