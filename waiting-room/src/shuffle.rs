//! The pre-queue's fair order: at the opening, the fans who joined before it are sorted
//! by user id and shuffled with a Fisher–Yates (Durstenfeld) shuffle driven by
//! SplitMix64 from the room's seed. Every order is equally likely, nothing about a fan
//! (when they arrived, how often they refreshed) moves them, and anyone with the seed and
//! the pre-queued user ids recomputes the order: the algorithm is a dozen lines in any
//! language (the README has it in Python), and unlike a library's shuffle it never
//! changes with a version.

/// SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit generator whose whole state is its
/// seed, the reference for Java's SplittableRandom and the seeder of xoshiro.
pub struct SplitMix64(u64);

impl SplitMix64 {
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

    /// Uniform in `0..n` (n > 0), without modulo bias: draws falling in the last,
    /// incomplete run of n values are drawn again.
    pub fn below(&mut self, n: u64) -> u64 {
        let incomplete = (u64::MAX % n + 1) % n;
        loop {
            let x = self.next_u64();
            if incomplete == 0 || x < 0u64.wrapping_sub(incomplete) {
                return x % n;
            }
        }
    }
}

/// The order the pre-queued `fans` are placed in at the opening, first to last.
pub fn fair_order(mut fans: Vec<String>, seed: u64) -> Vec<String> {
    fans.sort_unstable();
    fans.dedup();
    let mut random = SplitMix64::new(seed);
    for i in (1..fans.len()).rev() {
        let j = usize::try_from(random.below(i as u64 + 1)).expect("j <= i, a usize");
        fans.swap(i, j);
    }
    fans
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same numbers as the README's Python (and Java's SplittableRandom).
    #[test]
    fn splitmix64_gives_the_reference_sequence() {
        let mut random = SplitMix64::new(1_234_567);
        let first: Vec<u64> = (0..3).map(|_| random.next_u64()).collect();
        assert_eq!(
            first,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423
            ]
        );
    }

    #[test]
    fn the_order_depends_on_the_seed_and_the_fans_only() {
        let fans = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let order = fair_order(fans(&["ana", "bob", "cy", "dee", "eve"]), 7);
        assert_eq!(
            order,
            fair_order(fans(&["eve", "cy", "ana", "dee", "bob"]), 7)
        );
        assert_eq!(
            order,
            fans(&["eve", "bob", "dee", "ana", "cy"]),
            "the README's Python gives it too"
        );
        assert_ne!(
            order,
            fair_order(fans(&["ana", "bob", "cy", "dee", "eve"]), 8)
        );
    }

    #[test]
    fn every_order_of_three_fans_is_about_as_likely() {
        let mut counts = std::collections::HashMap::new();
        for seed in 0..60_000u64 {
            let order = fair_order(vec!["a".into(), "b".into(), "c".into()], seed).concat();
            *counts.entry(order).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 6);
        // 10,000 expected each; a fair shuffle stays within 5 standard deviations (~91).
        for (order, count) in counts {
            assert!((9_500..=10_500).contains(&count), "{order}: {count}");
        }
    }
}
