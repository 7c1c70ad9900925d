//! One regression tree of an ensemble, in flat arrays.

use serde::{Deserialize, Serialize};

use super::bins::to_f32;

/// A binary tree in parallel arrays indexed by node; node 0 is the root.
///
/// A node is a leaf when `left[i] == 0` (the root is nobody's child). A
/// split sends a row left when its feature is `≤ threshold[i]` compared in
/// `f32` (see [`super::bins`]), right when it is greater, and where
/// `default_left[i]` says when it is missing (NaN). `value[i]` is a leaf's
/// contribution to the raw score (0 for splits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    pub feature: Vec<u32>,
    pub threshold: Vec<f32>,
    pub default_left: Vec<bool>,
    pub left: Vec<u32>,
    pub right: Vec<u32>,
    pub value: Vec<f32>,
}

impl Tree {
    /// A tree of a single leaf.
    pub fn leaf(value: f32) -> Tree {
        Tree {
            feature: vec![0],
            threshold: vec![0.0],
            default_left: vec![false],
            left: vec![0],
            right: vec![0],
            value: vec![value],
        }
    }

    pub fn len(&self) -> usize {
        self.feature.len()
    }

    pub fn is_empty(&self) -> bool {
        self.feature.is_empty()
    }

    pub fn is_leaf(&self, node: usize) -> bool {
        self.left[node] == 0
    }

    /// Turns leaf `node` into a split with two new leaves; returns their
    /// indices (left, right).
    pub(crate) fn split(
        &mut self,
        node: usize,
        feature: u32,
        threshold: f32,
        default_left: bool,
    ) -> (usize, usize) {
        let l = self.len();
        for _ in 0..2 {
            self.feature.push(0);
            self.threshold.push(0.0);
            self.default_left.push(false);
            self.left.push(0);
            self.right.push(0);
            self.value.push(0.0);
        }
        self.feature[node] = feature;
        self.threshold[node] = threshold;
        self.default_left[node] = default_left;
        self.left[node] = l as u32;
        self.right[node] = l as u32 + 1;
        self.value[node] = 0.0;
        (l, l + 1)
    }

    pub(crate) fn set_value(&mut self, node: usize, value: f32) {
        self.value[node] = value;
    }

    /// The leaf a row lands in.
    #[inline]
    pub fn leaf_of(&self, row: &[f64]) -> usize {
        let mut i = 0;
        while self.left[i] != 0 {
            let x = row[self.feature[i] as usize];
            let go_left = if x.is_nan() {
                self.default_left[i]
            } else {
                to_f32(x) <= self.threshold[i]
            };
            i = if go_left { self.left[i] } else { self.right[i] } as usize;
        }
        i
    }

    /// The tree's contribution to a row's raw score.
    #[inline]
    pub fn predict(&self, row: &[f64]) -> f32 {
        self.value[self.leaf_of(row)]
    }

    /// Checks the arrays describe a tree over `n_features` features: equal
    /// lengths, children after their parent and in range, every node but
    /// the root reached once, finite values. Guards models read from JSON.
    pub(crate) fn check(&self, n_features: usize) -> Result<(), String> {
        let n = self.feature.len();
        if n == 0 {
            return Err("a tree has no nodes".into());
        }
        for (name, len) in [
            ("threshold", self.threshold.len()),
            ("default_left", self.default_left.len()),
            ("left", self.left.len()),
            ("right", self.right.len()),
            ("value", self.value.len()),
        ] {
            if len != n {
                return Err(format!("{name} has {len} entries, feature has {n}"));
            }
        }
        let mut parents = vec![0u32; n];
        for i in 0..n {
            if self.left[i] == 0 {
                if self.right[i] != 0 {
                    return Err(format!("node {i} has a right child but no left child"));
                }
                if !self.value[i].is_finite() {
                    return Err(format!("leaf {i} has value {}", self.value[i]));
                }
                continue;
            }
            if self.feature[i] as usize >= n_features {
                return Err(format!(
                    "node {i} splits on feature {} of {n_features}",
                    self.feature[i]
                ));
            }
            if self.threshold[i].is_nan() {
                return Err(format!("node {i} has a NaN threshold"));
            }
            for c in [self.left[i], self.right[i]] {
                let c = c as usize;
                if c <= i || c >= n {
                    return Err(format!("node {i} has child {c} out of order or range"));
                }
                parents[c] += 1;
            }
        }
        if let Some(c) = (1..n).find(|&c| parents[c] != 1) {
            return Err(format!("node {c} has {} parents", parents[c]));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_thresholds_in_f32_and_routes_missing() {
        let mut t = Tree::leaf(0.0);
        let (l, r) = t.split(0, 1, 0.1f32, true);
        t.set_value(l, -1.0);
        t.set_value(r, 1.0);
        assert!(t.check(2).is_ok());
        assert!(t.check(1).is_err());
        // 0.1f64 > 0.1f32 as f64? No: 0.1f32 rounds up, so 0.1 goes left.
        assert_eq!(t.predict(&[0.0, 0.1]), -1.0);
        // A value just above the f32 threshold in f64 but equal once
        // rounded to f32 goes left, as an ONNX runtime would send it.
        let above = f64::from(0.1f32) + 1e-12;
        assert_eq!(t.predict(&[0.0, above]), -1.0);
        assert_eq!(t.predict(&[0.0, 0.2]), 1.0);
        assert_eq!(t.predict(&[0.0, f64::NAN]), -1.0);
    }

    #[test]
    fn check_rejects_cycles_and_bad_lengths() {
        let mut t = Tree::leaf(0.0);
        t.split(0, 0, 1.0, false);
        t.left[0] = 0;
        assert!(t.check(1).is_err());
        let mut t = Tree::leaf(0.0);
        t.split(0, 0, 1.0, false);
        t.right[0] = 1;
        assert!(t.check(1).is_err());
        let mut t = Tree::leaf(0.0);
        t.value.push(1.0);
        assert!(t.check(1).is_err());
    }
}
