//! Growing one tree on binned features from per-row gradients and
//! hessians (LightGBM's histogram algorithm).
//!
//! * With a leaf limit (`num_leaves`), growth is best-first: the open leaf
//!   whose best split gains most is split next (ties: the leaf created
//!   first), until the limit or until no leaf can be split (depth
//!   `max_depth`, fewer than `2·min_data_in_leaf` rows, or no split gaining
//!   more than `min_split_gain`). Without one, every leaf with a worthwhile
//!   split is split down to `max_depth` — the same tree in any order — and
//!   the tree grows a level at a time, which parallelises better.
//! * The gain of a split is `G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)`
//!   (LightGBM's, twice XGBoost's, without the γ); a leaf's value is
//!   `−learning_rate·G/(H+λ)`, rounded to `f32`.
//! * Histograms of gradient sums, hessian sums and row counts per bin are
//!   built for the smaller child of each split only; the larger child's is
//!   the parent's minus the smaller's (the subtraction trick). Histograms
//!   are kept for open leaves up to a memory budget (256 MiB); past it a
//!   split's two children are both built from rows.
//! * Missing values: each candidate threshold is tried with the missing
//!   rows on the left and on the right, and the better one becomes the
//!   split's default direction. When a node has no missing rows the
//!   default is the child that received more rows (scikit-learn's rule), so
//!   a value missing only at prediction time follows the majority. A split
//!   may also separate the missing rows from all the others.
//! * Threads: a large leaf's histograms and split search are spread over
//!   features; a level's partitions, and the children of its smaller
//!   splits, one leaf per task. Each feature's histogram is summed by one
//!   thread in row order, each leaf's rows are partitioned by one thread,
//!   and the best split is the first feature (in index order) with the
//!   highest gain, so trees are identical for any number of threads.

use super::bins::BinMapper;
use super::tree::Tree;
use crate::parallel::map_items;

/// Histogram slots per feature: up to 255 value bins and the missing bin.
pub(crate) const SLOTS: usize = 256;

/// Memory for the histograms kept for the subtraction trick. Past it, a
/// leaf keeps none and its children's histograms are both built from their
/// rows (slower, equally deterministic: the budget depends only on the
/// number of features).
pub(crate) const HISTOGRAM_BUDGET_BYTES: usize = 256 << 20;

/// Work (rows × features) below which a split is processed on one thread:
/// spawning costs more than it saves.
const PARALLEL_MIN_WORK: usize = 1 << 17;

/// Sums of gradients, hessians and rows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Sums {
    pub g: f64,
    pub h: f64,
    /// Rows, as f64 so that subtraction is uniform (exact below 2⁵³).
    pub n: f64,
}

impl Sums {
    #[inline]
    fn add(&mut self, o: &Sums) {
        self.g += o.g;
        self.h += o.h;
        self.n += o.n;
    }

    #[inline]
    fn sub(&self, o: &Sums) -> Sums {
        Sums {
            g: self.g - o.g,
            h: self.h - o.h,
            n: self.n - o.n,
        }
    }
}

/// The constraints and regularisation of growth.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GrowParams {
    pub max_depth: usize,
    pub max_leaves: usize,
    pub min_data_in_leaf: f64,
    pub min_child_weight: f64,
    pub lambda: f64,
    pub min_split_gain: f64,
    pub learning_rate: f64,
}

impl GrowParams {
    fn score(&self, s: &Sums) -> f64 {
        let d = s.h + self.lambda;
        if d > 0.0 { s.g * s.g / d } else { 0.0 }
    }

    fn leaf_value(&self, s: &Sums) -> f32 {
        let d = s.h + self.lambda;
        if d > 0.0 && s.g.is_finite() {
            (-self.learning_rate * s.g / d) as f32
        } else {
            0.0
        }
    }

    fn can_split(&self, depth: usize, s: &Sums) -> bool {
        depth < self.max_depth
            && s.n >= 2.0 * self.min_data_in_leaf
            && s.h >= 2.0 * self.min_child_weight
    }

    fn child_ok(&self, s: &Sums) -> bool {
        s.n >= self.min_data_in_leaf && s.h >= self.min_child_weight
    }
}

/// The best split of a leaf.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Split {
    gain: f64,
    /// Index into the selected features.
    pos: usize,
    /// Rows with bin ≤ this go left.
    bin: u8,
    default_left: bool,
    left: Sums,
    right: Sums,
}

/// What the trees are grown from, fixed for a training run.
pub(crate) struct Grower<'a> {
    /// Row-major bins: `bins[r * cols + f]`.
    pub bins: &'a [u8],
    pub cols: usize,
    /// The same, feature-major: `columns[f * rows + r]`.
    pub columns: &'a [u8],
    pub rows: usize,
    pub mapper: &'a BinMapper,
    pub params: GrowParams,
    pub threads: usize,
    /// [`HISTOGRAM_BUDGET_BYTES`] (smaller in tests).
    pub histogram_budget: usize,
}

