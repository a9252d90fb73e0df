//! Starts a throwaway etcd on 127.0.0.1 for the demo and the benchmarks, fills it, writes a
//! shell-sourceable file describing it, and stops it (removing its directory) on SIGINT/SIGTERM.
//! With `--kubeadm-node DIR` the etcd is the static Pod of a kubeadm-like node tree in DIR, run
//! by the fake kubelet, so `lifeboat recover --kubeadm --root DIR` can be shown on it. With
//! `--load ENDPOINT` it starts nothing: it writes to that etcd at a steady rate and logs every
//! acknowledged revision with its time (scripts/bench-rpo).
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use lifeboat_test_support::kubelet::{StaticMember, write_control_plane_node};
use lifeboat_test_support::kubernetes::{KUBEADM_ETCD, kubernetes_binary, kubernetes_version};
use lifeboat_test_support::{
    EtcdConfig, EtcdServer, EtcdVersion, ExistingMember, FakeKubelet, FillSpec, KubeadmNode, NodeOptions,
    client_options, fill,
};

/// Run a throwaway etcd until interrupted.
#[derive(Debug, Parser)]
struct Args {
    /// etcd release: 3.4, 3.5, 3.6 or 3.7 (the rig's release of that minor).
    #[arg(long, default_value = "3.6", value_parser = parse_version)]
    etcd: EtcdVersion,
    /// Serve TLS and require client certificates, as kubeadm does.
    #[arg(long)]
    mtls: bool,
    /// Megabytes of Kubernetes-like data to write (0: the small functional mix).
    #[arg(long, default_value_t = 0)]
    fill_mb: u64,
    /// Keep the filled data as a snapshot in DIR and start from it next time (with --fill-mb):
    /// a large fill is written once per etcd release and size.
    #[arg(long, value_name = "DIR", requires = "fill_mb")]
    cache: Option<PathBuf>,
    /// Where to write TESTBED_* variables (endpoint, certificates, etcdctl path).
    #[arg(long, required_unless_present = "load")]
    env_file: Option<PathBuf>,
    /// Write to this etcd (plain HTTP) until it fails or SIGTERM, instead of starting one.
    #[arg(long, value_name = "ENDPOINT", requires = "acked", conflicts_with_all = ["boot", "mtls", "fill_mb", "kubeadm_node", "kubernetes"])]
    load: Option<String>,
    /// Puts per second (with --load), spread over 16 concurrent writers.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Bytes of each value (with --load): a Kubernetes object's size.
    #[arg(long, default_value_t = 1500)]
    value_bytes: usize,
    /// Where to log "<revision> <unix ms>" for every acknowledged put (with --load).
    #[arg(long, value_name = "FILE")]
    acked: Option<PathBuf>,
    /// Boot this (restored) data directory instead of a new, filled cluster.
    #[arg(long, value_name = "DIR", requires_all = ["name", "peer_url"], conflicts_with_all = ["mtls", "fill_mb"])]
    boot: Option<PathBuf>,
    /// The member name the directory was restored for (with --boot).
    #[arg(long)]
    name: Option<String>,
    /// The peer URL the directory was restored for (with --boot).
    #[arg(long)]
    peer_url: Option<String>,
    /// Write a kubeadm-like control-plane node into DIR (etcd, kube-apiserver and kube-scheduler
    /// static Pods, PKI) and run its static Pods with the fake kubelet.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["boot", "mtls", "fill_mb"])]
    kubeadm_node: Option<PathBuf>,
    /// Write a node into DIR with the real kubeadm and run its etcd, the real kube-apiserver and
    /// kube-controller-manager with the fake kubelet (the Kubernetes peers of scripts/build-peers).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["boot", "mtls", "fill_mb", "kubeadm_node"])]
    kubernetes: Option<PathBuf>,
}

