//! Worst-slice discovery: where in the data is the model worst?
//!
//! Given some feature columns and a per-row outcome (0/1 correctness, or a
//! loss), [`worst_slices`] scores every *slice* — the rows where one column
//! has one value, or where two columns have one value each — of at least
//! `min_size` rows, and returns the `top_k` whose metric is furthest on the
//! bad side of the overall metric. Categorical columns slice by value;
//! numeric columns by quantile bin (`bins` bins, 4 by default, as pandas'
//! `qcut(duplicates="drop")`: a value on an edge belongs to the lower bin,
//! the first bin includes its lower edge), with NaN as its own "missing"
//! slice.
//!
//! Cost: one pass per column to encode it (plus one sort per numeric
//! column for its quantiles), one pass per column and per pair of columns
//! to count.

use serde::{Deserialize, Serialize};

use crate::metrics::order;
use crate::{FxMap, QualityError, Result, Sum, invalid, not_finite, paired};

/// A feature column to slice by.
#[derive(Debug, Clone, Copy)]
pub enum SliceColumn<'a> {
    /// One slice per distinct value.
    Categorical {
        name: &'a str,
        values: &'a [&'a str],
    },
    /// One slice per quantile bin (NaN is "missing"; ±∞ is an error).
    Numeric { name: &'a str, values: &'a [f64] },
}

impl SliceColumn<'_> {
    fn name(&self) -> &str {
        match self {
            SliceColumn::Categorical { name, .. } | SliceColumn::Numeric { name, .. } => name,
        }
    }

    fn len(&self) -> usize {
        match self {
            SliceColumn::Categorical { values, .. } => values.len(),
            SliceColumn::Numeric { values, .. } => values.len(),
        }
    }
}

/// The per-row outcome whose mean is the slice's metric.
#[derive(Debug, Clone, Copy)]
pub enum RowOutcome<'a> {
    /// Whether each row was predicted correctly: the metric is accuracy,
    /// and lower is worse.
    Correct(&'a [bool]),
    /// Each row's loss (finite): the metric is the mean loss, and higher is
    /// worse.
    Loss(&'a [f64]),
}

impl RowOutcome<'_> {
    fn len(&self) -> usize {
        match self {
            RowOutcome::Correct(v) => v.len(),
            RowOutcome::Loss(v) => v.len(),
        }
    }
}

/// How [`worst_slices`] searches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SliceSearch {
    /// Slices with fewer rows are ignored.
    pub min_size: usize,
    /// How many slices to return.
    pub top_k: usize,
    /// Quantile bins of each numeric column.
    pub numeric_bins: usize,
    /// Whether to score pairs of columns as well as single columns.
    pub pairs: bool,
}

impl Default for SliceSearch {
    fn default() -> Self {
        SliceSearch {
            min_size: 30,
            top_k: 10,
            numeric_bins: 4,
            pairs: true,
        }
    }
}

/// The value a slice takes in one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SliceValue {
    /// A categorical value.
    Category(String),
    /// A numeric bin `(low, high]` (`[low, high]` for the first bin).
    Range { low: f64, high: f64 },
    /// NaN in a numeric column.
    Missing,
}

/// One column's condition of a slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub column: String,
    pub value: SliceValue,
}

/// A slice of the data and its metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    /// One condition, or two (on different columns, in column order).
    pub conditions: Vec<Condition>,
    /// Rows in the slice.
    pub size: u64,
    /// The slice's accuracy or mean loss.
    pub metric: f64,
    /// `metric − overall`: negative is worse for accuracy, positive for
    /// loss.
    pub difference: f64,
}

/// The result of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceReport {
    /// The metric over all rows.
    pub overall: f64,
    pub rows: usize,
    /// The worst slices, worst first (ties: larger slices first).
    pub slices: Vec<Slice>,
}

/// A column encoded as one small integer per row.
struct Encoded {
    name: String,
    codes: Vec<u32>,
    values: Vec<SliceValue>,
}

