//! A driver for the SMSC LAN9118 Ethernet controller, for embassy-net.
//!
//! QEMU's mps2 machines map one at `0x4020_0000`. The driver runs the
//! controller in 32-bit mode and polls it: a receive or transmit that finds
//! nothing to do registers its waker, and the SysTick handler wakes them
//! every tick (1 ms), so the stack sees a frame at most a tick after it
//! arrived. Frames move through the controller's FIFOs by programmed I/O:
//! each received frame is preceded by a status word in the RX status FIFO
//! (its length, CRC included, and an error bit), and each frame to send is
//! two command words then its data.

use core::ptr;
use core::task::Context;

use embassy_net_driver::{Capabilities, HardwareAddress, LinkState};
use embassy_sync::waitqueue::AtomicWaker;

/// Where QEMU's mps2 machines map the controller.
const BASE: usize = 0x4020_0000;

// System control and status registers (byte offsets from BASE).
const RX_DATA_FIFO: usize = 0x00;
const TX_DATA_FIFO: usize = 0x20;
const RX_STATUS_FIFO: usize = 0x40;
const TX_STATUS_FIFO: usize = 0x48;
const ID_REV: usize = 0x50;
const IRQ_CFG: usize = 0x54;
const INT_EN: usize = 0x5c;
const BYTE_TEST: usize = 0x64;
const RX_CFG: usize = 0x6c;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7c;
const TX_FIFO_INF: usize = 0x80;
const FREE_RUN: usize = 0x9c;
const MAC_CSR_CMD: usize = 0xa4;
const MAC_CSR_DATA: usize = 0xa8;

/// What BYTE_TEST reads on a LAN9118 in 32-bit mode.
const BYTE_TEST_VALUE: u32 = 0x8765_4321;
const HW_CFG_SRST: u32 = 1;
const TX_CFG_TX_ON: u32 = 1 << 1;
const CSR_BUSY: u32 = 1 << 31;
const CSR_READ: u32 = 1 << 30;

// MAC registers, reached through MAC_CSR_CMD and MAC_CSR_DATA.
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
const MAC_MII_ACC: u32 = 6;
const MAC_MII_DATA: u32 = 7;
const MII_BUSY: u32 = 1;
/// The internal PHY's address, and its basic status register's link bit.
const PHY_ADDRESS: u32 = 1;
const PHY_BMSR: u32 = 1;
const BMSR_LINK_UP: u32 = 1 << 2;
const MAC_CR_RXEN: u32 = 1 << 2;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_FDPX: u32 = 1 << 20;

/// RX status: the error summary bit, and where the length is.
const RX_STATUS_ES: u32 = 1 << 15;
/// TX command A: first and last segment of a frame.
const TX_CMD_A_FIRST: u32 = 1 << 13;
const TX_CMD_A_LAST: u32 = 1 << 12;

/// The largest Ethernet frame the stack sends or takes, without its CRC.
pub const MAX_FRAME: usize = 1514;
/// Room for a received frame with its CRC, in whole FIFO words.
const RX_BUFFER: usize = (MAX_FRAME + 4 + 3) & !3;

/// Wakers of a receive and a transmit waiting for the controller.
static RX_WAKER: AtomicWaker = AtomicWaker::new();
static TX_WAKER: AtomicWaker = AtomicWaker::new();

/// Wakes whatever waits on the controller; the tick calls it.
pub fn wake_pollers() {
    RX_WAKER.wake();
    TX_WAKER.wake();
}

/// Why the controller could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Nothing answering as a LAN9118 at the expected address: BYTE_TEST
    /// read this instead of 0x87654321.
    NotFound {
        /// What BYTE_TEST read.
        byte_test: u32,
    },
    /// The soft reset did not finish.
    ResetTimeout,
}