/// A real kubeadm node with a real API server, until interrupted.
async fn kubernetes_node(root: &std::path::Path, env_file: &std::path::Path) -> anyhow::Result<()> {
    let options = NodeOptions {
        controller_manager: true,
        ..NodeOptions::default()
    };
    let node = KubeadmNode::start(root, &options)?;
    let tls = node.etcd_tls();
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    std::fs::write(
        env_file,
        format!(
            "TESTBED_ENDPOINT={}\nTESTBED_ETCDCTL={}\nTESTBED_NODE_ROOT={}\nTESTBED_CACERT={}\nTESTBED_CERT={}\nTESTBED_KEY={}\nTESTBED_KUBECONFIG={}\nTESTBED_KUBECTL={}\nTESTBED_APISERVER={}\n",
            node.endpoints.etcd,
            KUBEADM_ETCD.etcdctl().display(),
            root.display(),
            path(&tls.ca),
            path(&tls.cert),
            path(&tls.key),
            node.admin_conf().display(),
            kubernetes_binary("kubectl").display(),
            node.endpoints.apiserver,
        ),
    )?;
    println!(
        "node {}: written by kubeadm {}, etcd {} at {}, kube-apiserver at {} and kube-controller-manager, run by the fake kubelet",
        root.display(),
        kubernetes_version(),
        KUBEADM_ETCD.expected(),
        node.endpoints.etcd,
        node.endpoints.apiserver
    );
    wait_for_signal().await?;
    drop(node);
    let _ = std::fs::remove_file(env_file);
    Ok(())
}

/// The node tree's etcd, run by the fake kubelet until interrupted.
async fn kubeadm_node(
    root: &std::path::Path,
    version: EtcdVersion,
    env_file: &std::path::Path,
) -> anyhow::Result<()> {
    let member = StaticMember::on_free_ports("cp-1")?;
    write_control_plane_node(root, version, &member, std::slice::from_ref(&member), Some(true))?;
    let kubelet = FakeKubelet::start(root, &version.etcd(), &root.join("etcd.log"))?;
    let options = client_options(&member.client, None, None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let etcd = loop {
        match lifeboat_etcd_conn::connect(&options, &member.client).await {
            Ok(etcd) => break etcd,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error).context("the node's etcd did not answer within 60 s"),
        }
    };
    let summary = fill(&etcd.client(), &FillSpec::small())
        .await
        .context("filling etcd")?;
    std::fs::write(
        env_file,
        format!(
            "TESTBED_ENDPOINT={}\nTESTBED_ETCDCTL={}\nTESTBED_NODE_ROOT={}\n",
            member.client,
            version.etcdctl().display(),
            root.display()
        ),
    )?;
    println!(
        "node {}: etcd {} static Pod at {}, run by the fake kubelet: {} live keys, revision {}",
        root.display(),
        version.expected(),
        member.client,
        summary.live_keys,
        summary.revision
    );
    wait_for_signal().await?;
    drop(kubelet);
    let _ = std::fs::remove_file(env_file);
    Ok(())
}

/// Saves the server's data as the cached snapshot of its release and fill size.
fn keep_snapshot(server: &EtcdServer, dir: &std::path::Path, fill_mb: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("etcd-{}-fill-{fill_mb}mb.db", server.version.expected()));
    let part = path.with_extension("part");
    let output = std::process::Command::new(server.version.etcdctl())
        .args(server.etcdctl_args())
        .arg("snapshot")
        .arg("save")
        .arg(&part)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "saving {} failed: {}",
        part.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    std::fs::rename(&part, &path)?;
    println!("kept the filled data in {}", path.display());
    Ok(())
}

