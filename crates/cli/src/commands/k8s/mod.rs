//! `lifeboat k8s ls|get|decode`: Kubernetes objects read offline from a snapshot file or a
//! backup, nothing started (docs/k8s.md).

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use lifeboat_core::backups::fetch_snapshot_into;
use lifeboat_core::k8s_objects::{Content, DEFAULT_PREFIX, Detail, StoredObject, parse_key, read_objects};
use lifeboat_core::pitr::PointTarget;
use lifeboat_core::private_file::UnlinkedFile;
use lifeboat_k8s::EncryptionConfig;
use serde_json::Value;

use crate::exit::cancel_on_signals;
use crate::output::{self, OutputFormat};
use crate::repo_flags::{IdentityFlags, RepoFlags, resolve_id};
use select::{
    Select, every_object, in_namespace, may_name_resource, names_resource, namespace_shown, one_object,
};

mod history;
mod ls;
mod point;
mod select;

/// `k8s` subcommands.
#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// The objects of a backup, as a table (`--count`: how many per resource and namespace).
    Ls(LsArgs),
    /// One object, as `kubectl get -o yaml|json` prints it.
    Get(GetArgs),
    /// One stored value (as `etcdctl get --print-value-only` gives it), as `get` prints it.
    Decode(DecodeArgs),
    /// One YAML file per object under DIR/<namespace>/<resource>/<name>.yaml (cluster-scoped
    /// objects under DIR/_cluster/); `--for-apply` leaves out what the API server sets.
    Export(ExportArgs),
    /// Objects added, removed and changed between A and B: backups (ID or `latest`) or
    /// snapshot files, each with `@R` for its state at revision R (`etcd.db@4100 etcd.db`).
    Diff(DiffArgs),
    /// Every change of one object after a backup, from the segments point-in-time capture
    /// stored: revision, time and the fields changed.
    History(history::HistoryArgs),
}

/// Where the objects are read from.
#[derive(Debug, Args)]
pub struct Source {
    /// Read this snapshot file (or a `db` copied out of a member).
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "backup")]
    file: Option<PathBuf>,
    /// Read this backup of the repository (ID or `latest`, the default without --file).
    #[arg(long, value_name = "ID")]
    backup: Option<String>,
    /// Read the state at revision R: an earlier one still in the snapshot's history, or (from
    /// the repository) a later one that point-in-time capture holds.
    #[arg(long, value_name = "R")]
    revision: Option<i64>,
    /// Read the state at this time (RFC 3339, or a duration ago: `15m`) from the repository's
    /// backups and captured segments.
    #[arg(long, value_name = "TIME", value_parser = crate::commands::pitr::parse_point_time, conflicts_with_all = ["file", "backup", "revision"])]
    time: Option<std::time::SystemTime>,
    #[command(flatten)]
    reading: Reading,
}

/// How any source is read.
#[derive(Debug, Args)]
pub struct Reading {
    /// The API server's --etcd-prefix.
    #[arg(long, default_value = DEFAULT_PREFIX)]
    etcd_prefix: String,
    #[command(flatten)]
    encryption: EncryptionFlag,
    #[command(flatten)]
    identity: IdentityFlags,
    #[command(flatten)]
    repo: RepoFlags,
}

/// One side of a diff: a snapshot file or a backup (ID or `latest`), with `@R` for its state at
/// revision R.
#[derive(Debug, Clone)]
struct Side {
    file: Option<PathBuf>,
    backup: Option<String>,
    revision: Option<i64>,
    time: Option<std::time::SystemTime>,
}

impl Side {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let (source, revision) = match text.rsplit_once('@') {
            Some((source, revision))
                if revision.bytes().all(|b| b.is_ascii_digit()) && !revision.is_empty() =>
            {
                (
                    source,
                    Some(
                        revision
                            .parse::<i64>()
                            .with_context(|| format!("{text}: revision {revision} is too large"))?,
                    ),
                )
            }
            _ => (text, None),
        };
        let path = PathBuf::from(source);
        if !path.is_file() && source.contains('/') {
            bail!("{source}: no such snapshot file (a backup is named by its ID or latest)");
        }
        Ok(match path.is_file() {
            true => Side {
                file: Some(path),
                backup: None,
                revision,
                time: None,
            },
            false => Side {
                file: None,
                backup: Some(source.to_string()),
                revision,
                time: None,
            },
        })
    }
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only this resource: plural, singular or short name (`pods`, `pod`, `po`), or
    /// `resource.group`.
    resource: Option<String>,
    /// Only this namespace (default: `default`, and cluster-scoped objects).
    #[arg(short, long, value_name = "NS", conflicts_with = "all_namespaces")]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Count objects per resource and namespace instead.
    #[arg(long)]
    count: bool,
    #[command(flatten)]
    source: Source,
}

