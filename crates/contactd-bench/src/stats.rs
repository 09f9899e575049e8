//! Latency percentiles from the sorted samples, and a small deterministic random generator.

use std::time::Duration;

/// Latencies of successful calls, in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    sorted: Vec<u64>,
}

impl Latencies {
    pub fn new(mut samples: Vec<u64>) -> Self {
        samples.sort_unstable();
        Self { sorted: samples }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The nearest-rank percentile `p` (0 < p <= 100): the smallest sample that at least p% of
    /// the samples do not exceed.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        // The small allowance keeps 99.9% of 1,000 at rank 999 despite binary fractions.
        let rank = (p * self.sorted.len() as f64 / 100.0 - 1e-9).ceil() as usize;
        let index = rank.clamp(1, self.sorted.len()) - 1;
        Duration::from_nanos(self.sorted[index])
    }

    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.sorted.last().copied().unwrap_or(0))
    }

    /// The nearest-rank percentile `p` of `total` outcomes of which these samples are the ones
    /// that completed, the others ranking above every sample (they never completed): `None`
    /// when the rank falls among those.
    pub fn percentile_of(&self, p: f64, total: usize) -> Option<Duration> {
        let total = total.max(self.sorted.len());
        if total == 0 {
            return Some(Duration::ZERO);
        }
        let rank = (p * total as f64 / 100.0 - 1e-9).ceil() as usize;
        let index = rank.clamp(1, total) - 1;
        self.sorted.get(index).map(|&ns| Duration::from_nanos(ns))
    }
}

/// SplitMix64: fast, good enough to pick contacts, and reproducible from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let latencies = Latencies::new((1..=1000).rev().collect());
        assert_eq!(latencies.percentile(50.0), Duration::from_nanos(500));
        assert_eq!(latencies.percentile(99.0), Duration::from_nanos(990));
        assert_eq!(latencies.percentile(99.9), Duration::from_nanos(999));
        assert_eq!(latencies.percentile(100.0), Duration::from_nanos(1000));
        assert_eq!(latencies.max(), Duration::from_nanos(1000));
        assert_eq!(Latencies::default().percentile(99.0), Duration::ZERO);
        let one = Latencies::new(vec![7]);
        assert_eq!(one.percentile(0.1), Duration::from_nanos(7));
    }

    #[test]
    fn outcomes_that_never_completed_rank_last() {
        let latencies = Latencies::new((1..=990).collect());
        assert_eq!(
            latencies.percentile_of(99.0, 1000),
            Some(Duration::from_nanos(990))
        );
        assert_eq!(latencies.percentile_of(99.1, 1000), None);
        assert_eq!(
            latencies.percentile_of(50.0, 990),
            latencies.percentile(50.0).into()
        );
        assert_eq!(
            Latencies::default().percentile_of(99.0, 0),
            Some(Duration::ZERO)
        );
        assert_eq!(Latencies::default().percentile_of(99.0, 3), None);
    }

    #[test]
    fn the_generator_is_reproducible_and_spread() {
        let (mut a, mut b) = (Rng::new(1), Rng::new(1));
        assert_eq!(a.next_u64(), b.next_u64());
        let mut seen = [0_u32; 10];
        for _ in 0..10_000 {
            seen[a.below(10)] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
    }
}
