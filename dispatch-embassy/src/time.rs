//! The one place where embassy-time's clock becomes the core's
//! [`Instant`]: microseconds since the board booted (embassy-time's epoch).

use dispatch_core::time::Instant;

/// The core's current time.
pub(crate) fn now() -> Instant {
    from_embassy(embassy_time::Instant::now())
}

/// The core's instant for an embassy-time one.
pub(crate) fn from_embassy(t: embassy_time::Instant) -> Instant {
    Instant::from_micros(t.as_micros())
}

/// The embassy-time instant of the core's `t`; [`embassy_time::Instant::MAX`]
/// (never) when `t` is too far to represent at the board's tick rate.
pub(crate) fn to_embassy(t: Instant) -> embassy_time::Instant {
    embassy_time::Instant::try_from_micros(t.as_micros()).unwrap_or(embassy_time::Instant::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_map_both_ways_and_far_ones_mean_never() {
        let t = embassy_time::Instant::from_millis(1500);
        assert_eq!(from_embassy(t), Instant::from_millis(1500));
        assert_eq!(to_embassy(Instant::from_millis(1500)), t);
        assert_eq!(to_embassy(Instant::MAX), embassy_time::Instant::MAX);
    }
}
