//! NUCLEO-H743ZI board support shared by the two firmwares in `src/bin`:
//! clocks, the RNG, the on-chip Ethernet MAC (RMII, LAN8742 PHY) and the
//! network stack, with the same settings for the Dispatch device
//! (`dispatch`) and the UDP-echo baseline (`udp_echo`) that the footprint
//! report compares it with.
//!
//! Edit [`ADDRESS`] and [`SEED`] for your network.
#![no_std]

use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use embassy_executor::Spawner;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{Ipv4Cidr, Stack, StackResources, StaticConfigV4};
use embassy_stm32::bind_interrupts;
use embassy_stm32::eth::{self, Ethernet, GenericPhy, PacketQueue, Sma};
use embassy_stm32::peripherals::{ETH, ETH_SMA, RNG};
use embassy_stm32::rng::{self, Rng};
use embassy_stm32::rtc::{Rtc, RtcConfig};
use static_cell::StaticCell;

/// The board's address on the network.
pub const ADDRESS: Ipv4Cidr = Ipv4Cidr::new(Ipv4Addr::new(192, 168, 1, 50), 24);
/// The UDP port Dispatch (or the echo) listens on.
pub const PORT: u16 = 7000;
/// A `dispatch-std` server to join through.
pub const SEED: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 10), 7400));

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    RNG => rng::InterruptHandler<RNG>;
});

type Device = Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Device>) -> ! {
    runner.run().await
}

/// What both firmwares start from.
pub struct Board {
    /// The network stack, its task running, its address configured.
    pub stack: Stack<'static>,
    /// Entropy from the hardware RNG, for `Config::seed`.
    pub seed: u64,
    /// Grows with every reset: a boot counter in an RTC backup register
    /// (kept across resets, and across power loss when V_BAT is powered) in
    /// the high half, RNG bits in the low half.
    pub incarnation: u64,
}

/// Starts the clocks, the RNG, the Ethernet MAC and the network stack.
pub async fn init(spawner: Spawner) -> Board {
    let p = embassy_stm32::init(clocks());
    let mut rng = Rng::new(p.RNG, Irqs);

    let (rtc, _) = Rtc::new(p.RTC, RtcConfig::default());
    let boots = rtc.read_backup_register(0).unwrap_or(0).wrapping_add(1);
    rtc.write_backup_register(0, boots);
    let incarnation = (u64::from(boots) << 32) | u64::from(rng.next_u32());

    // A locally administered unicast address, random per board and boot.
    let mut mac = [0u8; 6];
    rng.fill_bytes(&mut mac);
    mac[0] = (mac[0] & 0xfc) | 0x02;

    static PACKETS: StaticCell<PacketQueue<4, 4>> = StaticCell::new();
    // NUCLEO-H743ZI's RMII pins.
    let device = Ethernet::new(
        PACKETS.init(PacketQueue::new()),
        p.ETH,
        Irqs,
        p.PA1,  // REF_CLK
        p.PA7,  // CRS_DV
        p.PC4,  // RXD0
        p.PC5,  // RXD1
        p.PG13, // TXD0
        p.PB13, // TXD1
        p.PG11, // TX_EN
        mac,
        p.ETH_SMA,
        p.PA2, // MDIO
        p.PC1, // MDC
    );
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

/// 400 MHz from the internal oscillator; HSI48 for the RNG.
fn clocks() -> embassy_stm32::Config {
    use embassy_stm32::rcc::*;
    let mut config = embassy_stm32::Config::default();
    config.rcc.hsi = Some(HSIPrescaler::DIV1);
    config.rcc.csi = true;
    config.rcc.hsi48 = Some(Default::default());
    config.rcc.pll1 = Some(Pll {
        source: PllSource::HSI,
        prediv: PllPreDiv::DIV4,
        mul: PllMul::MUL50,
        fracn: None,
        divp: Some(PllDiv::DIV2),
        divq: None,
        divr: None,
    });
    config.rcc.sys = Sysclk::PLL1_P;
    config.rcc.ahb_pre = AHBPrescaler::DIV2;
    config.rcc.apb1_pre = APBPrescaler::DIV2;
    config.rcc.apb2_pre = APBPrescaler::DIV2;
    config.rcc.apb3_pre = APBPrescaler::DIV2;
    config.rcc.apb4_pre = APBPrescaler::DIV2;
    config.rcc.voltage_scale = VoltageScale::Scale1;
    config
}
