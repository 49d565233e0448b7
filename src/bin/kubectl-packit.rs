//! `kubectl packit`: the kubectl plugin for packit-operator release trains.
//! Put this binary on PATH as `kubectl-packit`.

#[tokio::main]
async fn main() {
    std::process::exit(packit_operator::cli::main().await);
}
