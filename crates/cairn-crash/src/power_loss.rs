//! Simulated power loss (being written).

use crate::error::Result;

/// Options.
#[derive(Debug, Clone)]
pub struct PowerLossOptions {
    /// Seed.
    pub seed: u64,
    /// States.
    pub states: u64,
    /// Tasks.
    pub tasks: usize,
}

/// Totals.
#[derive(Debug, Clone, Default)]
pub struct PowerLossTotals {
    /// States.
    pub states: u64,
    /// Workloads.
    pub workloads: u64,
    /// Corruption.
    pub corruption_stops: u64,
    /// Violations.
    pub violations: u64,
    /// Problems.
    pub problems: Vec<String>,
}

/// Runs.
///
/// # Errors
///
/// None yet.
pub fn run(_options: &PowerLossOptions) -> Result<PowerLossTotals> {
    Ok(PowerLossTotals::default())
}