fn encode(column: &SliceColumn<'_>, bins: usize) -> Result<Encoded> {
    let name = column.name().to_string();
    match *column {
        SliceColumn::Categorical { values, .. } => {
            let mut map: FxMap<&str, u32> = FxMap::default();
            let mut names = Vec::new();
            let codes = values
                .iter()
                .map(|&v| {
                    *map.entry(v).or_insert_with(|| {
                        names.push(SliceValue::Category(v.to_string()));
                        names.len() as u32 - 1
                    })
                })
                .collect();
            Ok(Encoded {
                name,
                codes,
                values: names,
            })
        }
        SliceColumn::Numeric { values, .. } => {
            let mut keys = Vec::with_capacity(values.len());
            for (i, &v) in values.iter().enumerate() {
                if v.is_infinite() {
                    return Err(not_finite(&format!("column {name}"), i, v));
                }
                if !v.is_nan() {
                    keys.push(order::key(v));
                }
            }
            let edges = quantile_edges(&mut keys, bins);
            let mut names: Vec<SliceValue> = edges
                .windows(2)
                .map(|w| SliceValue::Range {
                    low: w[0],
                    high: w[1],
                })
                .collect();
            if names.is_empty() && !edges.is_empty() {
                // A constant column: one bin holding its value.
                names.push(SliceValue::Range {
                    low: edges[0],
                    high: edges[0],
                });
            }
            let missing = names.len() as u32;
            let inner = if edges.len() > 2 {
                &edges[1..edges.len() - 1]
            } else {
                &[][..]
            };
            let codes = values
                .iter()
                .map(|&v| {
                    if v.is_nan() {
                        missing
                    } else {
                        inner.partition_point(|&e| e < v) as u32
                    }
                })
                .collect();
            if values.iter().any(|v| v.is_nan()) {
                names.push(SliceValue::Missing);
            }
            Ok(Encoded {
                name,
                codes,
                values: names,
            })
        }
    }
}

/// The quantile edges `pandas.qcut` uses: numpy's linear-interpolation
/// quantiles at `np.linspace(0, 1, bins + 1)` (with numpy's two-sided lerp),
/// duplicates dropped. `keys` (order keys) are reordered: only the order
/// statistics the quantiles need are selected, not a full sort.
fn quantile_edges(keys: &mut [u64], bins: usize) -> Vec<f64> {
    let n = keys.len();
    if n == 0 {
        return Vec::new();
    }
    let step = 1.0 / bins as f64;
    // Each quantile interpolates between order statistics `lo` and `lo + 1`.
    let points: Vec<(usize, usize, f64)> = (0..=bins)
        .map(|i| {
            let q = if i == bins { 1.0 } else { i as f64 * step };
            let h = (n - 1) as f64 * q;
            let lo = (h.floor() as usize).min(n - 1);
            (lo, (lo + 1).min(n - 1), h - lo as f64)
        })
        .collect();
    let mut positions: Vec<usize> = points.iter().flat_map(|p| [p.0, p.1]).collect();
    positions.sort_unstable();
    positions.dedup();
    let stats = order_statistics(keys, &positions);
    let at = |i: usize| order::value(stats[positions.partition_point(|&p| p < i)]);
    let mut edges: Vec<f64> = points
        .iter()
        .map(|&(lo, hi, t)| {
            let (a, b) = (at(lo), at(hi));
            let diff = b - a;
            if t >= 0.5 {
                b - diff * (1.0 - t)
            } else {
                a + diff * t
            }
        })
        .collect();
    edges.dedup();
    edges
}

/// The values at `positions` (ascending, distinct) of `keys` in sorted
/// order, by successive selection on the part right of the last one.
fn order_statistics(keys: &mut [u64], positions: &[usize]) -> Vec<u64> {
    let mut out = Vec::with_capacity(positions.len());
    let mut rest = keys;
    let mut base = 0;
    for &p in positions {
        let (_, value, right) = std::mem::take(&mut rest).select_nth_unstable(p - base);
        out.push(*value);
        rest = right;
        base = p + 1;
    }
    out
}

#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    count: u64,
    sum: f64,
}

/// Pairs of codes with more combinations than this are counted in a hash
/// map rather than a dense table (16 bytes a cell).
const DENSE_PAIRS: usize = 1 << 16;

