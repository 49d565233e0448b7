//! The operator binary.

use anyhow::Context as _;
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
        /// Address of the /metrics, /healthz and /readyz endpoints.
        #[arg(long, env = "PACKIT_METRICS_ADDR", default_value = "0.0.0.0:8080")]
        metrics_addr: std::net::SocketAddr,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
    },
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
        Command::Run {
            cache_dir,
            instance,
            namespace,
            metrics_addr,
            ..
        } => {
            let instance = instance.or_else(|| std::env::var("HOSTNAME").ok());
            tracing::info!(cache = %cache_dir.display(), "starting the controller");
            packit_operator::controller::run(packit_operator::controller::Settings {
                cache_dir,
                instance,
                namespace,
                metrics_addr,
            })
            .await
            .context("running the controller")?;
        }
    }
    Ok(())
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
