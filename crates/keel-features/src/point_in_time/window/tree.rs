//! A range-update, point-query segment tree over commutative aggregates.
//!
//! Each leaf is one (join key, window end) slot; an event adds its value to
//! the contiguous run of slots whose windows contain it. The bottom-up tree
//! of 2n nodes stores an addition at the O(log n) nodes that exactly cover
//! the run, and a slot's aggregate is the merge of the nodes on its path to
//! the root. Because an addition is only ever stored at nodes whose whole
//! range lies inside the event's run, every node on a slot's path holds only
//! events of that slot's window: nothing is subtracted, so a float sum never
//! cancels against events outside the window, and min and max need no
//! inverse.

use std::ops::Range;

/// A commutative, associative aggregate with an identity.
pub(super) trait Node: Copy {
    /// The aggregate of no values.
    const EMPTY: Self;
    fn merge(&mut self, other: Self);
}

/// Aggregates of the slots `0..n`.
#[derive(Debug)]
pub(super) struct RangeTree<N> {
    /// `nodes[n + i]` is leaf `i`; `nodes[k]` covers `nodes[2k]` and
    /// `nodes[2k + 1]`; `nodes[0]` is unused.
    nodes: Vec<N>,
    leaves: usize,
}

impl<N: Node> RangeTree<N> {
    pub(super) fn new(leaves: usize) -> Self {
        Self {
            nodes: vec![N::EMPTY; 2 * leaves],
            leaves,
        }
    }

    /// Merges `value` into every slot of `slots` (which must lie in
    /// `0..n`).
    pub(super) fn add(&mut self, slots: Range<usize>, value: N) {
        let (mut lo, mut hi) = (slots.start + self.leaves, slots.end + self.leaves);
        while lo < hi {
            if lo & 1 == 1 {
                self.nodes[lo].merge(value);
                lo += 1;
            }
            if hi & 1 == 1 {
                hi -= 1;
                self.nodes[hi].merge(value);
            }
            lo >>= 1;
            hi >>= 1;
        }
    }

    /// The aggregate of slot `slot`.
    pub(super) fn get(&self, slot: usize) -> N {
        let mut k = slot + self.leaves;
        let mut acc = self.nodes[k];
        while k > 1 {
            k >>= 1;
            acc.merge(self.nodes[k]);
        }
        acc
    }
}

/// How many values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Count(pub(super) i64);

impl Node for Count {
    const EMPTY: Self = Count(0);
    fn merge(&mut self, other: Self) {
        self.0 += other.0;
    }
}

/// A number that sums: exactly (`i128`, far from overflowing for any
/// number of 64-bit values a join can see) or in floating point.
pub(super) trait Summand: Copy {
    const ZERO: Self;
    fn plus(self, other: Self) -> Self;
}

impl Summand for i128 {
    const ZERO: Self = 0;
    fn plus(self, other: Self) -> Self {
        // 2^63 values of at most 2^64 each would be needed to wrap.
        self.wrapping_add(other)
    }
}

impl Summand for f64 {
    /// `-0.0`, not `0.0`: the identity of IEEE addition, so the sum of a
    /// window holding only `-0.0` is `-0.0`.
    const ZERO: Self = -0.0;
    fn plus(self, other: Self) -> Self {
        self + other
    }
}

/// A sum and how many values it has (for the mean, and to tell an empty
/// sum from a zero one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Total<T> {
    pub(super) sum: T,
    pub(super) count: i64,
}

impl<T: Summand> Node for Total<T> {
    const EMPTY: Self = Total {
        sum: T::ZERO,
        count: 0,
    };
    fn merge(&mut self, other: Self) {
        self.sum = self.sum.plus(other.sum);
        self.count += other.count;
    }
}

/// A type with a total order.
pub(super) trait Ordered: Copy {
    fn less(self, other: Self) -> bool;
}

impl Ordered for i128 {
    fn less(self, other: Self) -> bool {
        self < other
    }
}

impl Ordered for f64 {
    /// IEEE 754 totalOrder: `-NaN < -inf < … < -0.0 < 0.0 < … < inf < NaN`.
    fn less(self, other: Self) -> bool {
        self.total_cmp(&other).is_lt()
    }
}

/// The smallest (`MAX = false`) or largest (`MAX = true`) value, if any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Extreme<T, const MAX: bool>(pub(super) Option<T>);

impl<T: Ordered, const MAX: bool> Node for Extreme<T, MAX> {
    const EMPTY: Self = Extreme(None);
    fn merge(&mut self, other: Self) {
        let Some(b) = other.0 else {
            return;
        };
        let replace = match self.0 {
            None => true,
            Some(a) if MAX => a.less(b),
            Some(a) => b.less(a),
        };
        if replace {
            self.0 = Some(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every range of every size against the sum of its leaves.
    #[test]
    fn each_slot_sees_exactly_the_ranges_that_cover_it() {
        for leaves in 1..=17 {
            let mut tree = RangeTree::<Count>::new(leaves);
            let mut plain = vec![0_i64; leaves];
            let mut weight = 1;
            for lo in 0..leaves {
                for hi in lo..=leaves {
                    tree.add(lo..hi, Count(weight));
                    for slot in &mut plain[lo..hi] {
                        *slot += weight;
                    }
                    weight = weight * 3 % 1_000_003;
                }
            }
            for (slot, want) in plain.iter().enumerate() {
                assert_eq!(tree.get(slot), Count(*want), "{leaves} leaves, slot {slot}");
            }
        }
    }

    #[test]
    fn float_sums_do_not_cancel_against_other_slots() {
        let mut tree = RangeTree::<Total<f64>>::new(6);
        tree.add(
            0..2,
            Total {
                sum: 1e20,
                count: 1,
            },
        );
        tree.add(0..6, Total { sum: 1.0, count: 1 });
        tree.add(2..6, Total { sum: 2.0, count: 1 });
        assert_eq!(tree.get(4), Total { sum: 3.0, count: 2 });
        assert_eq!(tree.get(5).sum, 3.0);
        assert_eq!(tree.get(1).sum, 1e20 + 1.0);
    }

    #[test]
    fn extremes_use_the_total_order() {
        let mut min = Extreme::<f64, false>::EMPTY;
        let mut max = Extreme::<f64, true>::EMPTY;
        for v in [0.0, -0.0, f64::NAN, 3.0, f64::NEG_INFINITY] {
            min.merge(Extreme(Some(v)));
            max.merge(Extreme(Some(v)));
        }
        assert_eq!(min.0, Some(f64::NEG_INFINITY));
        assert!(max.0.is_some_and(f64::is_nan));
        let mut zero = Extreme::<f64, false>(Some(0.0));
        zero.merge(Extreme(Some(-0.0)));
        assert!(zero.0.is_some_and(|v| v.is_sign_negative()));
        let mut empty = Total::<f64>::EMPTY;
        empty.merge(Total {
            sum: -0.0,
            count: 1,
        });
        assert!(empty.sum.is_sign_negative());
    }
}
