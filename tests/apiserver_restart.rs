//! The API server restarts in the middle of a release; the operator rides it
//! out and the release completes. Its own test binary, because the restart
//! would disturb tests running beside it.

mod support;

use anyhow::Result;
use packit_operator::plan::ReleasePhase;

use support::cluster::restart_apiserver;
use support::train::Train;

#[tokio::test]
async fn a_release_survives_an_api_server_restart() -> Result<()> {
    let t = Train::new("train-apiserver", |_| {}).await?;
    t.release_now("first").await?;
    let name = t.in_flight().await?;
    let images = t.build(&name).await?;
    t.wait_phase(&name, ReleasePhase::Staging).await?;
    tokio::task::spawn_blocking(restart_apiserver).await??;
    t.wait_phase(&name, ReleasePhase::Released).await?;
    assert_eq!(
        t.images("prod").await?,
        (images["service"].clone(), images["worker"].clone())
    );
    let logs = t.op.logs();
    let mut t = t;
    assert!(t.op.is_running(), "the operator exited:\n{logs}");
    Ok(())
}
