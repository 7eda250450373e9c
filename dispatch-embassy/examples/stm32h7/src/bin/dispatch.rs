//! A Dispatch device on a NUCLEO-H743ZI: it runs the boards' shared
//! application (`dispatch-embassy-example-sensor`), joining the cluster
//! through [`SEED`](dispatch_embassy_example_stm32h7::SEED), registering
//! `sensor/s1`, answering calls to it, and calling the cluster's
//! `uploader` instances.
#![no_std]
#![no_main]

use dispatch_embassy_example_sensor as app;
use dispatch_embassy_example_stm32h7 as board;
use embassy_executor::Spawner;
use panic_halt as _;

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    app::init_heap();
    let b = board::init(spawner).await;
    let socket = board::udp_socket(b.stack);
    let me = app::App::new("h743-1");
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
