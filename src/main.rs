//! The operator binary.

use anyhow::Context as _;

/// jemalloc rather than glibc's malloc, which kept in its per-thread arenas
/// much of what a wave of reconciles had freed (even trimmed every 10 s).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Freed pages go back to the system within a second, by jemalloc's own
/// thread, so memory at rest is what is in use; two arenas are plenty for
/// a controller whose work is mostly waiting.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: Option<&std::ffi::c_char> = Some(unsafe {
    &*c"background_thread:true,narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr()
});
use clap::{Parser, Subcommand};

/// Scheduled, staged deployment for Kubernetes.
#[derive(Parser)]
#[command(name = "packit-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print both CRDs as one multi-document YAML stream
    /// (`packit-operator crd | kubectl apply -f -`).
    Crd {
        /// Write one file per CRD into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
    /// Check PackitDeployment manifests beyond what the CRD schema checks
    /// (cron expressions, time zones, windows, freezes). Exits 1 when one is
    /// invalid.
    Validate {
        /// YAML files, one PackitDeployment each.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Print the changelog of one or more repositories: the pull requests
    /// and commits reachable from `--to` and not from `--from`, user-visible
    /// changes first. Repeat `--repo/--from/--to` for several repositories.
    Changelog {
        /// Local clone or clone URL; a URL is cloned into a temporary
        /// directory.
        #[arg(long, required = true)]
        repo: Vec<String>,
        /// Revision of the previous release (excluded).
        #[arg(long, required = true)]
        from: Vec<String>,
        /// Revision of the new release (included).
        #[arg(long, required = true)]
        to: Vec<String>,
        #[arg(long, value_enum, default_value = "markdown")]
        format: ChangelogFormat,
    },
    /// Run the controller against the current kubeconfig context or the
    /// in-cluster service account, until SIGINT or SIGTERM.
    Run {
        /// Directory for the bare git caches.
        #[arg(long, env = "PACKIT_CACHE_DIR", default_value = "/tmp/packit-operator")]
        cache_dir: std::path::PathBuf,
        /// Name of this replica in Events (defaults to the host name).
        #[arg(long, env = "POD_NAME")]
        instance: Option<String>,
        /// Only reconcile PackitDeployments in this namespace.
        #[arg(long, env = "PACKIT_WATCH_NAMESPACE")]
        namespace: Option<String>,
        /// Only reconcile PackitDeployments matching this label selector
        /// (e.g. `shard=a`), to split trains between operators.
        #[arg(long, env = "PACKIT_SELECTOR")]
        selector: Option<String>,
        /// Address of the /metrics, /healthz and /readyz endpoints.
        #[arg(long, env = "PACKIT_METRICS_ADDR", default_value = "0.0.0.0:8080")]
        metrics_addr: std::net::SocketAddr,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        /// Run the controller only while holding a Lease, so that of
        /// several replicas one acts at a time.
        #[arg(long, env = "PACKIT_LEADER_ELECTION")]
        leader_election: bool,
        /// Namespace of the Lease (defaults to the pod's namespace, else
        /// `default`).
        #[arg(long, env = "PACKIT_LEADER_ELECTION_NAMESPACE")]
        leader_election_namespace: Option<String>,
        /// Name of the Lease.
        #[arg(
            long,
            env = "PACKIT_LEADER_ELECTION_LEASE",
            default_value = "packit-operator"
        )]
        leader_election_lease: String,
        /// How long a lease lasts without renewal; the leader renews every
        /// third of it and stops after two thirds without success.
        #[arg(long, env = "PACKIT_LEASE_DURATION", default_value = "15s", value_parser = lease_duration)]
        lease_duration: std::time::Duration,
        /// Let PackitDeployments use git sources on the operator's own disk
        /// (`file://`, `file:` and plain paths); off, they get an
        /// InvalidSpec condition.
        #[arg(long, env = "PACKIT_ALLOW_LOCAL_SOURCES")]
        allow_local_sources: bool,
        /// Comma-separated CIDRs that HTTP checks, webhooks and Prometheus
        /// addresses may reach although refused otherwise (loopback,
        /// link-local, --deny-cidrs). The API server's own address and port
        /// stay refused unless its address is listed alone (a /32 or /128).
        #[arg(long, env = "PACKIT_ALLOW_CIDRS", default_value = "", value_parser = cidrs)]
        allow_cidrs: Cidrs,
        /// Comma-separated CIDRs that HTTP checks, webhooks and Prometheus
        /// addresses may not reach, on top of loopback, link-local and
        /// unspecified addresses and the API server. The default names
        /// metadata endpoints outside the link-local range.
        #[arg(long, env = "PACKIT_DENY_CIDRS", default_value = packit_operator::http::DEFAULT_DENY, value_parser = cidrs)]
        deny_cidrs: Cidrs,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ChangelogFormat {
    Markdown,
    Json,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if matches!(cli.command, Command::Run { log_json: true, .. }) {
        logs.json().init();
    } else {
        logs.init();
    }
    match cli.command {
        Command::Crd { dir } => {
            let docs = packit_operator::api::crd_documents().context("generating CRDs")?;
            match dir {
                Some(dir) => {
                    for (file, yaml) in docs {
                        let path = dir.join(file);
                        std::fs::write(&path, yaml)
                            .with_context(|| format!("writing {}", path.display()))?;
                    }
                }
                None => {
                    let yaml: Vec<String> = docs.into_iter().map(|(_, y)| y).collect();
                    print!("{}", yaml.join("---\n"));
                }
            }
        }
        Command::Validate { files } => {
            let mut invalid = false;
            for file in files {
                match validate_file(&file) {
                    Ok(name) => println!("{}: {name} is valid", file.display()),
                    Err(e) => {
                        invalid = true;
                        println!("{}: {e:#}", file.display());
                    }
                }
            }
            if invalid {
                std::process::exit(1);
            }
        }
        Command::Changelog {
            repo,
            from,
            to,
            format,
        } => {
            anyhow::ensure!(
                repo.len() == from.len() && repo.len() == to.len(),
                "give one --from and one --to for each --repo ({} --repo, {} --from, {} --to)",
                repo.len(),
                from.len(),
                to.len()
            );
            let failed = tokio::task::spawn_blocking(move || changelog(&repo, &from, &to, format))
                .await
                .context("computing the changelog")??;
            if failed {
                std::process::exit(1);
            }
        }
        Command::Run {
            cache_dir,
            instance,
            namespace,
            selector,
            metrics_addr,
            leader_election,
            leader_election_namespace,
            leader_election_lease,
            lease_duration,
            allow_local_sources,
            allow_cidrs,
            deny_cidrs,
            ..
        } => {
            let instance = instance.or_else(|| std::env::var("HOSTNAME").ok());
            let leader_election = leader_election.then(|| packit_operator::leader::Config {
                namespace: leader_election_namespace
                    .unwrap_or_else(packit_operator::leader::default_namespace),
                lease: leader_election_lease,
                duration: lease_duration,
            });
            tracing::info!(cache = %cache_dir.display(), "starting the controller");
            packit_operator::controller::run(packit_operator::controller::Settings {
                cache_dir,
                instance,
                namespace,
                selector,
                metrics_addr,
                leader_election,
                allow_local_sources,
                allow_cidrs: allow_cidrs.0,
                deny_cidrs: deny_cidrs.0,
            })
            .await
            .context("running the controller")?;
        }
    }
    Ok(())
}

/// A comma-separated CIDR list, as one argument.
#[derive(Clone)]
struct Cidrs(Vec<ipnet::IpNet>);

fn cidrs(text: &str) -> Result<Cidrs, String> {
    packit_operator::http::parse_cidrs(text).map(Cidrs)
}

/// Parses `--lease-duration`: whole seconds (a Lease counts in seconds),
/// at least 3 so that renewing every third of it makes sense.
fn lease_duration(text: &str) -> Result<std::time::Duration, String> {
    let d = packit_operator::api::duration::parse(text).map_err(|e| e.to_string())?;
    let secs = u64::try_from(d.num_seconds()).unwrap_or(0);
    if !(3..=i32::MAX as u64).contains(&secs) {
        return Err(format!(
            "{text:?} is out of range: a lease lasts 3s or more"
        ));
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// Parses one PackitDeployment manifest and validates its spec.
fn validate_file(path: &std::path::Path) -> anyhow::Result<String> {
    use packit_operator::api::{PackitDeployment, validate::validate};
    let text = std::fs::read_to_string(path).context("reading the file")?;
    let pkd: PackitDeployment = serde_saphyr::from_str(&text).context("not a PackitDeployment")?;
    validate(&pkd.spec)?;
    let ns = pkd.metadata.namespace.as_deref().unwrap_or("default");
    Ok(format!(
        "{ns}/{}",
        pkd.metadata.name.as_deref().unwrap_or("<unnamed>")
    ))
}

/// Prints the changelog; returns whether some repository failed (the others
/// are still printed).
fn changelog(
    repos: &[String],
    from: &[String],
    to: &[String],
    format: ChangelogFormat,
) -> anyhow::Result<bool> {
    use packit_operator::changelog::{self, RepoRange, walk};
    let scratch = std::env::temp_dir().join(format!("packit-changelog-{}", std::process::id()));
    let mut ranges = Vec::new();
    let mut failed_clones = Vec::new();
    for (i, repo) in repos.iter().enumerate() {
        let is_url = repo.contains("://") || (repo.contains('@') && repo.contains(':'));
        let (path, url) = if is_url {
            let dir = scratch.join(i.to_string());
            std::fs::create_dir_all(&scratch)
                .with_context(|| format!("creating {}", scratch.display()))?;
            if let Err(e) = walk::clone_bare(&changelog::repo_name(repo), repo, &dir) {
                failed_clones.push((i, e.to_string()));
            }
            (dir, Some(repo.clone()))
        } else {
            let path = std::path::PathBuf::from(repo);
            let url = walk::origin_url(&path);
            (path, url)
        };
        ranges.push(RepoRange {
            name: changelog::heading_name(None, repo, url.as_deref()),
            url,
            path,
            from: Some(from[i].clone()),
            to: to[i].clone(),
            limit: None,
        });
    }
    let result = changelog::generate(&ranges, &Default::default());
    let _ = std::fs::remove_dir_all(&scratch);
    let mut log = result.context("invalid changelog settings")?;
    for (i, e) in failed_clones {
        if let Some(r) = log.repositories.get_mut(i) {
            r.error = Some(e);
        }
    }
    let mut failed = false;
    for r in &log.repositories {
        for w in &r.warnings {
            eprintln!("warning: {}: {w}", r.name);
        }
        if let Some(e) = &r.error {
            failed = true;
            eprintln!("error: {e}");
        }
    }
    let text = match format {
        ChangelogFormat::Markdown => changelog::render_markdown(&log),
        ChangelogFormat::Json => changelog::render_json(&log) + "\n",
    };
    // print! panics when the reader goes away (`| head`); that is no error.
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the changelog")
        }
        _ => Ok(failed),
    }
}