/// kubectl's `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectFormat {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The resource: plural, singular or short name, or `resource.group`.
    resource: String,
    name: String,
    /// The object's namespace (default: `default`; ignored for cluster-scoped resources).
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,
    #[arg(short, long, value_enum, default_value = "yaml")]
    output: ObjectFormat,
    /// Show metadata.managedFields, as kubectl's flag of that name does.
    #[arg(long)]
    show_managed_fields: bool,
    #[command(flatten)]
    source: Source,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The directory to write into (created, 0700; files 0600: Secrets are among them).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Only these resources (kubectl's names); all without.
    resources: Vec<String>,
    /// Only this namespace (and no cluster-scoped objects); every namespace without.
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,
    /// Leave out what the API server and controllers set (uid, resourceVersion, generation,
    /// creationTimestamp, managedFields, status, ownerReferences, a Service's cluster IPs and
    /// node ports, a Job's generated selector and controller-uid labels), so that
    /// `kubectl apply -f DIR` recreates the objects, in another namespace too.
    #[arg(long)]
    for_apply: bool,
    #[command(flatten)]
    source: Source,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older side: FILE, ID or latest, optionally @REVISION.
    a: String,
    /// The newer side.
    b: String,
    /// Also name each changed field, with its value on both sides.
    #[arg(long)]
    details: bool,
    #[command(flatten)]
    reading: Reading,
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The value's file (`-` or nothing: standard input).
    file: Option<PathBuf>,
    #[arg(short, long, value_enum, default_value = "yaml")]
    output: ObjectFormat,
    /// The etcd key the value was stored under: aesgcm authenticates it, and it names the
    /// resource whose keys are tried first.
    #[arg(long, value_name = "KEY", default_value = "")]
    etcd_key: String,
    #[command(flatten)]
    encryption: EncryptionFlag,
}

#[derive(Debug, Args)]
pub struct EncryptionFlag {
    /// The API server's EncryptionConfiguration (its --encryption-provider-config): values
    /// encrypted at rest with aescbc, aesgcm or secretbox are decrypted with its keys.
    #[arg(long, value_name = "FILE")]
    encryption_config: Option<PathBuf>,
}

impl EncryptionFlag {
    fn load(&self) -> anyhow::Result<Option<EncryptionConfig>> {
        let Some(path) = &self.encryption_config else {
            return Ok(None);
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Some(EncryptionConfig::parse(&path.display().to_string(), &text)?))
    }
}

impl K8sCommand {
    pub async fn run(self, format: OutputFormat) -> anyhow::Result<()> {
        match self {
            K8sCommand::Ls(args) => ls::ls(args, format).await,
            K8sCommand::Get(args) => get(args).await,
            K8sCommand::Decode(args) => decode(args),
            K8sCommand::Export(args) => export(args).await,
            K8sCommand::Diff(args) => diff(args, format).await,
            K8sCommand::History(args) => history::history(args, format).await,
        }
    }
}

/// The objects of the source that `select` takes, kept as `detail` says, and the revision read.
async fn objects(
    source: &Source,
    select: Select,
    detail: Detail,
) -> anyhow::Result<(i64, Vec<StoredObject>)> {
    let side = Side {
        file: source.file.clone(),
        backup: source.backup.clone(),
        revision: source.revision,
        time: source.time,
    };
    objects_of(&side, &source.reading, select, detail).await
}

