//! Board support for QEMU's `mps2-an386` machine (Cortex-M4), shared by the
//! firmwares in `src/bin`: the SysTick time driver ([`systick`]), the
//! LAN9118 Ethernet driver ([`lan9118`]), the network stack, and logging
//! and exit through semihosting (QEMU's `-semihosting-config
//! enable=on,target=native` prints the log on its standard output and
//! exits with the firmware's status).
//!
//! The board has no RNG and no clock of its own: the seed of its random
//! choices mixes the host's time (semihosting `SYS_TIME`, read as a board
//! reads its RTC) with the controller's free-running counter, and the
//! incarnation is the host's time in milliseconds, which grows with every
//! boot as a boot counter would.
#![no_std]

extern crate alloc;

pub mod lan9118;
pub mod settings;
pub mod systick;

use core::net::Ipv4Addr;

use cortex_m_semihosting::{debug, hprintln};
use dispatch_embassy::socket::{self, SocketBuffers};
use embassy_executor::Spawner;
use embassy_net::udp::UdpSocket;
use embassy_net::{Ipv4Cidr, Stack, StackResources, StaticConfigV4};
use static_cell::{ConstStaticCell, StaticCell};

pub use cortex_m_semihosting::hprintln as log;

/// The echo's address on the network (the tap device the test makes is
/// 192.168.69.100/24); the Dispatch firmware takes `address=` instead.
pub const ADDRESS: Ipv4Cidr = Ipv4Cidr::new(Ipv4Addr::new(192, 168, 69, 1), 24);
/// The UDP port Dispatch (or the echo) listens on.
pub const PORT: u16 = 7000;

/// What `init` brought up.
pub struct Board {
    /// The network stack, configured and up.
    pub stack: Stack<'static>,
    /// A seed for the node's random choices.
    pub seed: u64,
    /// Grows with every boot.
    pub incarnation: u64,
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, lan9118::Lan9118>) -> ! {
    runner.run().await
}

/// Milliseconds since the Unix epoch on the host, through semihosting
/// (`SYS_TIME` gives seconds; `SYS_ELAPSED` is not in QEMU's set, so the
/// sub-second part comes from the controller's counter).
fn host_millis() -> u64 {
    // SAFETY: SYS_TIME takes no argument block and writes no memory.
    #[allow(unsafe_code)]
    let secs = unsafe { cortex_m_semihosting::syscall!(TIME) } as u64;
    secs * 1000 + u64::from(lan9118::free_run() / 25_000 % 1000)
}

/// Starts the tick, the Ethernet controller and the network stack at
/// `address`; returns once the stack is up. Exits QEMU with a failure when
/// the controller is not there.
pub async fn init(spawner: Spawner, address: Ipv4Cidr) -> Board {
    let core = cortex_m::Peripherals::take().expect("taken once");
    systick::init(core.SYST);
    let device = match lan9118::Lan9118::new() {
        Ok(d) => d,
        Err(e) => fail(format_args!("no LAN9118: {e:?}")),
    };
    let mac = device.mac();
    log!(
        "lan9118 id {:#010x}, mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        device.id_rev(),
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5]
    );
    let millis = host_millis();
    let seed = millis ^ (u64::from(lan9118::free_run()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address,
        gateway: None,
        dns_servers: Default::default(),
    });
    static STACK: StaticCell<StackResources<3>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(device, config, STACK.init(StackResources::new()), seed);
    spawner.spawn(net_task(runner).expect("the network task is spawned once"));
    stack.wait_config_up().await;
    Board {
        stack,
        seed: seed.rotate_left(17) ^ millis,
        incarnation: millis,
    }
}

/// The UDP socket both firmwares use, bound to [`PORT`], over the driver's
/// default buffers (two full-size datagrams from servers) in static memory.
pub fn udp_socket(stack: Stack<'static>) -> UdpSocket<'static> {
    static BUFFERS: ConstStaticCell<SocketBuffers> = ConstStaticCell::new(SocketBuffers::new());
    socket::bind(stack, BUFFERS.take(), PORT).expect("the port is free")
}

/// A line of the log, for the application.
pub fn log_line(line: core::fmt::Arguments<'_>) {
    hprintln!("{}", line);
}

/// Logs `why` and exits QEMU with a failure status.
pub fn fail(why: core::fmt::Arguments<'_>) -> ! {
    hprintln!("error: {}", why);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fail(format_args!("panic: {info}"))
}
