//! The emulated board's first firmware: brings up the LAN9118 and the
//! network stack, then sends every UDP datagram that reaches
//! [`PORT`](dispatch_embassy_example_qemu_mps2::PORT) back to its sender.
//! It logs `ready <address>:<port>` once it listens, and a line each
//! hundredth echo.
#![no_std]
#![no_main]

use dispatch_embassy_example_qemu_mps2::{self as board, log};
use embassy_executor::Spawner;

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    // The board crate allocates (its settings); the echo itself does not.
    dispatch_embassy_example_sensor::init_heap();
    let b = board::init(spawner, board::ADDRESS).await;
    let socket = board::udp_socket(b.stack);
    log!("ready {}:{}", board::ADDRESS.address(), board::PORT);
    let mut buf = [0u8; 1472];
    let mut echoed: u32 = 0;
    loop {
        let Ok((len, meta)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if socket.send_to(&buf[..len], meta.endpoint).await.is_ok() {
            echoed += 1;
            if echoed.is_multiple_of(100) {
                log!("echoed {}", echoed);
            }
        }
    }
}