/// The objects of one side that `select` takes, kept as `detail` says, and the revision read;
/// damage gone past is warned of.
async fn objects_of(
    side: &Side,
    reading: &Reading,
    select: Select,
    detail: Detail,
) -> anyhow::Result<(i64, Vec<StoredObject>)> {
    let encryption = reading.encryption.load()?;
    let read = match &side.file {
        Some(file) => read_objects(
            file,
            &reading.etcd_prefix,
            side.revision,
            encryption.as_ref(),
            &*select,
            detail,
        )?,
        None => fetch_and_read(side, reading, encryption, select, detail).await?,
    };
    for finding in &read.findings {
        tracing::warn!("the snapshot is damaged, objects in damaged pages are missing: {finding}");
    }
    if read.unknown.count > 0 {
        let prefix = reading.etcd_prefix.trim_end_matches('/');
        let hint = match read.unknown.suggested_prefix(prefix) {
            Some(nested) => format!(
                "they look like an aggregated API server's own storage: read them with --etcd-prefix {nested}"
            ),
            None => "if another API server stores them, read them with its --etcd-prefix".into(),
        };
        tracing::warn!(
            "{} keys under {prefix}/ fit no object layout and are not shown (such as {}); {hint}",
            read.unknown.count,
            read.unknown.examples.join(", ")
        );
    }
    Ok((read.revision, read.objects))
}

/// Reads a backup: fetched (decrypted and checked against its manifest) into a private
/// temporary file, removed once read, as it holds every Secret of the cluster.
async fn fetch_and_read(
    side: &Side,
    reading: &Reading,
    encryption: Option<EncryptionConfig>,
    select: Select,
    detail: Detail,
) -> anyhow::Result<lifeboat_core::k8s_objects::ObjectsRead> {
    let repo = reading.repo.open().await?;
    let identities = reading.identity.require_for(&repo)?;
    let reading_at = point::Reading {
        prefix: &reading.etcd_prefix,
        encryption,
        select,
        detail,
    };
    if let Some(time) = side.time {
        let target = PointTarget::Time(time);
        return point::read_at_point(&repo, &identities, None, target, reading_at).await;
    }
    let id = resolve_id(&repo, side.backup.as_deref().unwrap_or("latest"), Some("etcd")).await?;
    let manifest = repo.manifest(&id).await?;
    // A revision after the backup's: what capture holds after it.
    if let (Some(revision), Some(etcd)) = (side.revision, &manifest.etcd)
        && revision > etcd.revision
    {
        let cluster = u64::from_str_radix(&etcd.cluster_id, 16).ok();
        let target = PointTarget::Revision(revision);
        return point::read_at_point(&repo, &identities, cluster, target, reading_at).await;
    }
    let private = fetch_private(&repo, &manifest, &identities).await?;
    let (revision, path) = (side.revision, private.path().to_path_buf());
    let read = reading_at.read(path, revision).await?;
    drop(private);
    Ok(read)
}

/// A backup's snapshot fetched (decrypted and checked) into a private file with no name in the
/// temporary directory: it holds every Secret of the cluster, and goes with the process however
/// it ends (OOM-kill included). Read through its `path()` while the value lives.
async fn fetch_private(
    repo: &lifeboat_repo::Repository,
    manifest: &lifeboat_repo::Manifest,
    identities: &[lifeboat_repo::Identity],
) -> anyhow::Result<UnlinkedFile> {
    let dir = std::env::temp_dir();
    let private = UnlinkedFile::create(&dir)?;
    let bar = crate::progress::TerminalBar::new("fetch");
    let shown = dir.join("(fetched snapshot)");
    fetch_snapshot_into(
        repo,
        manifest,
        identities,
        (private.handle()?, &shown),
        &bar,
        &cancel_on_signals(),
    )
    .await?;
    Ok(private)
}

async fn get(args: GetArgs) -> anyhow::Result<()> {
    let namespace = args.namespace.as_deref().unwrap_or("default");
    let select = one_object(&args.resource, namespace, &args.name);
    let (revision, objects) = objects(&args.source, select, Detail::Whole).await?;
    let object = objects
        .iter()
        .filter(|o| names_resource(&args.resource, o) && o.name == args.name)
        .find(|o| o.namespace.as_deref().is_none_or(|ns| ns == namespace))
        .with_context(|| {
            format!(
                "{} {:?} is not in namespace {namespace} at revision {revision}; `lifeboat k8s ls {} -A` lists what there is",
                args.resource, args.name, args.resource
            )
        })?;
    let value = match &object.content {
        Content::Object(decoded) => {
            for finding in &decoded.findings {
                tracing::warn!("{}: {finding}", object.key);
            }
            object.as_kubectl(args.show_managed_fields)
        }
        Content::Encrypted(why) => bail!("{why}"),
        Content::Unreadable(why) => bail!("{} cannot be read: {why}", object.key),
    };
    print_object(value.as_ref().unwrap_or(&Value::Null), args.output)
}

