//! Ranking metrics of scored lists: NDCG@k (scikit-learn's `ndcg_score`),
//! precision@k and MAP@k, for one query or averaged over a query-id column.
//!
//! Each row is one (query, item) pair with a *relevance* label — a graded
//! gain `≥ 0` for NDCG; for precision and MAP an item is relevant when its
//! relevance is `> 0` — and the model's *score*; a query's list is its rows
//! sorted by score, highest first. Averages over queries weight every query
//! equally, and a query with no relevant item counts as 0 (as scikit-learn's
//! NDCG does) rather than being skipped.

use serde::{Deserialize, Serialize};

use super::order;
use crate::{QualityError, Result, Sum, invalid, not_finite, paired};

/// A metric averaged over the queries of a query-id column.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QueryAverage {
    /// The unweighted mean over queries.
    pub mean: f64,
    /// The number of distinct queries.
    pub queries: usize,
}

fn check_relevance(relevance: &[f64]) -> Result<()> {
    for (i, &r) in relevance.iter().enumerate() {
        if !r.is_finite() {
            return Err(not_finite("relevance", i, r));
        }
        if r < 0.0 {
            return Err(QualityError::OutOfRange {
                name: "relevance".into(),
                index: i,
                value: r,
                range: "[0, inf)",
            });
        }
    }
    Ok(())
}

fn score_keys(scores: &[f64]) -> Result<Vec<u64>> {
    scores
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            if s.is_finite() {
                Ok(order::key(s))
            } else {
                Err(not_finite("scores", i, s))
            }
        })
        .collect()
}

fn check_k(k: Option<usize>) -> Result<()> {
    if k == Some(0) {
        return Err(invalid("k", "must be at least 1"));
    }
    Ok(())
}

/// `1 / log₂(i + 2)` for the ranks `i < len` that count (`i < k`), 0 after,
/// computed as scikit-learn does (`1 / (ln(i + 2) / ln 2)`).
fn discounts(len: usize, k: Option<usize>) -> Vec<f64> {
    let cut = k.unwrap_or(len).min(len);
    (0..len)
        .map(|i| {
            if i < cut {
                1.0 / ((i as f64 + 2.0).ln() / 2f64.ln())
            } else {
                0.0
            }
        })
        .collect()
}

/// NDCG of one query's rows, already sorted by score (highest first).
/// `discount_cumsum` covers at least `rows.len()` ranks; `ideal` is
/// scratch space.
fn ndcg_sorted(
    rows: &[usize],
    keys: &[u64],
    relevance: &[f64],
    discount: &[f64],
    discount_cumsum: &[f64],
    ideal: &mut Vec<f64>,
) -> f64 {
    // DCG with tied scores sharing their mean gain over the discounts of
    // the ranks they occupy (McSherry & Najork; scikit-learn's default).
    let mut dcg = Sum::default();
    let mut start = 0;
    let mut below = 0.0; // discount_cumsum just before the group
    while start < rows.len() {
        let key = keys[rows[start]];
        let mut end = start;
        let mut gain = 0.0;
        while end < rows.len() && keys[rows[end]] == key {
            gain += relevance[rows[end]];
            end += 1;
        }
        let upto = discount_cumsum[end - 1];
        dcg.add(gain / (end - start) as f64 * (upto - below));
        below = upto;
        start = end;
    }
    ideal.clear();
    ideal.extend(rows.iter().map(|&r| relevance[r]));
    ideal.sort_unstable_by(|a, b| b.total_cmp(a));
    let idcg: f64 = ideal.iter().zip(discount).map(|(r, d)| r * d).sum();
    if idcg == 0.0 { 0.0 } else { dcg.value() / idcg }
}

/// NDCG@k of one query, as scikit-learn's `ndcg_score([relevance],
/// [scores], k=k)`: linear gains (the relevance itself, not `2^rel − 1`),
/// discount `1/log₂(rank + 1)` for the first `k` ranks (all if `None`),
/// tied scores averaged over their ranks, normalised by the DCG of the ideal
/// order; 0 when no item is relevant. Like scikit-learn it needs at least
/// two items. One sort.
pub fn ndcg(relevance: &[f64], scores: &[f64], k: Option<usize>) -> Result<f64> {
    let n = paired("relevance", relevance.len(), "scores", scores.len())?;
    if n < 2 {
        return Err(invalid(
            "relevance",
            "NDCG of a single query needs at least 2 items, as scikit-learn's ndcg_score",
        ));
    }
    check_k(k)?;
    check_relevance(relevance)?;
    let keys = score_keys(scores)?;
    let mut rows: Vec<usize> = (0..n).collect();
    rows.sort_unstable_by(|&a, &b| keys[b].cmp(&keys[a]));
    let discount = discounts(n, k);
    let cumsum = cumulative(&discount);
    Ok(ndcg_sorted(
        &rows,
        &keys,
        relevance,
        &discount,
        &cumsum,
        &mut Vec::new(),
    ))
}

fn cumulative(values: &[f64]) -> Vec<f64> {
    let mut total = 0.0;
    values
        .iter()
        .map(|v| {
            total += v;
            total
        })
        .collect()
}

