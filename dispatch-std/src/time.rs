//! The one place where tokio's clock becomes the core's
//! [`Instant`](dispatch_core::time::Instant): microseconds since the moment
//! the driver started.

use std::time::Duration;

use dispatch_core::time::Instant;

/// Converts between tokio's clock and the core's, from a fixed epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: tokio::time::Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub(crate) fn start() -> Self {
        Clock {
            epoch: tokio::time::Instant::now(),
        }
    }

    /// The core's current time. Read it while holding the node's lock, so
    /// that two tasks never feed the node times out of order.
    pub(crate) fn now(&self) -> Instant {
        let micros = self.epoch.elapsed().as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// The tokio instant of the core's `t`; a day from now stands for
    /// "never" when `t` is too far to represent.
    pub(crate) fn to_tokio(self, t: Instant) -> tokio::time::Instant {
        self.epoch
            .checked_add(Duration::from_micros(t.as_micros()))
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_time_never_goes_backwards_and_maps_back_to_tokio_time() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let clock = Clock::start();
            let a = clock.now();
            let b = clock.now();
            assert!(b >= a);
            let t = Instant::from_millis(1500);
            assert_eq!(clock.to_tokio(t) - clock.epoch, Duration::from_millis(1500));
            assert!(clock.to_tokio(Instant::MAX) > tokio::time::Instant::now());
        });
    }
}
