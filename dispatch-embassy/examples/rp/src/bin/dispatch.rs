//! A Dispatch device on a W5500-EVB-Pico (RP2040): it joins the cluster through
//! [`SEED`](dispatch_embassy_example_rp::SEED), registers `sensor/s1`,
//! answers calls to it with a reading, and lists and calls the cluster's
//! `uploader` instances. The core's heap is a fixed region (see `HEAP`).
#![no_std]
#![no_main]

use dispatch_embassy::{Config, Dispatch, Handle, Runner, ServiceEvent};
use embassy_executor::Spawner;
use embassy_net::udp::UdpSocket;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::Timer;
use embedded_alloc::LlffHeap as Heap;
use panic_halt as _;
use static_cell::StaticCell;

extern crate alloc;

/// The core's heap. A node at the limits of `Config::small()` (32 entries,
/// 8 peers) peaks near 29 KB in the std example's `heap_report`; the
/// footprint report prints the peak of the tap scenario.
const HEAP_BYTES: usize = 32 * 1024;

#[global_allocator]
static HEAP: Heap = Heap::empty();

type Node = Dispatch<NoopRawMutex>;
type NodeRunner = Runner<'static, NoopRawMutex, UdpSocket<'static>, 16, 8, 8>;
type NodeHandle = Handle<'static, NoopRawMutex, 16, 8, 8>;

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

#[embassy_executor::main(
    executor = "embassy_rp::executor::Executor",
    entry = "cortex_m_rt::entry"
)]
async fn main(spawner: Spawner) {
    // SAFETY: runs once, before anything allocates.
    #[allow(unsafe_code)]
    unsafe {
        embedded_alloc::init!(HEAP, HEAP_BYTES);
    }
    let board = dispatch_embassy_example_rp::init(spawner).await;
    let socket = dispatch_embassy_example_rp::udp_socket(board.stack);

    let mut config = Config::small();
    config.seed = board.seed;
    static DISPATCH: StaticCell<Node> = StaticCell::new();
    let Ok(node) = Dispatch::new("rp2040-1", board.incarnation, config) else {
        panic!("Config::small() fits the default queues");
    };
    let dispatch = DISPATCH.init(node);
    spawner.spawn(
        dispatch_task(dispatch.runner(socket, &[dispatch_embassy_example_rp::SEED]))
            .expect("spawned once"),
    );
    let handle = dispatch.handle();
    handle
        .add_service("sensor", "s1", b"")
        .expect("room for one instance");
    spawner.spawn(answer_task(handle).expect("spawned once"));

    loop {
        match handle.next_event().await {
            ServiceEvent::Joined(s) if &*s.ty == "uploader" => {
                let _ = handle.call("uploader", b"reading", b"s1", None).await;
            }
            _ => {}
        }
        Timer::after_millis(10).await;
    }
}
