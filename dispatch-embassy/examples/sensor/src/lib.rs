//! The Dispatch application every board example runs, the same on each
//! board: the node lives in a fixed heap of [`HEAP_BYTES`]; it joins the
//! cluster through a seed, registers `sensor/s1`, answers every call to it
//! with a reading, and calls the owner of `reading` among the cluster's
//! `uploader` instances whenever one joins.
//!
//! A board's `main` gives it what only the board has: the network stack,
//! the seed of the node's random choices from the board's RNG and an
//! incarnation that grows with every boot.
//!
//! ```ignore
//! dispatch_embassy_example_sensor::init_heap();
//! let board = my_board::init(spawner).await;
//! let socket = my_board::udp_socket(board.stack);
//! let handle = dispatch_embassy_example_sensor::start(spawner, "board-1", socket, SEED, board.seed, board.incarnation);
//! dispatch_embassy_example_sensor::call_uploaders(handle).await
//! ```
#![no_std]

use core::net::SocketAddr;

use dispatch_embassy::{Config, Dispatch, Handle, Runner, ServiceEvent};
use embassy_executor::Spawner;
use embassy_net::udp::UdpSocket;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::Timer;
use embedded_alloc::LlffHeap as Heap;
use static_cell::StaticCell;

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

#[embassy_executor::task]
async fn dispatch_task(runner: NodeRunner) {
    runner.run().await
}

/// Answers every call to the sensor with a reading.
#[embassy_executor::task]
async fn answer_task(handle: NodeHandle) -> ! {
    let mut reading: u32 = 0;
    loop {
        let request = handle.next_request().await;
        reading = reading.wrapping_add(1);
        let _ = handle.reply(&request.id, &reading.to_le_bytes());
    }
}

/// Starts the node `name` on `socket`, joining through `seed`:
/// spawns its runner and the task that answers calls to `sensor/s1`, and
/// registers that instance. `rng_seed` comes from the board's RNG and
/// `incarnation` grows with every boot.
pub fn start(
    spawner: Spawner,
    name: &str,
    socket: UdpSocket<'static>,
    seed: SocketAddr,
    rng_seed: u64,
    incarnation: u64,
) -> NodeHandle {
    let mut config = Config::small();
    config.seed = rng_seed;
    static DISPATCH: StaticCell<Node> = StaticCell::new();
    let Ok(node) = Dispatch::new(name, incarnation, config) else {
        panic!("Config::small() fits the default queues");
    };
    let dispatch = DISPATCH.init(node);
    spawner.spawn(dispatch_task(dispatch.runner(socket, &[seed])).expect("spawned once"));
    let handle = dispatch.handle();
    handle
        .add_service("sensor", "s1", b"")
        .expect("room for one instance");
    spawner.spawn(answer_task(handle).expect("spawned once"));
    handle
}

/// Calls the owner of `reading` among the `uploader` instances each time
/// one joins, for ever.
pub async fn call_uploaders(handle: NodeHandle) -> ! {
    loop {
        if let ServiceEvent::Joined(s) = handle.next_event().await {
            if &*s.ty == "uploader" {
                let _ = handle.call("uploader", b"reading", b"s1", None).await;
            }
        }
        Timer::after_millis(10).await;
    }
}
