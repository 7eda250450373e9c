//! embassy-time's driver on the Cortex-M SysTick: a 1 kHz tick (embassy's
//! `tick-hz-1_000`) counted in 64 bits. Each tick wakes the timers that are
//! due, and the Ethernet driver's waiting receive and transmit, which poll
//! the controller (see `lan9118`).

use core::cell::RefCell;
use core::task::Waker;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

/// The processor clock of QEMU's mps2 machines (their SYSCLK).
pub const CPU_HZ: u32 = 25_000_000;
/// Ticks a second; embassy-time is built with the same rate.
pub const TICK_HZ: u32 = 1_000;

struct State {
    /// Ticks since `init`.
    ticks: u64,
    /// The tick at which the next timer is due (`u64::MAX`: none).
    next: u64,
    queue: Queue,
}

struct SysTickDriver {
    state: Mutex<RefCell<State>>,
}

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.state.borrow_ref(cs).ticks)
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut s = self.state.borrow_ref_mut(cs);
            if s.queue.schedule_wake(at, waker) {
                let now = s.ticks;
                s.next = s.queue.next_expiration(now);
            }
        })
    }
}

#[allow(unsafe_code)] // The macro exports the driver's functions by name.
mod exported {
    embassy_time_driver::time_driver_impl!(static DRIVER: super::SysTickDriver = super::SysTickDriver {
        state: critical_section::Mutex::new(core::cell::RefCell::new(super::State {
            ticks: 0,
            next: u64::MAX,
            queue: embassy_time_queue_utils::Queue::new(),
        })),
    });

    pub(super) fn tick() {
        critical_section::with(|cs| {
            let mut s = DRIVER.state.borrow_ref_mut(cs);
            s.ticks += 1;
            if s.ticks >= s.next {
                let now = s.ticks;
                s.next = s.queue.next_expiration(now);
            }
        });
    }
}

/// Starts the tick. Call once, before anything waits on time.
pub fn init(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CPU_HZ / TICK_HZ - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    exported::tick();
    crate::lan9118::wake_pollers();
}
