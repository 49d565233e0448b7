//! `kubectl packit`, the kubectl plugin for release trains: arguments, exit
//! codes and the commands. `status`, `history`, `verdicts`, `logs`,
//! `requests` and `when` hold the pure parts (views, check verdicts, log
//! headers, annotation values, times); `cluster` talks to the API server.

pub mod approve;
pub mod cluster;
pub mod dashboard;
pub mod history;
pub mod holds;
pub mod logs;
pub mod remote;
pub mod requests;
pub mod status;
pub mod table;
pub mod verdicts;
pub mod when;

/// The instant the CLI's rendering tests are pinned to.
#[cfg(test)]
pub(crate) fn test_now() -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 30, 8, 30, 0)
        .single()
        .expect("a valid instant")
}

use clap::{Parser, Subcommand, ValueEnum};

/// Exit codes, stable for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// Bad arguments or input.
    Usage = 1,
    /// A named deployment, release, environment, changelog or smoke test
    /// does not exist.
    NotFound = 2,
    /// The cluster could not be reached, or the API server refused.
    Cluster = 3,
}

/// A failure with the exit code it maps to and a message that says what to do.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            exit: Exit::Usage,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Failure {
            exit: Exit::NotFound,
            message: message.into(),
        }
    }
    pub fn cluster(message: impl Into<String>) -> Self {
        Failure {
            exit: Exit::Cluster,
            message: message.into(),
        }
    }
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

const EXAMPLES: &str = "\
Examples:
  kubectl packit status                          every deployment in the namespace
  kubectl packit status packit-service -o json
  kubectl packit history packit-service          releases, newest first
  kubectl packit release packit-service          build a release now
  kubectl packit promote packit-service          deploy to production without waiting for the window
  kubectl packit approve packit-service          approve the release in flight for the next gated environment
  kubectl packit rollback packit-service --environment production
  kubectl packit rollback packit-service --environment production --to packit-service-20261127-170000 --at 'monday 09:00' --tz Europe/Prague
  kubectl packit changelog packit-service-20261127-170000
  kubectl packit dashboard -A                    the web dashboard of every namespace on http://127.0.0.1:8765/
  kubectl packit logs packit-service-20261127-170000
  kubectl packit logs packit-service-20261127-170000 --smoke-tests
  kubectl packit logs packit-service-20261127-170000 -e staging --test checkout --tail 50

Exit codes:
  0  done
  1  bad arguments or input (e.g. a time that cannot be read)
  2  the named deployment, release, environment, changelog or smoke test does not exist
  3  the cluster cannot be reached or the API server refused the request";

/// Release trains on Kubernetes: see where each PackitDeployment is, its
/// release history, and ask for a build, a promotion or a rollback.
#[derive(Parser, Debug)]
#[command(name = "kubectl-packit", bin_name = "kubectl packit", version, after_help = EXAMPLES)]
pub struct Cli {
    /// Namespace (default: the current kubeconfig context's).
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,

    /// kubeconfig context to use (default: the current one).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Output format of status and history.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,