fn read(offset: usize) -> u32 {
    // SAFETY: the controller's registers are 32-bit, aligned, at BASE on
    // this machine, and reading one touches no memory of ours.
    #[allow(unsafe_code)]
    unsafe {
        ptr::read_volatile((BASE + offset) as *const u32)
    }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`; writing a register touches no memory of ours.
    #[allow(unsafe_code)]
    unsafe {
        ptr::write_volatile((BASE + offset) as *mut u32, value)
    }
}

fn wait_csr() -> bool {
    (0..100_000).any(|_| read(MAC_CSR_CMD) & CSR_BUSY == 0)
}

fn mac_read(reg: u32) -> u32 {
    wait_csr();
    write(MAC_CSR_CMD, CSR_BUSY | CSR_READ | reg);
    wait_csr();
    read(MAC_CSR_DATA)
}

fn mac_write(reg: u32, value: u32) {
    wait_csr();
    write(MAC_CSR_DATA, value);
    write(MAC_CSR_CMD, CSR_BUSY | reg);
    wait_csr();
}

/// Reads a register of the internal PHY.
fn phy_read(reg: u32) -> u32 {
    mac_write(MAC_MII_ACC, (PHY_ADDRESS << 11) | (reg << 6) | MII_BUSY);
    (0..100_000).any(|_| mac_read(MAC_MII_ACC) & MII_BUSY == 0);
    mac_read(MAC_MII_DATA) & 0xffff
}

/// The controller's free-running counter (25 MHz), for seeding.
pub fn free_run() -> u32 {
    read(FREE_RUN)
}

/// What the driver has counted.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Frames handed to the stack.
    pub received: u32,
    /// Frames the controller flagged as bad, or too short or long to take.
    pub rx_dropped: u32,
    /// Frames written to the controller.
    pub sent: u32,
}

/// The controller, owned by the network stack's runner.
pub struct Lan9118 {
    mac: [u8; 6],
    rx: [u8; RX_BUFFER],
    rx_len: usize,
    tx: [u8; MAX_FRAME],
    counters: Counters,
}

impl Lan9118 {
    /// Resets the controller and starts its receiver and transmitter, with
    /// the MAC address it loaded from its EEPROM (QEMU's `-nic ...,mac=`).
    pub fn new() -> Result<Lan9118, Error> {
        let byte_test = read(BYTE_TEST);
        if byte_test != BYTE_TEST_VALUE {
            return Err(Error::NotFound { byte_test });
        }
        write(HW_CFG, HW_CFG_SRST);
        if !(0..100_000).any(|_| read(HW_CFG) & HW_CFG_SRST == 0) {
            return Err(Error::ResetTimeout);
        }
        // Polled: no interrupts.
        write(INT_EN, 0);
        write(IRQ_CFG, 0);
        write(RX_CFG, 0);
        write(TX_CFG, TX_CFG_TX_ON);
        let lo = mac_read(MAC_ADDRL).to_le_bytes();
        let hi = mac_read(MAC_ADDRH).to_le_bytes();
        let mac = [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1]];
        // Frames to our address and broadcasts (ARP), full duplex.
        mac_write(MAC_CR, MAC_CR_RXEN | MAC_CR_TXEN | MAC_CR_FDPX);
        Ok(Lan9118 {
            mac,
            rx: [0; RX_BUFFER],
            rx_len: 0,
            tx: [0; MAX_FRAME],
            counters: Counters::default(),
        })
    }

    /// The chip's ID and revision register (0x0118_xxxx on a LAN9118).
    pub fn id_rev(&self) -> u32 {
        read(ID_REV)
    }

    /// The MAC address in use.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// What the driver has counted so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Moves the next good frame out of the RX FIFO into `self.rx`; false
    /// when there is none. Bad frames are read out and counted.
    fn pop_frame(&mut self) -> bool {
        while (read(RX_FIFO_INF) >> 16) & 0xff != 0 {
            let status = read(RX_STATUS_FIFO);
            let len = ((status >> 16) & 0x3fff) as usize;
            let words = len.div_ceil(4);
            let good = status & RX_STATUS_ES == 0 && (14 + 4..=RX_BUFFER).contains(&len);
            for i in 0..words {
                let word = read(RX_DATA_FIFO).to_le_bytes();
                if good {
                    self.rx[i * 4..i * 4 + 4].copy_from_slice(&word);
                }
            }
            if good {
                self.rx_len = len - 4; // the CRC stays behind
                self.counters.received += 1;
                return true;
            }
            self.counters.rx_dropped += 1;
        }
        false
    }

    /// Whether the TX data FIFO has room for a whole frame; reads out the
    /// TX status words of frames already sent.
    fn tx_room() -> bool {
        while (read(TX_FIFO_INF) >> 16) & 0xff != 0 {
            read(TX_STATUS_FIFO);
        }
        (read(TX_FIFO_INF) & 0xffff) as usize >= MAX_FRAME + 8
    }
}

/// A received frame, in the driver's buffer.
pub struct RxToken<'a> {
    frame: &'a mut [u8],
}

/// Room to write one frame, sent when the stack has written it.
pub struct TxToken<'a> {
    buf: &'a mut [u8; MAX_FRAME],
    sent: &'a mut u32,
}

impl embassy_net_driver::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl embassy_net_driver::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(MAX_FRAME);
        let frame = &mut self.buf[..len];
        let out = f(frame);
        write(TX_DATA_FIFO, TX_CMD_A_FIRST | TX_CMD_A_LAST | len as u32);
        write(TX_DATA_FIFO, len as u32);
        for chunk in frame.chunks(4) {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            write(TX_DATA_FIFO, u32::from_le_bytes(word));
        }
        *self.sent += 1;
        out
    }
}

impl embassy_net_driver::Driver for Lan9118 {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, cx: &mut Context) -> Option<(RxToken<'_>, TxToken<'_>)> {
        if !Lan9118::tx_room() {
            TX_WAKER.register(cx.waker());
            return None;
        }
        if !self.pop_frame() {
            RX_WAKER.register(cx.waker());
            return None;
        }
        Some((
            RxToken {
                frame: &mut self.rx[..self.rx_len],
            },
            TxToken {
                buf: &mut self.tx,
                sent: &mut self.counters.sent,
            },
        ))
    }

    fn transmit(&mut self, cx: &mut Context) -> Option<TxToken<'_>> {
        if !Lan9118::tx_room() {
            TX_WAKER.register(cx.waker());
            return None;
        }
        Some(TxToken {
            buf: &mut self.tx,
            sent: &mut self.counters.sent,
        })
    }

    fn link_state(&mut self, cx: &mut Context) -> LinkState {
        if phy_read(PHY_BMSR) & BMSR_LINK_UP != 0 {
            LinkState::Up
        } else {
            // Looked at again on the next tick.
            RX_WAKER.register(cx.waker());
            LinkState::Down
        }
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = MAX_FRAME;
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.mac)
    }
}
