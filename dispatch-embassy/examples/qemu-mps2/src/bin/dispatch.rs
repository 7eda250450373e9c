//! A Dispatch device on QEMU's mps2-an386: the devices' shared application
//! (`dispatch-embassy-example-sensor`) on the real thumb firmware. It reads
//! its settings from `-append` (see `settings`), joins the cluster,
//! registers `sensor/s1`, answers calls to it, and calls the owner of
//! `file.png` among the `uploader` instances when one joins; its log goes
//! to QEMU's standard output through semihosting.
#![no_std]
#![no_main]

use dispatch_embassy::dispatch_core::keyring::{Key, Keyring};
use dispatch_embassy_example_qemu_mps2::settings::{self, Settings};
use dispatch_embassy_example_qemu_mps2::{self as board, log};
use dispatch_embassy_example_sensor as app;
use embassy_executor::Spawner;

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    app::init_heap();
    let mut line = [0u8; 512];
    let s = Settings::parse(settings::cmdline(&mut line))
        .unwrap_or_else(|e| board::fail(format_args!("{e}")));
    let b = board::init(spawner, s.address).await;
    let socket = board::udp_socket(b.stack);
    let mut config = app::config(b.seed);
    if let Some(period) = s.heartbeat {
        config.heartbeat_period = period;
    }
    if let Some(down) = s.down_after {
        config.down_after = down;
    }
    if let Some(k) = s.key {
        let key = Key::new(1, k).unwrap_or_else(|e| board::fail(format_args!("key=: {e}")));
        config.keyring = Some(Keyring::new(key));
    }
    log!("listening at {}:{}", s.address.address(), board::PORT);
    let me = app::App::new(&s.name);
    let handle = app::start(
        spawner,
        &me,
        socket,
        &s.seeds,
        config,
        b.incarnation,
        board::log_line,
    );
    app::run_events(handle, &me, board::log_line).await
}