struct OpenLeaf {
    node: usize,
    begin: usize,
    end: usize,
    depth: usize,
    sums: Sums,
    best: Option<Split>,
    hist: Option<Vec<[f64; 3]>>,
}

/// Reusable buffers: the row partition and the ordered gradients.
#[derive(Default)]
pub(crate) struct Scratch {
    pub indices: Vec<u32>,
    tmp: Vec<u32>,
    ordered: Vec<[f64; 2]>,
    pool: Vec<Vec<[f64; 3]>>,
}

/// A grown tree and, for every leaf, its rows in `Scratch::indices`.
pub(crate) struct Grown {
    pub tree: Tree,
    /// `(begin, end, value)` of each leaf over `Scratch::indices`.
    pub leaves: Vec<(usize, usize, f32)>,
}

/// How a split's children get their histograms.
enum Plan {
    /// The larger child's is the parent's minus the smaller's.
    Subtract(Vec<[f64; 3]>),
    /// Both are built from rows (the parent kept none, over the budget).
    BuildBoth(Vec<[f64; 3]>),
    /// Only the smaller child can split: only its histogram is built.
    SmallOnly,
}

/// Evaluating a split's children (histograms, best splits): self-contained
/// so that it can run on any thread.
struct ChildWork {
    small_rows: std::ops::Range<usize>,
    large_rows: std::ops::Range<usize>,
    /// A child's sums if it may be split (otherwise no split is searched).
    small: Option<Sums>,
    large: Option<Sums>,
    plan: Plan,
    small_hist: Vec<[f64; 3]>,
}

struct ChildResult {
    small_best: Option<Split>,
    large_best: Option<Split>,
    small_hist: Vec<[f64; 3]>,
    large_hist: Option<Vec<[f64; 3]>>,
}

/// A split just made: its two children, and their evaluation to run.
struct Pending {
    left: OpenLeaf,
    right: OpenLeaf,
    left_small: bool,
    work: Option<ChildWork>,
}

/// How many histograms may be kept (see [`HISTOGRAM_BUDGET_BYTES`]).
struct Budget {
    stored: usize,
    max_stored: usize,
}

impl Budget {
    fn keep(
        &mut self,
        slot: &mut Option<Vec<[f64; 3]>>,
        hist: Vec<[f64; 3]>,
        pool: &mut Vec<Vec<[f64; 3]>>,
    ) {
        if self.stored < self.max_stored {
            *slot = Some(hist);
            self.stored += 1;
        } else {
            self.recycle(pool, hist);
        }
    }

    /// A kept histogram leaves its leaf (to be subtracted from, or freed).
    fn release(&mut self, slot: &mut Option<Vec<[f64; 3]>>) -> Option<Vec<[f64; 3]>> {
        let hist = slot.take();
        if hist.is_some() {
            self.stored -= 1;
        }
        hist
    }

    /// Returns a buffer to the pool, which never holds more than the budget.
    fn recycle(&self, pool: &mut Vec<Vec<[f64; 3]>>, hist: Vec<[f64; 3]>) {
        if pool.len() < self.max_stored {
            pool.push(hist);
        }
    }
}