fn print_object(object: &Value, format: ObjectFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        ObjectFormat::Yaml => out.write_all(lifeboat_k8s::to_yaml(object).as_bytes())?,
        ObjectFormat::Json => {
            // kubectl indents JSON by four spaces.
            let mut writer = serde_json::Serializer::with_formatter(
                &mut out,
                serde_json::ser::PrettyFormatter::with_indent(b"    "),
            );
            serde::Serialize::serialize(object, &mut writer)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

fn decode(args: DecodeArgs) -> anyhow::Result<()> {
    let mut value = Vec::new();
    match &args.file {
        Some(path) if path.as_os_str() != "-" => {
            value = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        }
        _ => {
            std::io::stdin().read_to_end(&mut value)?;
        }
    }
    let encryption = args.encryption.load()?;
    let resource =
        parse_key(DEFAULT_PREFIX, &args.etcd_key).map_or_else(String::new, |(resource, _, _)| resource);
    let read = |value: &[u8]| match lifeboat_core::k8s_objects::content(
        &args.etcd_key,
        &resource,
        value,
        encryption.as_ref(),
    )
    .1
    {
        Content::Object(decoded) => Ok(*decoded),
        Content::Encrypted(why) | Content::Unreadable(why) => Err(why),
    };
    // etcdctl --print-value-only ends the value with a newline of its own.
    let decoded = match (read(&value), value.strip_suffix(b"\n")) {
        (Ok(decoded), _) => decoded,
        (Err(error), Some(without)) => read(without).map_err(|_| anyhow::anyhow!("{error}"))?,
        (Err(error), None) => bail!("{error}"),
    };
    for finding in &decoded.findings {
        tracing::warn!("{finding}");
    }
    print_object(&decoded.object, args.output)
}

/// What the API server and controllers set on an object, left out for `kubectl apply`: kept,
/// each would be refused (an allocated cluster IP or node port, a Job selector generated for
/// another UID) or point at an object that no longer is (an owner's UID; owners adopt their
/// objects again by selector).
fn for_apply(mut object: Value) -> Value {
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
        ] {
            metadata.remove(field);
        }
    }
    match kind.as_str() {
        "Service" => {
            if let Some(spec) = object["spec"].as_object_mut() {
                if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
                    spec.remove("clusterIP");
                    spec.remove("clusterIPs");
                }
                spec.remove("healthCheckNodePort");
                for port in spec
                    .get_mut("ports")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object_mut)
                {
                    port.remove("nodePort");
                }
            }
        }
        "Job" if object["spec"]["manualSelector"] != Value::Bool(true) => {
            if let Some(spec) = object["spec"].as_object_mut() {
                spec.remove("selector");
            }
            for labels in [&["metadata"][..], &["spec", "template", "metadata"]] {
                let mut at = &mut object;
                for step in labels {
                    at = &mut at[*step];
                }
                if let Some(labels) = at["labels"].as_object_mut() {
                    labels.remove("controller-uid");
                    labels.remove("batch.kubernetes.io/controller-uid");
                }
            }
        }
        _ => {}
    }
    object
}