    /// IANA time zone for times shown and typed (default: the local one).
    #[arg(long, global = true, value_name = "ZONE")]
    pub tz: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Text for people.
    Table,
    /// JSON for scripts.
    Json,
    /// YAML for scripts.
    Yaml,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Deployments: phase, the release in each environment, next build and
    /// window, the release in flight and conditions.
    Status {
        /// A PackitDeployment (default: all in the namespace).
        deployment: Option<String>,
    },
    /// Releases newest first: phase, trigger, commits, age and progress per
    /// environment.
    History {
        /// Only the releases of this PackitDeployment.
        deployment: Option<String>,
    },
    /// Build a release now (sets packit.dev/release-requested-at).
    Release {
        /// The PackitDeployment.
        deployment: String,
    },
    /// Deploy the release in flight to production without waiting for the
    /// window, once it passed staging (sets packit.dev/promote-requested-at).
    Promote {
        /// The PackitDeployment.
        deployment: String,
        /// Deploy even before it passed the earlier environments (recorded
        /// on the release).
        #[arg(long)]
        force: bool,
    },
    /// Approve the release in flight for an environment behind an approval
    /// gate (sets packit.dev/approve, with who you are as the API server
    /// tells it). It still deploys only inside the window, unless promoted.
    Approve {
        /// The PackitDeployment.
        deployment: String,
        /// The environment (default: the next one ahead of the release that
        /// requires approval).
        #[arg(short, long, value_name = "ENV")]
        environment: Option<String>,
    },
    /// Roll an environment back to the previous good release, or to one
    /// named, now or later (sets packit.dev/rollback).
    #[command(
        after_help = "TIME is an RFC 3339 time, `2026-11-30 09:00`, `09:00` (the next 09:00), \
`today 17:00`, `tomorrow 08:00`, `monday 09:00` (the next Monday), or `+2h`, `+30m`, `+1d`; \
read in the local time zone or --tz."
    )]
    Rollback {
        /// The PackitDeployment.
        deployment: String,
        /// The environment to roll back, e.g. production.
        #[arg(short, long, value_name = "ENV")]
        environment: String,
        /// A release verified healthy in that environment (default: the one
        /// before the current).
        #[arg(long, value_name = "RELEASE")]
        to: Option<String>,
        /// When to roll back (default: now).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Hold the deployment, or one environment's workloads: no new release
    /// rolls out there and changes made by others are left alone until
    /// `unhold` (sets packit.dev/hold). Rollbacks still go ahead.
    Hold {
        /// The PackitDeployment.
        deployment: String,
        /// Hold only this environment (annotates its target workloads).
        #[arg(short, long, value_name = "ENV")]
        environment: Option<String>,
        /// Why, shown in the deployment's Held condition.
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
    },
    /// Lift the holds of `hold`, and the operator's own stop after a fight
    /// over a workload (packit.dev/fighting): of the deployment and all its
    /// environments, or of one environment.
    Unhold {
        /// The PackitDeployment.
        deployment: String,
        /// Lift only the holds on this environment's workloads.
        #[arg(short, long, value_name = "ENV")]
        environment: Option<String>,
    },
    /// Environments on other clusters: `cluster add NAME --context CTX`
    /// creates, on the cluster of kubeconfig context CTX, a ServiceAccount
    /// with the least the operator needs there and stores its token
    /// kubeconfig as Secret NAME in the namespace (of the current context);
    /// `cluster remove` undoes it. Here --context names the remote cluster.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Serve a web dashboard on 127.0.0.1 that shows the trains, their week
    /// and their releases, live, and acts on them through your kubeconfig.
    /// It prints the URL and opens nothing by itself.
    Dashboard {
        /// The local port (0: any free one).
        #[arg(long, default_value_t = 8765)]
        port: u16,
        /// Every namespace you may list, instead of one.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Print the Markdown changelog of a release.
    Changelog {
        /// The PackitRelease.
        release: String,
    },
    /// Stream the logs of a release's build Job pods; while the release is
    /// building, wait for them to start. With --smoke-tests (or
    /// --environment or --test), print the logs of its smoke-test Jobs
    /// instead.
    #[command(
        after_help = "Smoke-test logs are read from the Job's pod through your kubeconfig; when the pod \
is gone or its log cannot be read, the log tail the operator recorded on the release is printed \
instead, and says so. They are printed once, not followed."
    )]
    Logs {
        /// The PackitRelease.
        release: String,
        /// Print what is there and stop instead of following the build.
        #[arg(long)]
        no_follow: bool,
        /// The logs of the release's smoke-test Jobs instead of its build.
        #[arg(long)]
        smoke_tests: bool,
        /// Only the smoke tests run in this environment (implies
        /// --smoke-tests).
        #[arg(short, long, value_name = "ENV")]
        environment: Option<String>,
        /// Only the smoke test of this name (implies --smoke-tests).
        #[arg(long, value_name = "NAME")]
        test: Option<String>,
        /// Only the last N lines of each log.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
        tail: Option<i64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterAction {
    /// Create the remote ServiceAccount and role, and the kubeconfig Secret.
    Add {
        /// The cluster's name: the Secret's, which environments name in
        /// cluster.kubeconfigSecretRef.
        name: String,
        /// The server URL the operator reaches the cluster at (default:
        /// the context's).
        #[arg(long, value_name = "URL")]
        server: Option<String>,
    },
    /// Delete the kubeconfig Secret and the remote ServiceAccount and role.
    Remove {
        /// The cluster's name.
        name: String,
    },
}

/// Parses the arguments and runs the command; returns the exit code.
pub async fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and succeed; clap's own usage
            // exit code (2) would clash with "not found".
            let code = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
            let _ = e.print();
            return code as i32;
        }
    };
    match cluster::run(cli).await {
        Ok(()) => Exit::Ok as i32,
        Err(f) => {
            eprintln!("error: {}", f.message);
            f.exit as i32
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "kubectl-packit",
            "rollback",
            "svc",
            "-e",
            "production",
            "--at",
            "+2h",
            "-n",
            "team",
        ])
        .unwrap();
        assert_eq!(cli.namespace.as_deref(), Some("team"));
        assert!(matches!(
            cli.command,
            Command::Rollback { ref environment, ref at, .. }
                if environment == "production" && at.as_deref() == Some("+2h")
        ));
        assert!(Cli::try_parse_from(["kubectl-packit", "rollback", "svc"]).is_err());
        assert!(Cli::try_parse_from(["kubectl-packit", "status", "-o", "xml"]).is_err());
    }

    #[test]
    fn logs_of_smoke_tests() {
        let cli = Cli::try_parse_from([
            "kubectl-packit",
            "logs",
            "svc-2",
            "-e",
            "staging",
            "--test",
            "checkout",
            "--tail",
            "20",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Logs { ref release, smoke_tests: false, ref environment, ref test, tail: Some(20), .. }
                if release == "svc-2" && environment.as_deref() == Some("staging") && test.as_deref() == Some("checkout")
        ));
        let cli =
            Cli::try_parse_from(["kubectl-packit", "logs", "svc-2", "--smoke-tests"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Logs {
                smoke_tests: true,
                environment: None,
                test: None,
                tail: None,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["kubectl-packit", "logs", "svc-2", "--tail", "-1"]).is_err());
    }

    #[test]
    fn help_documents_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("kubectl packit rollback"), "{help}");
    }
}
