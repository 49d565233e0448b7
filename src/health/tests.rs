mod http_tests;
mod restarts_tests;
mod rollout_tests;

/// The controller shares one prober and runs these futures on a
/// multi-threaded runtime: a compile-time check.
#[test]
fn prober_and_futures_are_shareable() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let prober = super::HttpProber::new(Default::default()).unwrap();
    send_sync(&prober);
    send(prober.probe_due("key", &[], chrono::Utc::now()));
    let owner = crate::deploy::Owner {
        name: "packit".into(),
        namespace: "packit".into(),
    };
    // Never called: no client is made.
    let _futures = |c: kube::Client| {
        send(super::observe(&c, "ns", &[], &[]));
        send(crate::deploy::apply_images(&c, "ns", &owner, &[]));
        send(crate::deploy::current_images(&c, "ns", &[]));
    };
}