/// A path component from a name: the names Kubernetes allows are kept, anything else escaped.
fn path_part(name: &str) -> String {
    let safe = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
    match safe {
        true => name.to_string(),
        false => name
            .bytes()
            .map(|b| match b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') {
                true => (b as char).to_string(),
                false => format!("%{b:02X}"),
            })
            .collect(),
    }
}

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let (resources, namespace) = (args.resources.clone(), args.namespace.clone());
    let select: Select = std::sync::Arc::new(move |r, ns, _| {
        (resources.is_empty() || resources.iter().any(|w| may_name_resource(w, r)))
            && namespace.as_deref().is_none_or(|wanted| ns == Some(wanted))
    });
    let (revision, objects) = objects(&args.source, select, Detail::Whole).await?;
    let mut written = 0;
    let mut skipped = Vec::new();
    for object in &objects {
        if !args.resources.is_empty() && !args.resources.iter().any(|r| names_resource(r, object)) {
            continue;
        }
        if args.namespace.is_some() && object.namespace != args.namespace {
            continue;
        }
        let Some(value) = object.as_kubectl(false) else {
            skipped.push(match &object.content {
                Content::Encrypted(why) | Content::Unreadable(why) => why.clone(),
                Content::Object(_) => object.key.clone(),
            });
            continue;
        };
        let value = if args.for_apply { for_apply(value) } else { value };
        let dir = args
            .to
            .join(
                object
                    .namespace
                    .as_deref()
                    .map_or_else(|| "_cluster".to_string(), path_part),
            )
            .join(path_part(&object.resource));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{}.yaml", path_part(&object.name)));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(lifeboat_k8s::to_yaml(&value).as_bytes())?;
        written += 1;
    }
    for why in &skipped {
        tracing::warn!("not exported: {why}");
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "{written} objects of revision {revision} written to {}{}",
            args.to.display(),
            match skipped.len() {
                0 => String::new(),
                n => format!("; {n} left out (encrypted or unreadable, named above)"),
            }
        );
    }
    Ok(())
}

/// What an object holds for comparison: the decoded object without the revision the key gives
/// it, or the stored bytes' description when it does not decode.
fn comparable(object: &StoredObject) -> Value {
    match &object.content {
        Content::Object(decoded) => decoded.object.clone(),
        Content::Encrypted(_) | Content::Unreadable(_) => Value::String(format!(
            "{} bytes at revision {}",
            object.size, object.mod_revision
        )),
    }
}

/// The paths where `a` and `b` differ, with both values (absent: null).
fn changed_fields(a: &Value, b: &Value, path: &str, found: &mut Vec<(String, Value, Value)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                changed_fields(
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                    &child,
                    found,
                );
            }
        }
        (x, y) if x != y => found.push((path.to_string(), x.clone(), y.clone())),
        _ => {}
    }
}

async fn diff(args: DiffArgs, format: OutputFormat) -> anyhow::Result<()> {
    let (a, b) = (Side::parse(&args.a)?, Side::parse(&args.b)?);
    let (revision_a, before) = objects_of(&a, &args.reading, every_object(), Detail::Whole).await?;
    let (revision_b, after) = objects_of(&b, &args.reading, every_object(), Detail::Whole).await?;
    let index = |objects: &[StoredObject]| -> std::collections::BTreeMap<String, Value> {
        objects.iter().map(|o| (o.key.clone(), comparable(o))).collect()
    };
    let (before, after) = (index(&before), index(&after));
    let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let removed: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let mut changed = Vec::new();
    for (key, old) in &before {
        if let Some(new) = after.get(key)
            && old != new
        {
            let mut fields = Vec::new();
            changed_fields(old, new, "", &mut fields);
            changed.push((key, fields));
        }
    }
    let mut out = std::io::stdout().lock();
    if format == OutputFormat::Json {
        let changed: Vec<Value> = changed
            .iter()
            .map(|(key, fields)| {
                let fields: Vec<Value> = fields
                    .iter()
                    .map(|(path, old, new)| serde_json::json!({"path": path, "a": old, "b": new}))
                    .collect();
                serde_json::json!({"key": key, "fields": fields})
            })
            .collect();
        return output::json(
            &mut out,
            &serde_json::json!({
                "a": {"source": args.a, "revision": revision_a},
                "b": {"source": args.b, "revision": revision_b},
                "added": added, "removed": removed, "changed": changed,
            }),
        );
    }
    writeln!(
        out,
        "--- {} (revision {revision_a})\n+++ {} (revision {revision_b})",
        args.a, args.b
    )?;
    for key in &added {
        writeln!(out, "+ {key}")?;
    }
    for key in &removed {
        writeln!(out, "- {key}")?;
    }
    for (key, fields) in &changed {
        writeln!(out, "~ {key}")?;
        if args.details {
            for (path, old, new) in fields {
                writeln!(out, "    {path}: {old} -> {new}")?;
            }
        }
    }
    writeln!(
        out,
        "{} added, {} removed, {} changed",
        added.len(),
        removed.len(),
        changed.len()
    )?;
    Ok(())
}