/// The non-empty cells of a pair of encoded columns, keyed `a · kb + b`.
fn pair_cells(a: &[u32], b: &[u32], kb: usize, y: &[f64]) -> Vec<(usize, Cell)> {
    let ka = a.iter().max().map_or(0, |&m| m as usize + 1);
    if ka.saturating_mul(kb) <= DENSE_PAIRS {
        let mut cells = vec![Cell::default(); ka * kb];
        for ((&ca, &cb), &v) in a.iter().zip(b).zip(y) {
            let c = &mut cells[ca as usize * kb + cb as usize];
            c.count += 1;
            c.sum += v;
        }
        return cells
            .into_iter()
            .enumerate()
            .filter(|(_, c)| c.count > 0)
            .collect();
    }
    let mut cells: FxMap<usize, Cell> = FxMap::default();
    for ((&ca, &cb), &v) in a.iter().zip(b).zip(y) {
        let c = cells.entry(ca as usize * kb + cb as usize).or_default();
        c.count += 1;
        c.sum += v;
    }
    cells.into_iter().collect()
}

/// Per-row outcome as a number (1/0 or the loss), validated.
fn outcomes(outcome: &RowOutcome<'_>) -> Result<Vec<f64>> {
    match outcome {
        RowOutcome::Correct(v) => Ok(v.iter().map(|&c| f64::from(u8::from(c))).collect()),
        RowOutcome::Loss(v) => {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(not_finite("loss", i, v[i]));
            }
            Ok(v.to_vec())
        }
    }
}