/// Rows grouped by query (ascending), each query's rows by score (highest
/// first), ties by row order: one sort.
fn by_query<Q: Ord>(query: &[Q], keys: &[u64]) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..query.len()).collect();
    rows.sort_unstable_by(|&a, &b| {
        query[a]
            .cmp(&query[b])
            .then(keys[b].cmp(&keys[a]))
            .then(a.cmp(&b))
    });
    rows
}

/// Calls `each` with the rows of every query, in the order of [`by_query`].
fn for_each_query<Q: Ord>(query: &[Q], rows: &[usize], mut each: impl FnMut(&[usize])) {
    let mut start = 0;
    while start < rows.len() {
        let mut end = start + 1;
        while end < rows.len() && query[rows[end]] == query[rows[start]] {
            end += 1;
        }
        each(&rows[start..end]);
        start = end;
    }
}

/// The mean of `per_query` over the queries of `rows` (sorted by query).
fn average_over_queries<Q: Ord>(
    query: &[Q],
    rows: &[usize],
    mut per_query: impl FnMut(&[usize]) -> f64,
) -> QueryAverage {
    let (mut sum, mut queries) = (Sum::default(), 0);
    for_each_query(query, rows, |q| {
        sum.add(per_query(q));
        queries += 1;
    });
    QueryAverage {
        mean: sum.value() / queries as f64,
        queries,
    }
}

fn validate<Q>(query: &[Q], relevance: &[f64], scores: &[f64]) -> Result<Vec<u64>> {
    paired("query", query.len(), "relevance", relevance.len())?;
    paired("query", query.len(), "scores", scores.len())?;
    check_relevance(relevance)?;
    score_keys(scores)
}

/// NDCG@k of each query of a query-id column (see [`ndcg`]), averaged over
/// queries. One sort of all rows. Unlike [`ndcg`], a query with a single
/// item is allowed (its NDCG is 1 if the item is relevant, else 0) so that
/// real recommendation logs need no filtering.
pub fn ndcg_by_query<Q: Ord>(
    query: &[Q],
    relevance: &[f64],
    scores: &[f64],
    k: Option<usize>,
) -> Result<QueryAverage> {
    check_k(k)?;
    let keys = validate(query, relevance, scores)?;
    let rows = by_query(query, &keys);
    let mut longest = 0;
    for_each_query(query, &rows, |q| longest = longest.max(q.len()));
    let discount = discounts(longest, k);
    let cumsum = cumulative(&discount);
    let mut ideal = Vec::new();
    Ok(average_over_queries(query, &rows, |q| {
        ndcg_sorted(q, &keys, relevance, &discount, &cumsum, &mut ideal)
    }))
}

/// Precision@k averaged over queries: per query, the number of relevant
/// items (relevance `> 0`) among the `k` highest-scored, divided by `k` —
/// also when the query has fewer than `k` items. Tied scores are ranked by
/// row order (a stable sort). One sort of all rows.
pub fn precision_at_k<Q: Ord>(
    query: &[Q],
    relevance: &[f64],
    scores: &[f64],
    k: usize,
) -> Result<QueryAverage> {
    check_k(Some(k))?;
    let keys = validate(query, relevance, scores)?;
    let rows = by_query(query, &keys);
    Ok(average_over_queries(query, &rows, |q| {
        let hits = q.iter().take(k).filter(|&&r| relevance[r] > 0.0).count();
        hits as f64 / k as f64
    }))
}

