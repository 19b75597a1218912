//! How a connection count is split over server and holder processes. Every
//! process here is capped at 20,000 open files, so no process may own more
//! connections than its share allows.

/// Splits `total` into `parts` shares that differ by at most one and sum to
/// `total` exactly.
pub fn split(total: usize, parts: usize) -> Vec<usize> {
    if parts == 0 {
        return Vec::new();
    }
    let (base, extra) = (total / parts, total % parts);
    (0..parts).map(|i| base + usize::from(i < extra)).collect()
}

/// How many processes keep each one at or under `per_process`.
pub fn processes_needed(total: usize, per_process: usize) -> usize {
    total.div_ceil(per_process.max(1)).max(1)
}

/// A contiguous slice of the global connection numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub first: usize,
    pub count: usize,
}

/// Consecutive slices of the given sizes.
pub fn slices(sizes: &[usize]) -> Vec<Slice> {
    let mut first = 0;
    sizes
        .iter()
        .map(|&count| {
            let s = Slice { first, count };
            first += count;
            s
        })
        .collect()
}

/// How many of the connections numbered `0..total` land on target `index`
/// of `targets` when connection `g` goes to target `g % targets`.
pub fn round_robin_share(total: usize, targets: usize, index: usize) -> usize {
    split(total, targets).get(index).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_exact_and_even() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(100_000, 6).iter().sum::<usize>(), 100_000);
        assert_eq!(split(2, 4), vec![1, 1, 0, 0]);
        assert!(split(5, 0).is_empty());
        for total in [0, 1, 17, 99_999] {
            for parts in 1..9 {
                let s = split(total, parts);
                assert_eq!(s.iter().sum::<usize>(), total);
                let (min, max) = (s.iter().min().unwrap(), s.iter().max().unwrap());
                assert!(max - min <= 1);
            }
        }
    }

    #[test]
    fn processes_respect_the_cap() {
        assert_eq!(processes_needed(10_000, 18_000), 1);
        assert_eq!(processes_needed(18_000, 18_000), 1);
        assert_eq!(processes_needed(18_001, 18_000), 2);
        assert_eq!(processes_needed(100_000, 18_000), 6);
        assert_eq!(processes_needed(100_000, 15_000), 7);
        assert_eq!(processes_needed(0, 15_000), 1);
    }

    #[test]
    fn slices_tile_the_numbering() {
        let s = slices(&split(100_000, 7));
        assert_eq!(s[0].first, 0);
        for w in s.windows(2) {
            assert_eq!(w[0].first + w[0].count, w[1].first);
        }
        let last = s[s.len() - 1];
        assert_eq!(last.first + last.count, 100_000);
    }

    #[test]
    fn round_robin_share_matches_modulo_counting() {
        let (total, targets) = (50_003, 3);
        for t in 0..targets {
            let counted = (0..total).filter(|g| g % targets == t).count();
            assert_eq!(round_robin_share(total, targets, t), counted);
        }
    }
}