/// Finds the worst slices of single columns and pairs of columns.
pub fn worst_slices(
    columns: &[SliceColumn<'_>],
    outcome: RowOutcome<'_>,
    search: SliceSearch,
) -> Result<SliceReport> {
    let n = outcome.len();
    if columns.is_empty() {
        return Err(QualityError::Empty {
            name: "columns".into(),
        });
    }
    for c in columns {
        paired("outcome", n, &format!("column {}", c.name()), c.len())?;
    }
    if search.numeric_bins == 0 {
        return Err(invalid("numeric_bins", "must be at least 1"));
    }
    let y = outcomes(&outcome)?;
    let mut total = Sum::default();
    y.iter().for_each(|&v| total.add(v));
    let overall = total.value() / n as f64;
    let lower_is_worse = matches!(outcome, RowOutcome::Correct(_));
    let encoded: Vec<Encoded> = crate::parallel_map(columns, |c| encode(c, search.numeric_bins))
        .into_iter()
        .collect::<Result<_>>()?;

    let min_size = search.min_size.max(1) as u64;
    let mut found: Vec<Slice> = Vec::new();
    let slice = |conditions: Vec<Condition>, cell: &Cell| {
        let metric = cell.sum / cell.count as f64;
        Slice {
            conditions,
            size: cell.count,
            metric,
            difference: metric - overall,
        }
    };
    let condition = |e: &Encoded, code: usize| Condition {
        column: e.name.clone(),
        value: e.values[code].clone(),
    };

    let singles: Vec<Vec<Cell>> = encoded
        .iter()
        .map(|e| {
            let mut cells = vec![Cell::default(); e.values.len()];
            for (&code, &v) in e.codes.iter().zip(&y) {
                let c = &mut cells[code as usize];
                c.count += 1;
                c.sum += v;
            }
            cells
        })
        .collect();
    for (e, cells) in encoded.iter().zip(&singles) {
        for (code, cell) in cells.iter().enumerate() {
            if cell.count >= min_size {
                found.push(slice(vec![condition(e, code)], cell));
            }
        }
    }

    if search.pairs {
        let pairs: Vec<(usize, usize)> = (0..encoded.len())
            .flat_map(|a| (a + 1..encoded.len()).map(move |b| (a, b)))
            .collect();
        let counted = crate::parallel_map(&pairs, |&(a, b)| {
            let (ea, eb) = (&encoded[a], &encoded[b]);
            pair_cells(&ea.codes, &eb.codes, eb.values.len(), &y)
        });
        for (&(a, b), cells) in pairs.iter().zip(counted) {
            {
                let (ea, eb) = (&encoded[a], &encoded[b]);
                let kb = eb.values.len();
                for (key, cell) in cells {
                    let (ca, cb) = (key / kb, key % kb);
                    // A pair holding exactly the rows of one of its columns'
                    // slices says nothing that slice does not.
                    if cell.count < min_size
                        || cell.count == singles[a][ca].count
                        || cell.count == singles[b][cb].count
                    {
                        continue;
                    }
                    found.push(slice(vec![condition(ea, ca), condition(eb, cb)], &cell));
                }
            }
        }
    }

    let badness = |s: &Slice| {
        if lower_is_worse {
            -s.difference
        } else {
            s.difference
        }
    };
    // Stable: equally bad slices of equal size keep their discovery order
    // (columns in order, singles before pairs, values by first appearance).
    found.sort_by(|x, y| badness(y).total_cmp(&badness(x)).then(y.size.cmp(&x.size)));
    found.truncate(search.top_k);
    Ok(SliceReport {
        overall,
        rows: n,
        slices: found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whether row `i` satisfies a condition (by brute force).
    fn holds(c: &Condition, cat: &[&str], num: &[f64], i: usize) -> bool {
        let min = num
            .iter()
            .copied()
            .filter(|v| !v.is_nan())
            .fold(f64::INFINITY, f64::min);
        match (&c.value, c.column.as_str()) {
            (SliceValue::Category(v), "cat") => cat[i] == v,
            (SliceValue::Range { low, high }, "num") => {
                let v = num[i];
                v <= *high && (v > *low || (*low == min && v == *low))
            }
            (SliceValue::Missing, "num") => num[i].is_nan(),
            _ => panic!("unexpected condition {c:?}"),
        }
    }

    proptest! {
        /// Selecting the order statistics gives what a full sort gives.
        #[test]
        fn selected_order_statistics_equal_sorted(
            mut keys in proptest::collection::vec(0u64..50, 1..200),
            picks in proptest::collection::vec(0usize..1000, 1..8),
        ) {
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            let mut positions: Vec<usize> = picks.iter().map(|p| p % keys.len()).collect();
            positions.sort_unstable();
            positions.dedup();
            let want: Vec<u64> = positions.iter().map(|&p| sorted[p]).collect();
            prop_assert_eq!(order_statistics(&mut keys, &positions), want);
        }

        #[test]
        fn slices_are_what_they_say(
            rows in proptest::collection::vec(
                (0usize..3, prop_oneof![Just(f64::NAN), (0u8..20).prop_map(f64::from)], 0.0f64..2.0),
                1..300,
            ),
            min_size in 1usize..20,
        ) {
            let names = ["red", "green", "blue"];
            let cat: Vec<&str> = rows.iter().map(|r| names[r.0]).collect();
            let num: Vec<f64> = rows.iter().map(|r| r.1).collect();
            let loss: Vec<f64> = rows.iter().map(|r| r.2).collect();
            let columns = [
                SliceColumn::Categorical { name: "cat", values: &cat },
                SliceColumn::Numeric { name: "num", values: &num },
            ];
            let search = SliceSearch { min_size, top_k: 1000, ..SliceSearch::default() };
            let report = worst_slices(&columns, RowOutcome::Loss(&loss), search).unwrap();
            for s in &report.slices {
                let members: Vec<usize> = (0..rows.len())
                    .filter(|&i| s.conditions.iter().all(|c| holds(c, &cat, &num, i)))
                    .collect();
                prop_assert_eq!(members.len() as u64, s.size, "{:?}", s);
                prop_assert!(s.size >= min_size as u64);
                let mean = members.iter().map(|&i| loss[i]).sum::<f64>() / members.len() as f64;
                prop_assert!((mean - s.metric).abs() < 1e-12);
                prop_assert!((s.metric - report.overall - s.difference).abs() < 1e-12);
            }
            for w in report.slices.windows(2) {
                prop_assert!(w[0].difference >= w[1].difference);
            }
        }
    }

    #[test]
    fn finds_the_planted_slice() {
        // 4000 rows; the model is wrong on every row where country is "fr"
        // and age is in the top quartile, right elsewhere.
        let n = 4000;
        let countries = ["us", "fr", "de", "uk"];
        let country: Vec<&str> = (0..n).map(|i| countries[(i * 7 + i / 3) % 4]).collect();
        let age: Vec<f64> = (0..n).map(|i| ((i * 37) % 100) as f64).collect();
        let correct: Vec<bool> = (0..n)
            .map(|i| !(country[i] == "fr" && age[i] > 74.25))
            .collect();
        let report = worst_slices(
            &[
                SliceColumn::Categorical {
                    name: "country",
                    values: &country,
                },
                SliceColumn::Numeric {
                    name: "age",
                    values: &age,
                },
            ],
            RowOutcome::Correct(&correct),
            SliceSearch::default(),
        )
        .unwrap();
        let worst = &report.slices[0];
        assert_eq!(worst.metric, 0.0, "{report:#?}");
        assert_eq!(worst.conditions.len(), 2);
        assert_eq!(worst.conditions[0].value, SliceValue::Category("fr".into()));
        assert!(matches!(
            worst.conditions[1].value,
            SliceValue::Range { high: 99.0, .. }
        ));
        assert!(worst.difference < 0.0);
        // Single-column slices come next: fr, then age's top bin.
        assert_eq!(report.slices[1].conditions.len(), 1);
        assert!(report.slices.len() <= 10);
        for w in report.slices.windows(2) {
            assert!(w[0].difference <= w[1].difference);
        }
    }

    #[test]
    fn quantile_bins_like_qcut() {
        // pandas.qcut([1..8], 4) edges: 1, 2.75, 4.5, 6.25, 8.
        let mut keys: Vec<u64> = (1..=8).rev().map(|v| order::key(v as f64)).collect();
        assert_eq!(
            quantile_edges(&mut keys, 4),
            vec![1.0, 2.75, 4.5, 6.25, 8.0]
        );
        let values = [1.0, 2.75, 3.0, 8.0, f64::NAN, 1.0, 2.0, 4.0, 5.0, 6.0, 7.0];
        let e = encode(
            &SliceColumn::Numeric {
                name: "x",
                values: &values,
            },
            4,
        )
        .unwrap();
        // pandas.qcut(values, 4).codes: 0 1 1 3 (NaN: -1) 0 0 2 2 3 3.
        assert_eq!(e.codes, [0, 1, 1, 3, 4, 0, 0, 2, 2, 3, 3]);
        assert_eq!(e.values[4], SliceValue::Missing);
        let constant = encode(
            &SliceColumn::Numeric {
                name: "c",
                values: &[2.0; 5],
            },
            4,
        )
        .unwrap();
        assert_eq!(constant.codes, vec![0; 5]);
        assert_eq!(
            constant.values,
            vec![SliceValue::Range {
                low: 2.0,
                high: 2.0
            }]
        );
    }

    #[test]
    fn losses_sort_highest_first_and_bad_input_is_named() {
        let g = ["a", "a", "b", "b", "b", "c"];
        let loss = [0.1, 0.3, 2.0, 1.0, 3.0, 0.0];
        let r = worst_slices(
            &[SliceColumn::Categorical {
                name: "g",
                values: &g,
            }],
            RowOutcome::Loss(&loss),
            SliceSearch {
                min_size: 2,
                ..SliceSearch::default()
            },
        )
        .unwrap();
        assert_eq!(r.slices.len(), 2);
        assert_eq!(r.slices[0].metric, 2.0);
        assert_eq!(r.slices[1].metric, 0.2);
        let e = worst_slices(
            &[SliceColumn::Categorical {
                name: "g",
                values: &g[..3],
            }],
            RowOutcome::Loss(&loss),
            SliceSearch::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("column g"), "{e}");
        let e = worst_slices(
            &[SliceColumn::Numeric {
                name: "x",
                values: &[1.0, f64::INFINITY],
            }],
            RowOutcome::Correct(&[true, false]),
            SliceSearch::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("column x[1]"), "{e}");
    }
}
