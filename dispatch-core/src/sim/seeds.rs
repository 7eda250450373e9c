//! Running one scenario over many seeds, and replaying the one that failed.

use core::fmt;
use core::ops::Range;

/// The environment variable a test reads to replay one seed, and that
/// failure messages name: `DISPATCH_SIM_SEED=17 cargo test --release <test>`.
///
/// The core cannot read the environment itself (it is `no_std`), so the test
/// passes the variable's value to [`check_seeds`].
pub const SEED_ENV: &str = "DISPATCH_SIM_SEED";

/// The first seed of a [`run_seeds`] range whose scenario failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFailure<E> {
    /// The seed that failed; rerun just this one with `SEED_ENV=<seed>`.
    pub seed: u64,
    /// What the scenario reported.
    pub error: E,
}

/// Runs `scenario` for every seed of `seeds` in order, or only for the seed
/// named by `replay` when that is `Some`, and stops at the first failure.
/// Returns how many seeds passed.
///
/// A scenario reports failure by returning `Err` (not by panicking) so that
/// the failure can name its seed: use `?` on [`Sim`](super::Sim) results and
/// return `Err(format!(..))` where you would `assert!`.
///
/// # Panics
/// If `replay` is `Some` but not a decimal `u64`.
pub fn run_seeds<E>(
    seeds: Range<u64>,
    replay: Option<&str>,
    mut scenario: impl FnMut(u64) -> Result<(), E>,
) -> Result<u64, SeedFailure<E>> {
    let seeds = match replay.map(str::trim) {
        Some(s) => {
            let seed: u64 = s
                .parse()
                .unwrap_or_else(|_| panic!("{SEED_ENV}={s:?} is not a seed (a decimal u64)"));
            seed..seed.saturating_add(1)
        }
        None => seeds,
    };
    let mut passed = 0;
    for seed in seeds {
        scenario(seed).map_err(|error| SeedFailure { seed, error })?;
        passed += 1;
    }
    Ok(passed)
}

/// [`run_seeds`], panicking on failure with a message that names the failing
/// seed and how to replay it. Returns how many seeds passed.
///
/// ```should_panic
/// use dispatch_core::sim::{check_seeds, SEED_ENV};
/// # let replay_var: Option<String> = None;
/// // In a test: let replay_var = std::env::var(SEED_ENV).ok();
/// check_seeds(0..100, replay_var.as_deref(), |seed| {
///     if seed == 42 { Err("unlucky") } else { Ok(()) }
/// });
/// // panics: "simulation failed with seed 42: unlucky
/// //          replay only this seed with DISPATCH_SIM_SEED=42"
/// ```
///
/// # Panics
/// When a seed fails, or `replay` is not a seed.
pub fn check_seeds<E: fmt::Display>(
    seeds: Range<u64>,
    replay: Option<&str>,
    scenario: impl FnMut(u64) -> Result<(), E>,
) -> u64 {
    match run_seeds(seeds, replay, scenario) {
        Ok(passed) => passed,
        Err(failure) => panic!("{failure}"),
    }
}

impl<E: fmt::Display> fmt::Display for SeedFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation failed with seed {seed}: {error}\n\
             replay only this seed with {SEED_ENV}={seed}",
            seed = self.seed,
            error = self.error,
        )
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for SeedFailure<E> {}
