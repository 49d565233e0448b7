//! Many trains under one operator: the scale test (20 trains, asserting
//! counts) and the controller benchmark (`make bench-controller`, 100, 300
//! and 1,000 trains, printing figures). Both drive the same fleet: two
//! waves of releases through staging into production windows that all open
//! in the same minute, a rest between them, 10 % of the trains failing
//! during the second wave's soak, and a restart with every train present.

mod support;

use anyhow::{Result, ensure};
use support::argo::{self, ArgoFigures, ArgoFleet};
use support::fleet::{Fleet, Rest, Resync, Wave};
use support::measure::{ProcStat, Scrape, growth, histogram_quantile, mib, quantile, sum};

/// Every tenth train, at least one.
fn failing(size: usize) -> Vec<usize> {
    (0..size).step_by(10).map(|i| (i + 3) % size).collect()
}

#[tokio::test]
async fn twenty_trains_release_rest_roll_back_and_resync() -> Result<()> {
    let mut fleet = Fleet::new(20).await?;
    let first = fleet.wave(&[]).await?;
    ensure!(
        first.released == 20 && first.other.is_empty(),
        "first wave: {first:?}"
    );
    let rest = fleet.at_rest(30).await?;
    ensure!(rest.writes() == 0.0, "writes at rest: {:?}", rest.requests);
    let broken = failing(20);
    let second = fleet.wave(&broken).await?;
    ensure!(
        second.released == 20 - broken.len()
            && second.rolled_back == broken.len()
            && second.other.is_empty(),
        "second wave: {second:?}"
    );
    ensure!(
        second.rollbacks.iter().all(|r| r.back.is_some()),
        "every failing train back on its previous image: {:?}",
        second.rollbacks
    );
    let resync = fleet.resync().await?;
    ensure!(resync.writes() == 0.0, "writes on resync: {resync:?}");
    fleet.teardown().await
}

/// One size's figures.
struct Figures {
    size: usize,
    rest: Rest,
    peak: u64,
    first: Wave,
    second: Wave,
    resync: Resync,
    /// Argo Rollouts with as many Rollouts as the fleet has workloads.
    argo: Option<ArgoFigures>,
}

#[tokio::test]
#[ignore = "the controller benchmark: make bench-controller"]
async fn bench_controller() -> Result<()> {
    let sizes: Vec<usize> = std::env::var("BENCH_TRAINS")
        .unwrap_or_else(|_| "100,300,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut all = Vec::new();
    for size in sizes {
        println!("\n== {size} trains ==");
        let mut fleet = Fleet::new(size).await?;
        let first = fleet.wave(&[]).await?;
        println!("first wave: {}", summary(&first));
        let rest = fleet.at_rest(60).await?;
        let second = fleet.wave(&failing(size)).await?;
        println!("second wave: {}", summary(&second));
        let peak = fleet.proc()?.peak;
        let resync = fleet.resync().await?;
        let mut figures = Figures {
            size,
            rest,
            peak,
            first,
            second,
            resync,
            argo: None,
        };
        print_size(&figures);
        fleet.teardown().await?;
        match argo::built() {
            Ok(dir) => {
                println!("Argo Rollouts with {} Rollouts", size * 6);
                let mut peer = ArgoFleet::new(dir, size).await?;
                figures.argo = Some(peer.measure().await?);
                peer.stop();
            }
            Err(why) => println!("Argo Rollouts left out: {why}"),
        }
        all.push(figures);
        // So far, in case a larger size does not get through.
        print_table(&all);
    }
    Ok(())
}

fn summary(w: &Wave) -> String {
    format!(
        "{:.1} s, {} released, {} rolled back, other: {:?}",
        w.duration.as_secs_f64(),
        w.released,
        w.rolled_back,
        w.other
    )
}

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3} s"))
}

fn print_size(f: &Figures) {
    println!(
        "requests at rest over {:.0} s by verb and resource:",
        f.rest.seconds
    );
    if f.rest.requests.is_empty() {
        println!("  none");
    }
    for (k, v) in &f.rest.requests {
        println!("  {:<8} {:<24} {v}", k[0], k[1]);
    }
    let patch: Vec<f64> = f
        .second
        .rollbacks
        .iter()
        .filter_map(|r| r.to_patch())
        .collect();
    let back: Vec<f64> = f
        .second
        .rollbacks
        .iter()
        .filter_map(|r| r.to_back())
        .collect();
    println!(
        "rollbacks watched: {} of {}; failing pod -> patch p50 {} p99 {}; -> back p50 {} p99 {}",
        patch.len(),
        f.second.rollbacks.len(),
        secs(quantile(&patch, 0.5)),
        secs(quantile(&patch, 0.99)),
        secs(quantile(&back, 0.5)),
        secs(quantile(&back, 0.99)),
    );
}