/// MAP@k, the mean over queries of average precision at k:
/// `AP@k = Σ_{i ≤ k} P@i · rel_i / min(k, R)`, where `rel_i` is 1 when the
/// item at rank `i` is relevant (relevance `> 0`), `P@i` the fraction of
/// relevant items in the first `i`, and `R` the query's number of relevant
/// items in the data (not only in the top k). A query with `R = 0` has
/// AP@k = 0. Tied scores are ranked by row order (a stable sort). One sort.
pub fn map_at_k<Q: Ord>(
    query: &[Q],
    relevance: &[f64],
    scores: &[f64],
    k: usize,
) -> Result<QueryAverage> {
    check_k(Some(k))?;
    let keys = validate(query, relevance, scores)?;
    let rows = by_query(query, &keys);
    Ok(average_over_queries(query, &rows, |q| {
        let relevant = q.iter().filter(|&&r| relevance[r] > 0.0).count();
        let mut ap = 0.0;
        if relevant > 0 {
            let mut hits = 0;
            for (i, &r) in q.iter().take(k).enumerate() {
                if relevance[r] > 0.0 {
                    hits += 1;
                    ap += hits as f64 / (i + 1) as f64;
                }
            }
            ap /= relevant.min(k) as f64;
        }
        ap
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sklearn_docstring_values() {
        // ndcg_score([[10, 0, 0, 1, 5]], [[.1, .2, .3, 4, 70]]) == 0.6956...
        let rel = [10.0, 0.0, 0.0, 1.0, 5.0];
        let s = [0.1, 0.2, 0.3, 4.0, 70.0];
        assert!((ndcg(&rel, &s, None).unwrap() - 0.6956940443813076).abs() < 1e-15);
        // with k=4: 0.352...
        let s = [0.05, 1.1, 1.0, 0.5, 0.0];
        assert!((ndcg(&rel, &s, Some(4)).unwrap() - 0.3520241100634488).abs() < 1e-15);
        // ties: scores [1, 0, 0, 0, 1], k=1 → 0.75
        let s = [1.0, 0.0, 0.0, 0.0, 1.0];
        assert!((ndcg(&rel, &s, Some(1)).unwrap() - 0.75).abs() < 1e-15);
    }

    #[test]
    fn map_and_precision_by_hand() {
        // Query a: ranks r, n, r (2 relevant); query b: n, n (none).
        let q = ["a", "a", "a", "b", "b"];
        let rel = [1.0, 0.0, 2.0, 0.0, 0.0];
        let s = [0.9, 0.8, 0.7, 0.5, 0.4];
        let p = precision_at_k(&q, &rel, &s, 2).unwrap();
        assert_eq!(p.queries, 2);
        assert!((p.mean - (0.5 + 0.0) / 2.0).abs() < 1e-15);
        // AP@3(a) = (1/1 + 2/3) / 2; AP(b) = 0.
        let m = map_at_k(&q, &rel, &s, 3).unwrap();
        assert!((m.mean - (1.0 + 2.0 / 3.0) / 2.0 / 2.0).abs() < 1e-15);
        // AP@1(a) = 1 / min(1, 2) = 1.
        assert!((map_at_k(&q, &rel, &s, 1).unwrap().mean - 0.5).abs() < 1e-15);
    }

    #[test]
    fn bad_input_is_named() {
        assert!(ndcg(&[1.0], &[1.0], None).is_err());
        assert!(ndcg(&[1.0, 0.0], &[1.0, 0.0], Some(0)).is_err());
        let e = ndcg(&[1.0, -1.0], &[1.0, 0.0], None).unwrap_err();
        assert!(e.to_string().contains("relevance[1]"), "{e}");
        let e = ndcg(&[1.0, 1.0], &[1.0, f64::NAN], None).unwrap_err();
        assert!(e.to_string().contains("scores[1]"), "{e}");
        let e = map_at_k(&[1, 2], &[1.0], &[1.0, 2.0], 3).unwrap_err();
        assert!(matches!(e, QualityError::LengthMismatch { .. }), "{e}");
    }

    fn query_data() -> impl Strategy<Value = (Vec<u8>, Vec<f64>, Vec<f64>)> {
        (1usize..150).prop_flat_map(|n| {
            (
                proptest::collection::vec(0u8..6, n),
                proptest::collection::vec((0u8..4).prop_map(f64::from), n),
                proptest::collection::vec((0u8..10).prop_map(f64::from), n),
            )
        })
    }

    proptest! {
        #[test]
        fn ranking_metrics_stay_in_range((q, rel, s) in query_data(), k in 1usize..12) {
            for m in [
                ndcg_by_query(&q, &rel, &s, Some(k)).unwrap(),
                ndcg_by_query(&q, &rel, &s, None).unwrap(),
                precision_at_k(&q, &rel, &s, k).unwrap(),
                map_at_k(&q, &rel, &s, k).unwrap(),
            ] {
                prop_assert!((0.0..=1.0 + 1e-12).contains(&m.mean), "{:?}", m);
            }
        }

        #[test]
        fn ideal_scores_are_perfect((q, rel, _s) in query_data(), k in 1usize..12) {
            // Scoring by relevance is the ideal order: NDCG 1 for every
            // query with a relevant item, and AP 1.
            let queries: std::collections::BTreeSet<u8> = q.iter().copied().collect();
            let with_relevant = queries
                .iter()
                .filter(|&&id| q.iter().zip(&rel).any(|(&a, &r)| a == id && r > 0.0))
                .count() as f64;
            let want = with_relevant / queries.len() as f64;
            let nd = ndcg_by_query(&q, &rel, &rel, Some(k)).unwrap();
            prop_assert!((nd.mean - want).abs() < 1e-12, "{} vs {}", nd.mean, want);
            let map = map_at_k(&q, &rel, &rel, k).unwrap();
            prop_assert!((map.mean - want).abs() < 1e-12, "{} vs {}", map.mean, want);
        }

        #[test]
        fn ndcg_ignores_monotone_maps_and_row_order((q, rel, s) in query_data(), k in 1usize..12) {
            let a = ndcg_by_query(&q, &rel, &s, Some(k)).unwrap().mean;
            let mapped: Vec<f64> = s.iter().map(|x| (x * 0.3).exp()).collect();
            prop_assert!((ndcg_by_query(&q, &rel, &mapped, Some(k)).unwrap().mean - a).abs() < 1e-12);
            let rev = |v: &[f64]| v.iter().rev().copied().collect::<Vec<f64>>();
            let q_rev: Vec<u8> = q.iter().rev().copied().collect();
            let b = ndcg_by_query(&q_rev, &rev(&rel), &rev(&s), Some(k)).unwrap().mean;
            prop_assert!((a - b).abs() < 1e-12);
        }
    }
}
