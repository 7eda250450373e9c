//! A Dispatch device on a W5500-EVB-Pico (RP2040): it runs the boards'
//! shared application (`dispatch-embassy-example-sensor`), joining the
//! cluster through [`SEED`](dispatch_embassy_example_rp::SEED), registering
//! `sensor/s1`, answering calls to it, and calling the cluster's
//! `uploader` instances.
#![no_std]
#![no_main]

use dispatch_embassy_example_rp as board;
use dispatch_embassy_example_sensor as app;
use embassy_executor::Spawner;
use panic_halt as _;

#[embassy_executor::main(
    executor = "embassy_rp::executor::Executor",
    entry = "cortex_m_rt::entry"
)]
async fn main(spawner: Spawner) {
    app::init_heap();
    let b = board::init(spawner).await;
    let socket = board::udp_socket(b.stack);
    let me = app::App::new("rp2040-1");
    let config = app::config(b.seed);
    let handle = app::start(
        spawner,
        &me,
        socket,
        &[board::SEED],
        config,
        b.incarnation,
        app::no_log,
    );
    app::run_events(handle, &me, app::no_log).await
}
