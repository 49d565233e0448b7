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
    /// Run the controller against the current kubeconfig context or the
    /// in-cluster service account.
    Run,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
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
        Command::Run => {
            tracing::warn!("the controller is not part of this build yet; exiting");
        }
    }
    Ok(())
}