impl Grower<'_> {
    /// Grows a tree over the rows in `scratch.indices` (ascending), using
    /// only `features` (ascending), from per-row `[gradient, hessian]`.
    pub(crate) fn grow(&self, scratch: &mut Scratch, features: &[usize], gh: &[[f64; 2]]) -> Grown {
        let p = &self.params;
        let mut tree = Tree::leaf(0.0);
        let mut root_sums = Sums::default();
        for &r in &scratch.indices {
            let [g, h] = gh[r as usize];
            root_sums.add(&Sums { g, h, n: 1.0 });
        }
        let hist_bytes = features.len() * SLOTS * std::mem::size_of::<[f64; 3]>();
        let mut budget = Budget {
            stored: 0,
            max_stored: (self.histogram_budget / hist_bytes.max(1)).max(2),
        };
        let mut root = OpenLeaf {
            node: 0,
            begin: 0,
            end: scratch.indices.len(),
            depth: 0,
            sums: root_sums,
            best: None,
            hist: None,
        };
        if p.can_split(0, &root_sums) && p.max_leaves > 1 {
            let mut hist = take_buffer(&mut scratch.pool, features.len());
            gather(&scratch.indices, gh, &mut scratch.ordered);
            let (best, _) = self.build_and_find(
                features,
                &scratch.indices,
                &scratch.ordered,
                &mut hist,
                Some(root_sums),
                None,
                self.threads,
            );
            root.best = best;
            if best.is_some() {
                budget.keep(&mut root.hist, hist, &mut scratch.pool);
            } else {
                budget.recycle(&mut scratch.pool, hist);
            }
        }
        let leaves = if p.max_leaves == usize::MAX {
            self.grow_by_level(scratch, features, gh, &mut tree, root, &mut budget)
        } else {
            self.grow_best_first(scratch, features, gh, &mut tree, root, &mut budget)
        };
        let mut out = Vec::with_capacity(leaves.len());
        for mut leaf in leaves {
            if let Some(h) = budget.release(&mut leaf.hist) {
                budget.recycle(&mut scratch.pool, h);
            }
            let value = p.leaf_value(&leaf.sums);
            tree.set_value(leaf.node, value);
            out.push((leaf.begin, leaf.end, value));
        }
        out.sort_unstable_by_key(|l| l.0);
        Grown { tree, leaves: out }
    }

    /// Leaf-wise growth: the open leaf with the highest gain is split next
    /// (ties: the earliest created), until `max_leaves`.
    fn grow_best_first(
        &self,
        scratch: &mut Scratch,
        features: &[usize],
        gh: &[[f64; 2]],
        tree: &mut Tree,
        root: OpenLeaf,
        budget: &mut Budget,
    ) -> Vec<OpenLeaf> {
        let max_leaves = self.params.max_leaves;
        let mut open = vec![root];
        let mut done = Vec::new();
        let mut n_leaves = 1;
        while n_leaves < max_leaves {
            let mut pick: Option<(usize, f64)> = None;
            for (i, leaf) in open.iter().enumerate() {
                if let Some(s) = &leaf.best
                    && pick.is_none_or(|(_, g)| s.gain > g)
                {
                    pick = Some((i, s.gain));
                }
            }
            let Some((i, _)) = pick else { break };
            let mut leaf = open.remove(i);
            let Some(split) = leaf.best.take() else { break };
            let rule = self.rule(features, &split);
            let mid = self.partition(
                &mut scratch.indices[leaf.begin..leaf.end],
                &mut scratch.tmp,
                rule,
            ) + leaf.begin;
            n_leaves += 1;
            let mut pending = self.open_children(
                tree,
                leaf,
                split,
                mid,
                features,
                &mut scratch.pool,
                budget,
                n_leaves < max_leaves,
            );
            let result = pending.work.take().map(|w| {
                self.evaluate(
                    features,
                    &scratch.indices,
                    gh,
                    w,
                    &mut scratch.ordered,
                    self.threads,
                )
            });
            self.adopt(
                pending,
                result,
                budget,
                &mut scratch.pool,
                &mut open,
                &mut done,
            );
        }
        done.extend(open);
        done
    }

    /// Depth-wise growth (no leaf limit), one level at a time: every leaf
    /// of a level that has a split is split, so the tree is the one
    /// best-first growth would make (in another node order). Partitions run
    /// one leaf per task; children are evaluated across features when they
    /// are large and one split per task otherwise, so small leaves deep in
    /// the tree use every core too.
    fn grow_by_level(
        &self,
        scratch: &mut Scratch,
        features: &[usize],
        gh: &[[f64; 2]],
        tree: &mut Tree,
        root: OpenLeaf,
        budget: &mut Budget,
    ) -> Vec<OpenLeaf> {
        let mut open = vec![root];
        let mut done = Vec::new();
        loop {
            let (level, rest): (Vec<OpenLeaf>, Vec<OpenLeaf>) =
                open.into_iter().partition(|l| l.best.is_some());
            done.extend(rest);
            if level.is_empty() {
                return done;
            }
            let mids = self.partition_level(&mut scratch.indices, &level, features);
            let mut pendings = Vec::with_capacity(level.len());
            for (mut leaf, mid) in level.into_iter().zip(mids) {
                let Some(split) = leaf.best.take() else {
                    done.push(leaf);
                    continue;
                };
                pendings.push(self.open_children(
                    tree,
                    leaf,
                    split,
                    mid,
                    features,
                    &mut scratch.pool,
                    budget,
                    true,
                ));
            }
            let mut results: Vec<Option<ChildResult>> = pendings.iter().map(|_| None).collect();
            let mut small = Vec::new();
            for (i, pending) in pendings.iter_mut().enumerate() {
                let Some(work) = pending.work.take() else {
                    continue;
                };
                if work.small_rows.len() * features.len() >= PARALLEL_MIN_WORK {
                    results[i] = Some(self.evaluate(
                        features,
                        &scratch.indices,
                        gh,
                        work,
                        &mut scratch.ordered,
                        self.threads,
                    ));
                } else {
                    small.push((i, work));
                }
            }
            let indices = &scratch.indices;
            let evaluated = map_items(small, self.threads, |(i, work)| {
                let mut ordered = Vec::new();
                (
                    i,
                    self.evaluate(features, indices, gh, work, &mut ordered, 1),
                )
            });
            for (i, r) in evaluated {
                results[i] = Some(r);
            }
            open = Vec::new();
            for (pending, result) in pendings.into_iter().zip(results) {
                self.adopt(
                    pending,
                    result,
                    budget,
                    &mut scratch.pool,
                    &mut open,
                    &mut done,
                );
            }
        }
    }

    /// How `split` sends rows.
    fn rule(&self, features: &[usize], split: &Split) -> Rule {
        let feature = features[split.pos];
        Rule {
            feature,
            bin: split.bin,
            missing: self.mapper.n_bins(feature) as u8,
            default_left: split.default_left,
        }
    }

    /// Partitions the rows of every leaf of a level by its split, one leaf
    /// per task (their row ranges are disjoint); returns each leaf's
    /// boundary between left and right rows.
    fn partition_level(
        &self,
        indices: &mut [u32],
        level: &[OpenLeaf],
        features: &[usize],
    ) -> Vec<usize> {
        let mut order: Vec<usize> = (0..level.len()).collect();
        order.sort_unstable_by_key(|&i| level[i].begin);
        let mut items = Vec::with_capacity(level.len());
        let mut rest: &mut [u32] = indices;
        let mut offset = 0;
        for &i in &order {
            let leaf = &level[i];
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(leaf.begin - offset);
            let (rows, tail) = tail.split_at_mut(leaf.end - leaf.begin);
            rest = tail;
            offset = leaf.end;
            if let Some(split) = &leaf.best {
                items.push((i, rows, self.rule(features, split)));
            }
        }
        let mut mids: Vec<usize> = level.iter().map(|l| l.end).collect();
        let lefts = map_items(items, self.threads, |(i, rows, rule)| {
            let mut tmp = Vec::new();
            (i, self.partition(rows, &mut tmp, rule))
        });
        for (i, l) in lefts {
            mids[i] = level[i].begin + l;
        }
        mids
    }

    /// Turns `leaf` into a split node whose children hold the rows
    /// `[begin, mid)` and `[mid, end)` (already partitioned), and prepares
    /// their evaluation (none if neither may split, or no leaf may be added).
    // The tree, pool and budget are the growing state, borrowed apart.
    #[allow(clippy::too_many_arguments)]
    fn open_children(
        &self,
        tree: &mut Tree,
        mut leaf: OpenLeaf,
        split: Split,
        mid: usize,
        features: &[usize],
        pool: &mut Vec<Vec<[f64; 3]>>,
        budget: &mut Budget,
        may_grow: bool,
    ) -> Pending {
        let p = &self.params;
        let feature = features[split.pos];
        let nb = self.mapper.n_bins(feature);
        let threshold = if usize::from(split.bin) + 1 >= nb {
            f32::MAX
        } else {
            self.mapper.thresholds[feature][usize::from(split.bin)]
        };
        let (l_node, r_node) = tree.split(leaf.node, feature as u32, threshold, split.default_left);
        let depth = leaf.depth + 1;
        let left = OpenLeaf {
            node: l_node,
            begin: leaf.begin,
            end: mid,
            depth,
            sums: split.left,
            best: None,
            hist: None,
        };
        let right = OpenLeaf {
            node: r_node,
            begin: mid,
            end: leaf.end,
            depth,
            sums: split.right,
            best: None,
            hist: None,
        };
        let parent = budget.release(&mut leaf.hist);
        let left_small = (left.end - left.begin) <= (right.end - right.begin);
        let (small, large) = if left_small {
            (&left, &right)
        } else {
            (&right, &left)
        };
        let small_splits = p.can_split(depth, &small.sums);
        let large_splits = p.can_split(depth, &large.sums);
        if !(small_splits || large_splits) || !may_grow {
            if let Some(parent) = parent {
                budget.recycle(pool, parent);
            }
            return Pending {
                left,
                right,
                left_small,
                work: None,
            };
        }
        let plan = match (large_splits, parent) {
            (true, Some(parent)) => Plan::Subtract(parent),
            (true, None) => Plan::BuildBoth(take_buffer(pool, features.len())),
            (false, parent) => {
                if let Some(parent) = parent {
                    budget.recycle(pool, parent);
                }
                Plan::SmallOnly
            }
        };
        let work = ChildWork {
            small_rows: small.begin..small.end,
            large_rows: large.begin..large.end,
            small: small_splits.then_some(small.sums),
            large: large_splits.then_some(large.sums),
            plan,
            small_hist: take_buffer(pool, features.len()),
        };
        Pending {
            left,
            right,
            left_small,
            work: Some(work),
        }
    }

    /// Histograms and best splits of a split's children, on `threads`.
    fn evaluate(
        &self,
        features: &[usize],
        indices: &[u32],
        gh: &[[f64; 2]],
        work: ChildWork,
        ordered: &mut Vec<[f64; 2]>,
        threads: usize,
    ) -> ChildResult {
        let ChildWork {
            small_rows,
            large_rows,
            small,
            large,
            plan,
            mut small_hist,
        } = work;
        let rows = &indices[small_rows];
        gather(rows, gh, ordered);
        match plan {
            Plan::Subtract(mut parent) => {
                let sibling = large.map(|sums| (&mut parent, sums));
                let (small_best, large_best) = self.build_and_find(
                    features,
                    rows,
                    ordered,
                    &mut small_hist,
                    small,
                    sibling,
                    threads,
                );
                ChildResult {
                    small_best,
                    large_best,
                    small_hist,
                    large_hist: Some(parent),
                }
            }
            Plan::BuildBoth(mut large_hist) => {
                let (small_best, _) = self.build_and_find(
                    features,
                    rows,
                    ordered,
                    &mut small_hist,
                    small,
                    None,
                    threads,
                );
                let rows = &indices[large_rows];
                gather(rows, gh, ordered);
                let (large_best, _) = self.build_and_find(
                    features,
                    rows,
                    ordered,
                    &mut large_hist,
                    large,
                    None,
                    threads,
                );
                ChildResult {
                    small_best,
                    large_best,
                    small_hist,
                    large_hist: Some(large_hist),
                }
            }
            Plan::SmallOnly => {
                let (small_best, _) = self.build_and_find(
                    features,
                    rows,
                    ordered,
                    &mut small_hist,
                    small,
                    None,
                    threads,
                );
                ChildResult {
                    small_best,
                    large_best: None,
                    small_hist,
                    large_hist: None,
                }
            }
        }
    }

    /// Records a split's evaluated children: their best splits, the
    /// histograms worth keeping (a child with a split), and which list each
    /// child joins — open (left before right) or done.
    fn adopt(
        &self,
        pending: Pending,
        result: Option<ChildResult>,
        budget: &mut Budget,
        pool: &mut Vec<Vec<[f64; 3]>>,
        open: &mut Vec<OpenLeaf>,
        done: &mut Vec<OpenLeaf>,
    ) {
        let Pending {
            mut left,
            mut right,
            left_small,
            ..
        } = pending;
        if let Some(r) = result {
            let (small, large) = if left_small {
                (&mut left, &mut right)
            } else {
                (&mut right, &mut left)
            };
            small.best = r.small_best;
            large.best = r.large_best;
            if small.best.is_some() {
                budget.keep(&mut small.hist, r.small_hist, pool);
            } else {
                budget.recycle(pool, r.small_hist);
            }
            if let Some(h) = r.large_hist {
                if large.best.is_some() {
                    budget.keep(&mut large.hist, h, pool);
                } else {
                    budget.recycle(pool, h);
                }
            }
        }
        for child in [left, right] {
            if child.best.is_some() {
                open.push(child);
            } else {
                done.push(child);
            }
        }
    }

    /// Builds the histogram of `rows` (whose gradients are `ordered`) into
    /// `hist`, turns `parent` (if given) into the sibling's histogram by
    /// subtraction, and finds the best split of each side that has sums.
    // The rows, their gradients, the output and the sibling are separate
    // borrows on purpose: callers own them in different places.
    #[allow(clippy::too_many_arguments)]
    fn build_and_find(
        &self,
        features: &[usize],
        rows: &[u32],
        ordered: &[[f64; 2]],
        hist: &mut [[f64; 3]],
        sums: Option<Sums>,
        parent: Option<(&mut Vec<[f64; 3]>, Sums)>,
        threads: usize,
    ) -> (Option<Split>, Option<Split>) {
        let k = features.len();
        let work = rows.len() * k;
        let threads = if work >= PARALLEL_MIN_WORK {
            threads.min(k).max(1)
        } else {
            1
        };
        let (parent, sibling_sums) = match parent {
            Some((buf, s)) => (Some(buf.as_mut_slice()), Some(s)),
            None => (None, None),
        };
        let per = k.div_ceil(threads);
        let task = |first: usize,
                    hist: &mut [[f64; 3]],
                    parent: Option<&mut [[f64; 3]]>|
         -> (Option<Split>, Option<Split>) {
            let (hists, _) = hist.as_chunks_mut::<SLOTS>();
            let mut parents = parent.map(|p| p.as_chunks_mut::<SLOTS>().0);
            let feats = &features[first..first + hists.len()];
            self.build_histograms(feats, rows, ordered, hists);
            let mut best: (Option<Split>, Option<Split>) = (None, None);
            for (j, h) in hists.iter().enumerate() {
                let pos = first + j;
                let nb = self.mapper.n_bins(features[pos]);
                if let Some(s) = &sums {
                    consider(&mut best.0, self.find_split(h, nb, s, pos));
                }
                if let Some(parents) = parents.as_mut() {
                    let sib = &mut parents[j];
                    for (a, b) in sib[..=nb].iter_mut().zip(&h[..=nb]) {
                        a[0] -= b[0];
                        a[1] -= b[1];
                        a[2] -= b[2];
                    }
                    if let Some(s) = &sibling_sums {
                        consider(&mut best.1, self.find_split(sib, nb, s, pos));
                    }
                }
            }
            best
        };
        if threads == 1 {
            return task(
                0,
                &mut hist[..k * SLOTS],
                parent.map(|p| &mut p[..k * SLOTS]),
            );
        }
        let results: Vec<(Option<Split>, Option<Split>)> = std::thread::scope(|s| {
            let task = &task;
            let mut handles = Vec::new();
            let mut parent_chunks = parent.map(|p| p[..k * SLOTS].chunks_mut(per * SLOTS));
            let mut local = None;
            for (c, h) in hist[..k * SLOTS].chunks_mut(per * SLOTS).enumerate() {
                let p = parent_chunks.as_mut().and_then(|it| it.next());
                if c == 0 {
                    // The calling thread takes the first chunk itself.
                    local = Some((h, p));
                } else {
                    handles.push(s.spawn(move || task(c * per, h, p)));
                }
            }
            let mut out = Vec::with_capacity(threads);
            if let Some((h, p)) = local {
                out.push(task(0, h, p));
            }
            for handle in handles {
                match handle.join() {
                    Ok(r) => out.push(r),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            out
        });
        let mut best = (None, None);
        for (a, b) in results {
            if let Some(a) = a {
                consider(&mut best.0, Some(a));
            }
            if let Some(b) = b {
                consider(&mut best.1, Some(b));
            }
        }
        best
    }

    /// The best split of one feature's histogram for a leaf with `total`.
    fn find_split(
        &self,
        h: &[[f64; 3]; SLOTS],
        nb: usize,
        total: &Sums,
        pos: usize,
    ) -> Option<Split> {
        let p = &self.params;
        let miss = Sums {
            g: h[nb][0],
            h: h[nb][1],
            n: h[nb][2],
        };
        let has_missing = miss.n > 0.0;
        if nb < 2 && !has_missing {
            return None;
        }
        let parent = p.score(total);
        let mut best: Option<Split> = None;
        let mut best_gain = p.min_split_gain;
        let mut acc = Sums::default();
        let mut try_split =
            |left: Sums, bin: usize, missing_left: bool, best: &mut Option<Split>| {
                let right = total.sub(&left);
                if !p.child_ok(&left) || !p.child_ok(&right) {
                    return;
                }
                let gain = p.score(&left) + p.score(&right) - parent;
                if gain > best_gain && gain.is_finite() {
                    best_gain = gain;
                    let default_left = if has_missing {
                        missing_left
                    } else {
                        left.n >= right.n
                    };
                    *best = Some(Split {
                        gain,
                        pos,
                        bin: bin as u8,
                        default_left,
                        left,
                        right,
                    });
                }
            };
        for (t, bin) in h[..nb].iter().enumerate() {
            // An empty bin repeats the previous threshold's partitions, which
            // were already tried (and win ties): skip it. Small leaves leave
            // most bins empty.
            if bin[2] == 0.0 {
                continue;
            }
            acc.add(&Sums {
                g: bin[0],
                h: bin[1],
                n: bin[2],
            });
            let last = t + 1 == nb;
            // Missing rows right (and, at the last bin, only them).
            if !last || has_missing {
                try_split(acc, t, false, &mut best);
            }
            if has_missing && !last {
                let mut with_missing = acc;
                with_missing.add(&miss);
                try_split(with_missing, t, true, &mut best);
            }
        }
        best
    }
}

/// Keeps the better split: higher gain, or equal gain on an earlier
/// feature.
fn consider(best: &mut Option<Split>, candidate: Option<Split>) {
    if let Some(c) = candidate {
        match best {
            Some(b) if !(c.gain > b.gain || (c.gain == b.gain && c.pos < b.pos)) => {}
            _ => *best = Some(c),
        }
    }
}

fn take_buffer(pool: &mut Vec<Vec<[f64; 3]>>, features: usize) -> Vec<[f64; 3]> {
    let len = features * SLOTS;
    let mut buf = pool.pop().unwrap_or_default();
    // A recycled buffer keeps its old sums: every histogram build zeroes the
    // slots it uses (0..=n_bins of each feature), and no other slot is read.
    if buf.len() != len {
        buf.clear();
        buf.resize(len, [0.0; 3]);
    }
    buf
}

fn gather(rows: &[u32], gh: &[[f64; 2]], out: &mut Vec<[f64; 2]>) {
    out.clear();
    out.extend(rows.iter().map(|&r| gh[r as usize]));
}

/// How a split sends a row: left if its bin of `feature` is ≤ `bin`, or
/// `default_left` if it is the missing bin.
#[derive(Clone, Copy)]
struct Rule {
    feature: usize,
    bin: u8,
    missing: u8,
    default_left: bool,
}

impl Grower<'_> {
    /// Sums `ordered[k]` into the histograms of `feats` at the bins of row
    /// `rows[k]`. All features of a row are updated together: the updates
    /// are independent, so they overlap instead of waiting on each other
    /// when consecutive rows share a bin.
    fn build_histograms(
        &self,
        feats: &[usize],
        rows: &[u32],
        ordered: &[[f64; 2]],
        hists: &mut [[[f64; 3]; SLOTS]],
    ) {
        for (h, &f) in hists.iter_mut().zip(feats) {
            let nb = self.mapper.n_bins(f);
            for slot in &mut h[..=nb] {
                *slot = [0.0; 3];
            }
        }
        let cols = self.cols;
        for (&r, &[g, hess]) in rows.iter().zip(ordered) {
            let start = r as usize * cols;
            let row = &self.bins[start..start + cols];
            for (h, &f) in hists.iter_mut().zip(feats) {
                let slot = &mut h[usize::from(row[f])];
                slot[0] += g;
                slot[1] += hess;
                slot[2] += 1.0;
            }
        }
    }

    /// Stable partition of `rows` by a split, without branches on the data:
    /// rows going left first, then the rest, each in their original order.
    /// Returns the number going left.
    fn partition(&self, rows: &mut [u32], tmp: &mut Vec<u32>, rule: Rule) -> usize {
        tmp.clear();
        tmp.resize(rows.len(), 0);
        let column = &self.columns[rule.feature * self.rows..(rule.feature + 1) * self.rows];
        let (mut l, mut k) = (0, 0);
        for i in 0..rows.len() {
            let r = rows[i];
            let b = column[r as usize];
            let left = if b == rule.missing {
                rule.default_left
            } else {
                b <= rule.bin
            };
            // l ≤ i: writing behind the read position is safe.
            rows[l] = r;
            tmp[k] = r;
            l += usize::from(left);
            k += usize::from(!left);
        }
        rows[l..].copy_from_slice(&tmp[..k]);
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> GrowParams {
        GrowParams {
            max_depth: 3,
            max_leaves: usize::MAX,
            min_data_in_leaf: 1.0,
            min_child_weight: 0.0,
            lambda: 0.0,
            min_split_gain: 0.0,
            learning_rate: 1.0,
        }
    }

    #[test]
    fn partition_is_stable() {
        let mapper = BinMapper {
            thresholds: vec![vec![0.5, 1.5]],
        };
        let column = [0u8, 2, 1, 3, 0, 3];
        let grower = Grower {
            bins: &column,
            cols: 1,
            columns: &column,
            rows: column.len(),
            mapper: &mapper,
            params: params(),
            threads: 1,
            histogram_budget: HISTOGRAM_BUDGET_BYTES,
        };
        let rule = |default_left| Rule {
            feature: 0,
            bin: 1,
            missing: 3,
            default_left,
        };
        let mut rows: Vec<u32> = (0..6).collect();
        let mut tmp = Vec::new();
        // bin ≤ 1 left; missing is bin 3, sent right.
        let l = grower.partition(&mut rows, &mut tmp, rule(false));
        assert_eq!((l, rows.as_slice()), (3, &[0, 2, 4, 1, 3, 5][..]));
        let mut rows: Vec<u32> = (0..6).collect();
        let l = grower.partition(&mut rows, &mut tmp, rule(true));
        assert_eq!((l, rows.as_slice()), (5, &[0, 2, 3, 4, 5, 1][..]));
    }

    #[test]
    fn level_growth_is_best_first_growth_on_any_thread_count() {
        // 30,000 rows × 5 features: the root is evaluated across features,
        // deeper splits one per task.
        let (rows, cols) = (30_000, 5);
        let mut rng = keel_stats::Rng::from_seed(8);
        let bins: Vec<u8> = (0..rows * cols).map(|_| rng.below(40) as u8).collect();
        let mapper = BinMapper {
            thresholds: vec![(0..39).map(|t| t as f32 + 0.5).collect(); cols],
        };
        let columns = super::super::bins::transpose(&bins, rows, cols);
        let gh: Vec<[f64; 2]> = bins
            .chunks(cols)
            .map(|r| {
                let s = f64::from(r[0]) - 19.5 + 0.5 * f64::from(r[1] % 7) - f64::from(r[3] / 10);
                [s + rng.normal(), 0.5 + rng.next_f64()]
            })
            .collect();
        let grow = |max_leaves, threads| {
            let g = Grower {
                bins: &bins,
                cols,
                columns: &columns,
                rows,
                mapper: &mapper,
                params: GrowParams {
                    max_depth: 5,
                    max_leaves,
                    min_data_in_leaf: 20.0,
                    lambda: 1.0,
                    ..params()
                },
                threads,
                histogram_budget: HISTOGRAM_BUDGET_BYTES,
            };
            let mut scratch = Scratch {
                indices: (0..rows as u32).collect(),
                ..Scratch::default()
            };
            let grown = g.grow(&mut scratch, &[0, 1, 2, 3, 4], &gh);
            // Every leaf's rows, as the trainer applies them.
            let mut value = vec![f32::NAN; rows];
            for &(begin, end, v) in &grown.leaves {
                for &r in &scratch.indices[begin..end] {
                    value[r as usize] = v;
                }
            }
            (grown.tree, value)
        };
        let (by_level, values) = grow(usize::MAX, 1);
        assert_eq!(grow(usize::MAX, 3).0, by_level);
        let (best_first, best_values) = grow(1 << 30, 1);
        assert_eq!(grow(1 << 30, 2).0, best_first);
        let leaves = |t: &Tree| (0..t.len()).filter(|&i| t.is_leaf(i)).count();
        assert!(leaves(&by_level) > 16, "{}", leaves(&by_level));
        assert_eq!(leaves(&by_level), leaves(&best_first));
        // Same tree in another node order: every row gets the same value,
        // and walking the tree agrees with the partition.
        assert_eq!(values, best_values);
        for (r, row) in bins.chunks(cols).enumerate() {
            let x: Vec<f64> = row.iter().map(|&b| f64::from(b)).collect();
            assert_eq!(by_level.predict(&x), values[r]);
        }
    }

    #[test]
    fn finds_the_separating_split_and_missing_direction() {
        // One feature, bins 0..4, missing bin 4: gradients −1 for bins 0, 1
        // and for missing rows, +1 for bins 2, 3.
        let mapper = BinMapper {
            thresholds: vec![vec![0.5, 1.5, 2.5]],
        };
        let column = [0u8, 1, 2, 3, 4, 4, 0, 3];
        let gh: Vec<[f64; 2]> = column
            .iter()
            .map(|&b| [if b <= 1 || b == 4 { -1.0 } else { 1.0 }, 1.0])
            .collect();
        let grower = Grower {
            bins: &column,
            cols: 1,
            columns: &column,
            rows: column.len(),
            mapper: &mapper,
            params: params(),
            threads: 1,
            histogram_budget: HISTOGRAM_BUDGET_BYTES,
        };
        let mut scratch = Scratch {
            indices: (0..8).collect(),
            ..Scratch::default()
        };
        let grown = grower.grow(&mut scratch, &[0], &gh);
        let t = &grown.tree;
        assert_eq!(t.feature[0], 0);
        assert_eq!(t.threshold[0], 1.5);
        assert!(
            t.default_left[0],
            "missing rows have the left rows' gradient"
        );
        // Two pure leaves: −(−5)/5 = 1 and −(3)/3 = −1.
        let values: Vec<f32> = grown.leaves.iter().map(|l| l.2).collect();
        assert_eq!(values, vec![1.0, -1.0]);
        assert_eq!(grown.leaves[0], (0, 5, 1.0));
        let mut left: Vec<u32> = scratch.indices[..5].to_vec();
        left.sort_unstable();
        assert_eq!(left, vec![0, 1, 4, 5, 6]);
    }

    #[test]
    fn missing_only_split() {
        // Every non-missing row has gradient +1, missing rows −1.
        let mapper = BinMapper {
            thresholds: vec![vec![]],
        };
        let column = [0u8, 0, 1, 1];
        let gh = [[1.0, 1.0], [1.0, 1.0], [-1.0, 1.0], [-1.0, 1.0]];
        let grower = Grower {
            bins: &column,
            cols: 1,
            columns: &column,
            rows: column.len(),
            mapper: &mapper,
            params: params(),
            threads: 1,
            histogram_budget: HISTOGRAM_BUDGET_BYTES,
        };
        let mut scratch = Scratch {
            indices: (0..4).collect(),
            ..Scratch::default()
        };
        let grown = grower.grow(&mut scratch, &[0], &gh);
        assert_eq!(grown.tree.threshold[0], f32::MAX);
        assert!(!grown.tree.default_left[0]);
        assert_eq!(grown.tree.predict(&[3.0]), -1.0);
        assert_eq!(grown.tree.predict(&[f64::NAN]), 1.0);
    }

    #[test]
    fn a_tight_histogram_budget_grows_the_same_splits() {
        // 4 features, 600 rows, depth 5: with room for only 2 histograms
        // most children are built from rows instead of by subtraction.
        let rows = 600;
        let cols = 4;
        let mut rng = keel_stats::Rng::from_seed(5);
        let bins: Vec<u8> = (0..rows * cols).map(|_| rng.below(20) as u8).collect();
        let mapper = BinMapper {
            thresholds: vec![(0..19).map(|t| t as f32 + 0.5).collect(); cols],
        };
        let columns = super::super::bins::transpose(&bins, rows, cols);
        let gh: Vec<[f64; 2]> = bins
            .chunks(cols)
            .map(|r| [f64::from(r[0]) - 9.5 + 0.3 * f64::from(r[2]), 1.0])
            .collect();
        let grow = |budget| {
            let g = Grower {
                bins: &bins,
                cols,
                columns: &columns,
                rows,
                mapper: &mapper,
                params: GrowParams {
                    max_depth: 5,
                    min_data_in_leaf: 5.0,
                    ..params()
                },
                threads: 1,
                histogram_budget: budget,
            };
            let mut scratch = Scratch {
                indices: (0..rows as u32).collect(),
                ..Scratch::default()
            };
            g.grow(&mut scratch, &[0, 1, 2, 3], &gh).tree
        };
        let roomy = grow(HISTOGRAM_BUDGET_BYTES);
        let tight = grow(1);
        assert!(roomy.len() > 20, "{}", roomy.len());
        assert_eq!(roomy.feature, tight.feature);
        assert_eq!(roomy.threshold, tight.threshold);
        assert_eq!(roomy.left, tight.left);
    }
}
