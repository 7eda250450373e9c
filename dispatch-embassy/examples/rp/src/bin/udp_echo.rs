//! The baseline: the same board, clocks, Ethernet and network stack as the
//! Dispatch device, and a UDP socket with the same buffers that sends every
//! datagram back. The footprint report subtracts it from the device.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use panic_halt as _;

#[embassy_executor::main(
    executor = "embassy_rp::executor::Executor",
    entry = "cortex_m_rt::entry"
)]
async fn main(spawner: Spawner) {
    let board = dispatch_embassy_example_rp::init(spawner).await;
    let socket = dispatch_embassy_example_rp::udp_socket(board.stack);
    let mut buf = [0u8; 1472];
    loop {
        if let Ok((len, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..len], from).await;
        }
    }
}