fn print_table(all: &[Figures]) {
    let row = |name: &str, cell: &dyn Fn(&Figures) -> String| {
        let cells: Vec<String> = all.iter().map(cell).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    println!();
    let heads: Vec<String> = all.iter().map(|f| format!("{} trains", f.size)).collect();
    println!("| | {} |", heads.join(" | "));
    println!("|---|{}", "---|".repeat(all.len()));
    // Our figure, and Argo Rollouts' beside it with the ratio.
    let beside = |ours: f64, theirs: Option<f64>, show: &dyn Fn(f64) -> String| match theirs {
        Some(t) if t > 0.0 => format!("{} (Argo {}, {:.2}x)", show(ours), show(t), ours / t),
        Some(t) => format!("{} (Argo {})", show(ours), show(t)),
        None => show(ours),
    };
    let argo = |f: &Figures, pick: &dyn Fn(&ArgoFigures) -> f64| f.argo.as_ref().map(pick);
    row("resident memory at rest", &|f| {
        beside(mib(f.rest.rss), argo(f, &|a| mib(a.rss_at_rest)), &|v| {
            format!("{v:.1} MiB")
        })
    });
    row("resident memory at peak", &|f| {
        beside(mib(f.peak), argo(f, &|a| mib(a.peak)), &|v| {
            format!("{v:.1} MiB")
        })
    });
    row("CPU at rest", &|f| {
        beside(
            f.rest.cpu_seconds_per_minute,
            argo(f, &|a| a.cpu_seconds_per_minute),
            &|v| format!("{v:.2} s/min"),
        )
    });
    row("API requests at rest (60 s)", &|f| {
        beside(
            sum(f.rest.requests.values()),
            argo(f, &|a| a.requests_at_rest),
            &|v| format!("{v}"),
        )
    });
    row("API writes at rest (60 s)", &|f| {
        beside(f.rest.writes(), argo(f, &|a| a.writes_at_rest), &|v| {
            format!("{v}")
        })
    });
    row(
        "wave: window open -> all Released (Argo: image changed -> all Healthy)",
        &|f| {
            beside(
                f.first.duration.as_secs_f64(),
                argo(f, &|a| a.wave.as_secs_f64()),
                &|v| format!("{v:.1} s"),
            )
        },
    );
    row("wave: requests per release (Argo: per 6 Rollouts)", &|f| {
        let per = |v: f64| v / f.size as f64;
        beside(
            per(f.first.requests),
            argo(f, &|a| per(a.wave_requests)),
            &|v| format!("{v:.1}"),
        )
    });
    row("wave: reconcile p50 / p99", &|f| {
        format!(
            "{} / {}",
            secs(f.first.reconcile_p50),
            secs(f.first.reconcile_p99)
        )
    });
    row("verdict -> rollback patch p50 / p99 (operator)", &|f| {
        format!(
            "{} / {}",
            secs(f.second.verdict_to_patch_p50),
            secs(f.second.verdict_to_patch_p99)
        )
    });
    row("failing pod -> rollback patch p50 / p99 (watched)", &|f| {
        let v: Vec<f64> = f
            .second
            .rollbacks
            .iter()
            .filter_map(|r| r.to_patch())
            .collect();
        format!("{} / {}", secs(quantile(&v, 0.5)), secs(quantile(&v, 0.99)))
    });
    row("failing pod -> previous image rolled out p50 / p99", &|f| {
        let v: Vec<f64> = f
            .second
            .rollbacks
            .iter()
            .filter_map(|r| r.to_back())
            .collect();
        format!("{} / {}", secs(quantile(&v, 0.5)), secs(quantile(&v, 0.99)))
    });
    row("resync after restart", &|f| {
        beside(
            f.resync.duration.as_secs_f64(),
            argo(f, &|a| a.resync.as_secs_f64()),
            &|v| format!("{v:.1} s"),
        )
    });
    row("resync requests", &|f| {
        beside(f.resync.total(), argo(f, &|a| a.resync_requests), &|v| {
            format!("{v}")
        })
    });
    row("resync writes", &|f| format!("{}", f.resync.writes()));
}

#[test]
fn measure_reads_counters_and_histograms() {
    let before = Scrape::parse(
        "# HELP x\npackit_api_requests_total{verb=\"get\",resource=\"pods\"} 3\n\
         h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\"} 1\n",
    );
    let after = Scrape::parse(
        "packit_api_requests_total{verb=\"get\",resource=\"pods\"} 5\n\
         packit_api_requests_total{verb=\"patch\",resource=\"deployments\"} 1\n\
         h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"1.0\"} 5\nh_bucket{le=\"+Inf\"} 5\n",
    );
    let grown = growth(&before, &after, "packit_api_requests_total", &["verb"]);
    assert_eq!(grown.get(&vec!["get".to_owned()]), Some(&2.0));
    assert_eq!(grown.get(&vec!["patch".to_owned()]), Some(&1.0));
    // Four new observations, all between 0.1 and 1.0.
    let p50 = histogram_quantile(&before, &after, "h", 0.5).unwrap_or_default();
    assert!((p50 - 0.55).abs() < 1e-9, "{p50}");
    assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
    assert_eq!(quantile(&[], 0.5), None);
    let me = ProcStat::read(std::process::id()).expect("this process's /proc");
    assert!(me.rss > 0 && me.peak >= me.rss, "{me:?}");
}
