//! What the board firmwares share beyond the application: the fixed heap,
//! the node in static memory, and its tasks.

use core::net::SocketAddr;

use dispatch_embassy::{Config, Dispatch, Handle, Runner};
use embassy_executor::Spawner;
use embassy_net::udp::UdpSocket;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embedded_alloc::LlffHeap as Heap;
use static_cell::StaticCell;

use crate::{App, Log};

/// The core's heap. A node at the limits of `Config::small()` (32 entries,
/// 8 peers) peaks near 29 KB in the std example's `heap_report`; the
/// footprint report prints the peak of the tap scenario.
pub const HEAP_BYTES: usize = 32 * 1024;

#[global_allocator]
static HEAP: Heap = Heap::empty();

/// The node, with the driver's default queues.
pub type Node = Dispatch<NoopRawMutex>;
/// Its runner over the board's UDP socket.
pub type NodeRunner = Runner<'static, NoopRawMutex, UdpSocket<'static>, 16, 8, 8>;
/// The handle application tasks use.
pub type NodeHandle = Handle<'static, NoopRawMutex, 16, 8, 8>;

/// Gives the allocator its memory. Call it once, first thing in `main`,
/// before anything allocates.
pub fn init_heap() {
    // SAFETY: called once (the macro's static region is taken once), before
    // anything allocates.
    #[allow(unsafe_code)]
    unsafe {
        embedded_alloc::init!(HEAP, HEAP_BYTES);
    }
}

/// `Config::small()` with the seed of the node's random choices, which
/// comes from the board's RNG.
pub fn config(rng_seed: u64) -> Config {
    let mut config = Config::small();
    config.seed = rng_seed;
    config
}

#[embassy_executor::task]
async fn dispatch_task(runner: NodeRunner) {
    runner.run().await
}

#[embassy_executor::task]
async fn answer_task(handle: NodeHandle, log: Log) -> ! {
    crate::answer_calls(handle, log).await
}

/// Starts the node `app.name` on `socket` with `config`, joining through
/// `seeds`: spawns its runner and the task that answers calls, and
/// registers `sensor/<app.sensor>`. `incarnation` grows with every boot.
/// Then run [`run_events`](crate::run_events) with the handle.
pub fn start(
    spawner: Spawner,
    app: &App,
    socket: UdpSocket<'static>,
    seeds: &[SocketAddr],
    config: Config,
    incarnation: u64,
    log: Log,
) -> NodeHandle {
    static DISPATCH: StaticCell<Node> = StaticCell::new();
    let node = match Dispatch::new(&app.name, incarnation, config) {
        Ok(node) => node,
        Err(e) => panic!("{e}"),
    };
    let dispatch = DISPATCH.init(node);
    spawner.spawn(dispatch_task(dispatch.runner(socket, seeds)).expect("spawned once"));
    let handle = dispatch.handle();
    if let Err(e) = handle.add_service("sensor", &app.sensor, b"") {
        panic!("cannot register sensor/{}: {e}", app.sensor);
    }
    log(format_args!(
        "registered sensor/{} on {} (incarnation {incarnation})",
        app.sensor, app.name
    ));
    spawner.spawn(answer_task(handle, log).expect("spawned once"));
    handle
}