fn parse_version(minor: &str) -> Result<EtcdVersion, String> {
    EtcdVersion::ALL
        .into_iter()
        .find(|v| v.minor() == minor)
        .ok_or_else(|| format!("{minor} is not one of 3.4, 3.5, 3.6, 3.7"))
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// Writes at `rate` puts a second until etcd fails or a signal; logs each acknowledged put.
async fn load(endpoint: &str, rate: u32, value_bytes: usize, acked: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    const WRITERS: u32 = 16;
    let member = lifeboat_etcd_conn::connect(&client_options(endpoint, None, None), endpoint).await?;
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel::<(i64, u128)>();
    let period = std::time::Duration::from_secs_f64(f64::from(WRITERS) / f64::from(rate.max(1)));
    for writer in 0..WRITERS {
        let (mut client, sender) = (member.client(), sender.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            for n in 0u64.. {
                tick.tick().await;
                // A ConfigMap-like JSON value that compresses about as real objects do (3 to 4
                // times): field names repeat, a third of the content does not.
                let mut value = format!(
                    "{{\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"w{writer}-{n}\"}},\"data\":{{"
                );
                let mut state = (u64::from(writer) << 32 | n) | 1;
                while value.len() + 40 < value_bytes {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    value.push_str(&format!("\"annotation-{}\":\"{:016x}\",", value.len() % 7, state));
                }
                value.push_str("\"end\":\"\"}}");
                let key = format!("/registry/configmaps/load/w{writer}-{}", n % 500);
                let Ok(put) = client.put(key, value, None).await else {
                    return;
                };
                let revision = put.header().map_or(0, |h| h.revision());
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis();
                if sender.send((revision, now)).is_err() {
                    return;
                }
            }
        });
    }
    drop(sender);
    let mut log = std::io::BufWriter::new(std::fs::File::create(acked)?);
    let stop = wait_for_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            put = received.recv() => match put {
                Some((revision, ms)) => {
                    writeln!(log, "{revision} {ms}")?;
                    // Each line on disk before the next: the log is what was acknowledged.
                    log.flush()?;
                }
                None => return Ok(()),
            },
            _ = &mut stop => return Ok(()),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let (Some(endpoint), Some(acked)) = (&args.load, &args.acked) {
        return load(endpoint, args.rate, args.value_bytes, acked).await;
    }
    let env_file = args.env_file.clone().context("--env-file is required")?;
    let version = args.etcd;
    if let Some(root) = &args.kubernetes {
        return kubernetes_node(root, &env_file).await;
    }
    if let Some(root) = &args.kubeadm_node {
        return kubeadm_node(root, version, &env_file).await;
    }
    let booted = args.boot.is_some();
    let (server, summary) = match (args.boot, args.name, args.peer_url) {
        (Some(data_dir), Some(name), Some(peer_url)) => {
            let member = ExistingMember {
                name,
                data_dir,
                peer_url,
            };
            let server = EtcdServer::boot_existing(version, &[member]).await?.remove(0);
            (server, None)
        }
        _ => {
            let mut config = EtcdConfig::new(version);
            if args.mtls {
                config = config.mtls();
            }
            if args.fill_mb > 0 {
                // The data, its history and bbolt's free pages, with room for the bench's writes.
                config = config.quota_bytes((args.fill_mb << 22).max(2 << 30));
            }
            let cached = args
                .cache
                .as_ref()
                .map(|dir| dir.join(format!("etcd-{}-fill-{}mb.db", version.expected(), args.fill_mb)));
            match cached.filter(|path| path.exists()) {
                Some(seed) => {
                    let server = EtcdServer::start(config.seed(seed.clone())).await?;
                    println!("etcd {}: started from {}", version.expected(), seed.display());
                    (server, None)
                }
                None => {
                    let server = EtcdServer::start(config).await?;
                    let spec = match args.fill_mb {
                        0 => FillSpec::small(),
                        mb => FillSpec::sized(mb << 20),
                    };
                    let summary = fill(&server.member().await?.client(), &spec)
                        .await
                        .context("filling etcd")?;
                    if let Some(dir) = &args.cache {
                        keep_snapshot(&server, dir, args.fill_mb)?;
                    }
                    (server, Some(summary))
                }
            }
        }
    };

    let mut env = format!(
        "TESTBED_ENDPOINT={}\nTESTBED_ETCDCTL={}\nTESTBED_PID={}\nTESTBED_DIR={}\n",
        server.endpoint,
        version.etcdctl().display(),
        server.pid().unwrap_or(0),
        server.dir().display()
    );
    if let Some(pki) = &server.pki {
        env.push_str(&format!(
            "TESTBED_PKI_DIR={}\nTESTBED_CACERT={}\nTESTBED_CERT={}\nTESTBED_KEY={}\n",
            pki.root.display(),
            pki.ca.display(),
            pki.client.cert.display(),
            pki.client.key.display()
        ));
    }
    std::fs::write(&env_file, env)?;
    match summary {
        Some(summary) => println!(
            "etcd {} at {} ready: {} live keys, revision {}, {} MB written",
            version.expected(),
            server.endpoint,
            summary.live_keys,
            summary.revision,
            summary.bytes_written >> 20
        ),
        None if booted => println!(
            "etcd {} at {} booted from {}",
            version.expected(),
            server.endpoint,
            server.name()
        ),
        None => println!("etcd {} at {} ready", version.expected(), server.endpoint),
    }

    wait_for_signal().await?;
    drop(server);
    let _ = std::fs::remove_file(&env_file);
    Ok(())
}
