//! W5500-EVB-Pico board support shared by the two firmwares in `src/bin`:
//! the W5500 on SPI0 (through embassy-net-wiznet), the network stack and
//! the UDP socket, with the same settings for the Dispatch device
//! (`dispatch`) and the UDP-echo baseline (`udp_echo`) that the footprint
//! report compares it with.
//!
//! Edit [`ADDRESS`] and [`SEED`] for your network.
#![no_std]

use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use embassy_executor::Spawner;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{Ipv4Cidr, Stack, StackResources, StaticConfigV4};
use embassy_net_wiznet::chip::W5500;
use embassy_net_wiznet::{Device, Runner, State};
use embassy_rp::clocks::RoscRng;
use embassy_rp::gpio::{Input, Level, Output, Pull};
use embassy_rp::peripherals::{DMA_CH0, DMA_CH1, SPI0};
use embassy_rp::spi::{self, Async, Spi};
use embassy_rp::watchdog::Watchdog;
use embassy_rp::{bind_interrupts, dma};
use embassy_time::Delay;
use embedded_hal_bus::spi::ExclusiveDevice;
use static_cell::StaticCell;

/// The board's address on the network.
pub const ADDRESS: Ipv4Cidr = Ipv4Cidr::new(Ipv4Addr::new(192, 168, 1, 51), 24);
/// The UDP port Dispatch (or the echo) listens on.
pub const PORT: u16 = 7000;
/// A `dispatch-std` server to join through.
pub const SEED: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 10), 7400));

bind_interrupts!(struct Irqs {
    DMA_IRQ_0 => dma::InterruptHandler<DMA_CH0>, dma::InterruptHandler<DMA_CH1>;
});

type Bus = ExclusiveDevice<Spi<'static, SPI0, Async>, Output<'static>, Delay>;

#[embassy_executor::task]
async fn ethernet_task(runner: Runner<'static, W5500, Bus, Input<'static>, Output<'static>>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Device<'static>>) -> ! {
    runner.run().await
}

/// What both firmwares start from.
pub struct Board {
    /// The network stack, its tasks running, its address configured.
    pub stack: Stack<'static>,
    /// Entropy from the ring oscillator, for `Config::seed`.
    pub seed: u64,
    /// Grows with every reset: a boot counter in a watchdog scratch
    /// register (kept across resets, not across power loss) in the high
    /// half, random bits in the low half.
    pub incarnation: u64,
}

/// Starts the W5500 and the network stack.
pub async fn init(spawner: Spawner) -> Board {
    let p = embassy_rp::init(Default::default());
    let mut rng = RoscRng;

    let mut watchdog = Watchdog::new(p.WATCHDOG);
    let boots = watchdog.get_scratch(0).wrapping_add(1);
    watchdog.set_scratch(0, boots);
    let incarnation = (u64::from(boots) << 32) | u64::from(rng.next_u32());

    let mut spi_config = spi::Config::default();
    spi_config.frequency = 50_000_000;
    // W5500-EVB-Pico wiring: SPI0 on GP16 (MISO), GP17 (CS), GP18 (SCK),
    // GP19 (MOSI); INTn on GP21, RSTn on GP20.
    let spi = Spi::new(
        p.SPI0, p.PIN_18, p.PIN_19, p.PIN_16, p.DMA_CH0, p.DMA_CH1, Irqs, spi_config,
    );
    let cs = Output::new(p.PIN_17, Level::High);
    let interrupt = Input::new(p.PIN_21, Pull::Up);
    let reset = Output::new(p.PIN_20, Level::High);

    // A locally administered unicast address, random per board and boot.
    let mut mac = [0u8; 6];
    rng.fill_bytes(&mut mac);
    mac[0] = (mac[0] & 0xfc) | 0x02;

    static WIZNET: StaticCell<State<4, 4>> = StaticCell::new();
    let Ok((device, runner)) = embassy_net_wiznet::new(
        mac,
        WIZNET.init(State::new()),
        ExclusiveDevice::new(spi, cs, Delay),
        interrupt,
        reset,
    )
    .await
    else {
        panic!("the W5500 does not answer on SPI0");
    };
    spawner.spawn(ethernet_task(runner).expect("the Ethernet task is spawned once"));

    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: ADDRESS,
        gateway: None,
        dns_servers: Default::default(),
    });
    static STACK: StaticCell<StackResources<3>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        device,
        config,
        STACK.init(StackResources::new()),
        rng.next_u64(),
    );
    spawner.spawn(net_task(runner).expect("the network task is spawned once"));
    stack.wait_config_up().await;
    Board {
        stack,
        seed: rng.next_u64(),
        incarnation,
    }
}

/// Datagrams each way the socket holds, and its buffers' bytes.
const SOCKET_PACKETS: usize = 8;
const SOCKET_RX_BYTES: usize = 4096;
const SOCKET_TX_BYTES: usize = 2048;

/// The UDP socket both firmwares use, bound to [`PORT`]: its receive buffer
/// holds two full-size datagrams from servers (1472 bytes each).
pub fn udp_socket(stack: Stack<'static>) -> UdpSocket<'static> {
    static RX_META: StaticCell<[PacketMetadata; SOCKET_PACKETS]> = StaticCell::new();
    static RX: StaticCell<[u8; SOCKET_RX_BYTES]> = StaticCell::new();
    static TX_META: StaticCell<[PacketMetadata; SOCKET_PACKETS]> = StaticCell::new();
    static TX: StaticCell<[u8; SOCKET_TX_BYTES]> = StaticCell::new();
    let mut socket = UdpSocket::new(
        stack,
        RX_META.init([PacketMetadata::EMPTY; SOCKET_PACKETS]),
        RX.init([0; SOCKET_RX_BYTES]),
        TX_META.init([PacketMetadata::EMPTY; SOCKET_PACKETS]),
        TX.init([0; SOCKET_TX_BYTES]),
    );
    socket.bind(PORT).expect("the port is free");
    socket
}
