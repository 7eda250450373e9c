//! The composed example (identify, ping and Dispatch in one user-defined
//! behaviour) runs here as a test: its two nodes identify each other with
//! Dispatch's protocols listed, ping, join one cluster and answer a call.

#[path = "../examples/composed.rs"]
mod composed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_runs_beside_identify_and_ping_in_a_user_behaviour() {
    let outcome = composed::run().await.unwrap();
    for protocol in ["/dispatch/1", "/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"] {
        assert!(
            outcome.protocols.iter().any(|p| p == protocol),
            "identify lists {protocol}: {:?}",
            outcome.protocols
        );
    }
    assert!(
        outcome
            .protocols
            .iter()
            .any(|p| p.starts_with("/dispatch/meshsub/")),
        "Dispatch's gossipsub has its own protocol name: {:?}",
        outcome.protocols
    );
    assert!(outcome.rtt > std::time::Duration::ZERO);
    assert!(outcome.member);
    assert_eq!(outcome.reply, "a/u1 stored file.png");
}
