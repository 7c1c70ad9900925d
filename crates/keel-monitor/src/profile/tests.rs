//! Property tests of merging, and the behaviour of whole profiles on edge
//! cases. Merge properties: for data split at random points into parts,
//! merging the profiles of the parts (in order, and in a different
//! grouping) gives what profiling the whole gives — exactly for counts,
//! min, max, sum, histogram counts, HyperLogLog registers, exact values and
//! exact category counts; within 1e-9 of the data's scale for mean and
//! variance; within the rank error ε for KLL; within the frequent-items
//! bounds for item counts.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;

use super::*;

fn config(cases: u32, seed: u64) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

const EDGES: [f64; 6] = [-2.0, -1.0, 0.0, 0.5, 1.0, 2.0];

/// A cell of a numeric column: mostly ordinary numbers, with ties, zeros of
/// both signs, NaN, infinities and nulls mixed in.
fn numeric_cell() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        6 => (-3.0f64..3.0).prop_map(Some),
        2 => (-5i32..5).prop_map(|i| Some(f64::from(i) * 0.5)),
        1 => (-1e6f64..1e6).prop_map(Some),
        1 => prop_oneof![
            Just(Some(f64::NAN)),
            Just(Some(f64::INFINITY)),
            Just(Some(f64::NEG_INFINITY)),
            Just(Some(-0.0)),
            Just(None),
        ],
    ]
}

/// Split points as fractions of the length.
fn splits() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(0.0f64..=1.0, 0..6)
}

fn parts<T>(data: &[T], fractions: &[f64]) -> Vec<std::ops::Range<usize>> {
    let mut cuts: Vec<usize> = fractions
        .iter()
        .map(|f| ((f * data.len() as f64) as usize).min(data.len()))
        .collect();
    cuts.push(0);
    cuts.push(data.len());
    cuts.sort_unstable();
    cuts.windows(2).map(|w| w[0]..w[1]).collect()
}

/// Profiles a part through one of the three ingestion paths.
fn profile_part(config: &NumericConfig, cells: &[Option<f64>], path: usize) -> NumericProfile {
    let mut profile = NumericProfile::with_config(config.clone()).unwrap();
    match path % 3 {
        0 => profile.extend_nullable(cells.iter().copied()),
        1 => {
            for cell in cells {
                match cell {
                    Some(x) => profile.update(*x),
                    None => profile.update_null(),
                }
            }
        }
        _ => {
            let values: Vec<f64> = cells.iter().map(|c| c.unwrap_or(f64::NAN)).collect();
            profile.extend(&values);
        }
    }
    profile
}

/// Merges left to right, and as `p₀ ⊕ (p₁ ⊕ (p₂ ⊕ …))`.
fn merge_both_ways<P: Clone>(profiles: &[P], empty: P, merge: impl Fn(&mut P, &P)) -> (P, P) {
    let mut left = empty.clone();
    for p in profiles {
        merge(&mut left, p);
    }
    let mut right = empty;
    for p in profiles.iter().rev() {
        let mut next = p.clone();
        merge(&mut next, &right);
        right = next;
    }
    (left, right)
}

fn finite_sorted(cells: &[Option<f64>]) -> Vec<f64> {
    let mut values: Vec<f64> = cells
        .iter()
        .filter_map(|c| c.filter(|x| x.is_finite()).map(|x| x + 0.0))
        .collect();
    values.sort_by(f64::total_cmp);
    values
}

/// Checks `merged` against `whole` and against the data itself.
fn check_numeric(merged: &NumericProfile, whole: &NumericProfile, cells: &[Option<f64>]) {
    let finite = finite_sorted(cells);
    let nulls = cells
        .iter()
        .filter(|c| c.is_none_or(|x| x.is_nan()))
        .count() as u64;
    let infinite = cells
        .iter()
        .filter(|c| c.is_some_and(f64::is_infinite))
        .count() as u64;
    for p in [merged, whole] {
        assert_eq!(p.count(), cells.len() as u64);
        assert_eq!(p.null_count(), nulls);
        assert_eq!(p.infinite_count(), infinite);
        assert_eq!(p.finite_count(), finite.len() as u64);
        assert_eq!(p.min(), finite.first().copied());
        assert_eq!(p.max(), finite.last().copied());
    }
    assert_eq!(merged.sum().to_bits(), whole.sum().to_bits());
    if let (Some(a), Some(b)) = (merged.mean(), whole.mean()) {
        let var = whole.population_variance().unwrap_or(0.0);
        let scale = (b * b + var).sqrt();
        assert!((a - b).abs() <= 1e-9 * scale, "mean {a} vs {b}");
        if let (Some(va), Some(vb)) = (merged.variance(), whole.variance()) {
            assert!(
                (va - vb).abs() <= 1e-9 * scale * scale,
                "variance {va} vs {vb}"
            );
        }
    }
    assert_eq!(merged.histogram(), whole.histogram());
    assert_eq!(merged.hll(), whole.hll());
    assert_eq!(merged.is_exact(), whole.is_exact());
    assert_eq!(merged.exact_values(), whole.exact_values());
    if merged.is_exact() {
        assert_eq!(merged.exact_values().as_deref(), Some(finite.as_slice()));
        let mut distinct = finite.clone();
        distinct.dedup();
        assert_eq!(merged.distinct_count(), distinct.len() as f64);
    } else {
        assert_eq!(merged.distinct_count(), whole.distinct_count());
    }
    if finite.is_empty() {
        assert_eq!(merged.quantile(0.5).unwrap(), None);
        return;
    }
    // Every rank within ε of the truth, for the merged and the whole
    // profile; in exact mode ε = 0.
    let n = finite.len() as f64;
    for p in [merged, whole] {
        let epsilon = p.rank_error_bound();
        let ranks = p.ranks(&finite).unwrap().unwrap();
        for (&x, &rank) in finite.iter().zip(&ranks) {
            let truth = finite.partition_point(|&y| y <= x) as f64 / n;
            assert!(
                (rank - truth).abs() <= epsilon + 1e-12,
                "rank({x}) = {rank}, truth {truth}, ε {epsilon}"
            );
        }
        let qs = [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0];
        let xs = p.quantiles(&qs).unwrap().unwrap();
        for (&q, &x) in qs.iter().zip(&xs) {
            let below = finite.partition_point(|&y| y < x) as f64 / n;
            let at_most = finite.partition_point(|&y| y <= x) as f64 / n;
            assert!(
                below <= q + epsilon + 1e-12 && at_most >= q - epsilon - 1e-12,
                "quantile({q}) = {x} has ranks [{below}, {at_most}], ε {epsilon}"
            );
            if p.is_exact() {
                let index = ((q * n).ceil() as usize).clamp(1, finite.len()) - 1;
                assert_eq!(x, finite[index], "exact quantile({q})");
            }
        }
    }
}

proptest! {
    #![proptest_config(config(64, 0x6b65_656c))]

    #[test]
    fn numeric_merge_equals_whole(
        cells in prop::collection::vec(numeric_cell(), 0..2500),
        fractions in splits(),
        exact_limit in prop_oneof![Just(0usize), Just(300), Just(100_000)],
        kll_k in prop_oneof![Just(8u16), Just(40), Just(200)],
    ) {
        let config = NumericConfig {
            kll_k,
            exact_limit,
            edges: Some(EDGES.to_vec()),
            seed: 17,
            ..NumericConfig::default()
        };
        let whole = profile_part(&config, &cells, 2);
        let profiles: Vec<NumericProfile> = parts(&cells, &fractions)
            .into_iter()
            .enumerate()
            .map(|(i, range)| profile_part(&config, &cells[range], i))
            .collect();
        let empty = NumericProfile::with_config(config.clone()).unwrap();
        let (left, right) =
            merge_both_ways(&profiles, empty, |a, b| a.merge(b).unwrap());
        check_numeric(&left, &whole, &cells);
        check_numeric(&right, &whole, &cells);
        check_numeric(&right, &left, &cells);
    }
}

fn category_cell() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        // A few heavy hitters …
        5 => (0u32..5).prop_map(|i| Some(format!("hot-{i}"))),
        // … a long tail …
        4 => (0u32..400).prop_map(|i| Some(format!("tail-{i}"))),
        // … odd strings and nulls.
        1 => prop_oneof![Just(Some(String::new())), Just(Some("ünï ☃".to_owned())), Just(None)],
    ]
}

fn check_categorical(
    merged: &CategoricalProfile,
    whole: &CategoricalProfile,
    cells: &[Option<String>],
) {
    let mut truth: BTreeMap<String, u64> = BTreeMap::new();
    for value in cells.iter().flatten() {
        *truth.entry(value.clone()).or_insert(0) += 1;
    }
    let nulls = cells.iter().filter(|c| c.is_none()).count() as u64;
    let n = cells.len() as u64 - nulls;
    for p in [merged, whole] {
        assert_eq!(p.count(), cells.len() as u64);
        assert_eq!(p.null_count(), nulls);
        for (value, &count) in &truth {
            let (lower, upper) = p.count_bounds(value);
            assert!(
                lower <= count && count <= upper,
                "{value}: {count} ∉ [{lower}, {upper}]"
            );
        }
        assert!(p.max_count_error() <= n / (TEST_CAPACITY as u64 + 1));
        for item in p.frequent_items() {
            assert!(
                item.lower_bound <= truth[&item.value] && truth[&item.value] <= item.upper_bound
            );
        }
    }
    assert_eq!(merged.hll(), whole.hll());
    assert_eq!(merged.is_exact(), whole.is_exact());
    if merged.is_exact() {
        assert_eq!(merged.exact_counts(), Some(&truth));
        assert_eq!(merged.distinct_count(), truth.len() as f64);
    }
}

const TEST_CAPACITY: usize = 16;

proptest! {
    #![proptest_config(config(64, 0x6361_7473))]

    #[test]
    fn categorical_merge_equals_whole(
        cells in prop::collection::vec(category_cell(), 0..3000),
        fractions in splits(),
        exact_limit in prop_oneof![Just(0usize), Just(50), Just(10_000)],
    ) {
        let config = CategoricalConfig {
            exact_limit,
            frequent_capacity: TEST_CAPACITY,
            ..CategoricalConfig::default()
        };
        let build = |cells: &[Option<String>]| {
            let mut p = CategoricalProfile::with_config(config.clone()).unwrap();
            p.extend_nullable(cells.iter().map(Option::as_deref));
            p
        };
        let whole = build(&cells);
        let profiles: Vec<CategoricalProfile> = parts(&cells, &fractions)
            .into_iter()
            .map(|range| build(&cells[range]))
            .collect();
        let empty = CategoricalProfile::with_config(config.clone()).unwrap();
        let (left, right) = merge_both_ways(&profiles, empty, |a, b| a.merge(b).unwrap());
        check_categorical(&left, &whole, &cells);
        check_categorical(&right, &whole, &cells);
    }

    #[test]
    fn json_round_trip_reproduces_the_profile(
        cells in prop::collection::vec(numeric_cell(), 0..1500),
        strings in prop::collection::vec(category_cell(), 0..1500),
        exact_limit in prop_oneof![Just(0usize), Just(100_000)],
    ) {
        let numeric = NumericProfile::from_values_with(
            NumericConfig { exact_limit, kll_k: 16, edges: Some(EDGES.to_vec()), ..NumericConfig::default() },
            &cells.iter().map(|c| c.unwrap_or(f64::NAN)).collect::<Vec<_>>(),
        ).unwrap();
        let categorical = {
            let mut p = CategoricalProfile::with_config(CategoricalConfig {
                exact_limit: exact_limit.min(100),
                frequent_capacity: 8,
                ..CategoricalConfig::default()
            }).unwrap();
            p.extend_nullable(strings.iter().map(Option::as_deref));
            p
        };
        let mut dataset = DatasetProfile::new()
            .with_rows(cells.len() as u64)
            .with_window(TimeWindow::new(1_700_000_000_000_000, 1_700_000_360_000_000).unwrap());
        dataset.insert_column("x", numeric);
        dataset.insert_column("s", categorical);
        let json = serde_json::to_string(&dataset).unwrap();
        let back: DatasetProfile = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &dataset);
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}

#[test]
fn empty_and_all_null_profiles_answer_without_panicking() {
    let empty = NumericProfile::new();
    let mut nulls = NumericProfile::new();
    nulls.extend(&[f64::NAN, f64::NAN]);
    nulls.update_null();
    nulls.extend_nullable([None, Some(f64::NAN)]);
    for p in [&empty, &nulls] {
        assert_eq!(p.finite_count(), 0);
        assert_eq!(
            (p.min(), p.max(), p.mean(), p.variance()),
            (None, None, None, None)
        );
        assert_eq!(p.population_variance(), None);
        assert_eq!(p.sum(), 0.0);
        assert_eq!(p.quantile(0.5).unwrap(), None);
        assert_eq!(p.quantiles(&[0.0, 1.0]).unwrap(), None);
        assert_eq!(p.rank(1.0).unwrap(), None);
        assert_eq!(p.distinct_count(), 0.0);
    }
    assert_eq!(nulls.null_count(), 5);
    assert_eq!(nulls.count(), 5);
    // Merges of empty profiles, both ways.
    let mut a = NumericProfile::new();
    a.merge(&empty).unwrap();
    assert_eq!(a, empty);
    a.merge(&nulls).unwrap();
    assert_eq!(a, nulls);
    let mut b = NumericProfile::from_values(&[1.0, 2.0]);
    b.merge(&empty).unwrap();
    assert_eq!(b, NumericProfile::from_values(&[1.0, 2.0]));
    let mut c = CategoricalProfile::new();
    c.merge(&CategoricalProfile::new()).unwrap();
    assert_eq!(c, CategoricalProfile::new());
    assert!(c.frequent_items().is_empty());
    assert_eq!(c.distinct_count(), 0.0);
}

#[test]
fn missing_infinite_and_signed_zero() {
    let p = NumericProfile::from_values(&[
        1.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        3.0,
    ]);
    assert_eq!(p.count(), 7);
    assert_eq!(p.null_count(), 1);
    assert_eq!(p.infinite_count(), 2);
    assert_eq!(p.finite_count(), 4);
    assert_eq!(p.min().map(f64::to_bits), Some(0.0f64.to_bits()));
    assert_eq!(p.max(), Some(3.0));
    assert_eq!(p.sum(), 4.0);
    assert_eq!(p.mean(), Some(1.0));
    // Sample variance of [0, 0, 1, 3]: mean 1, squares 1+1+0+4 = 6, / 3.
    assert_eq!(p.variance(), Some(2.0));
    assert_eq!(p.distinct_count(), 3.0);
    assert_eq!(p.exact_values().as_deref(), Some(&[0.0, 0.0, 1.0, 3.0][..]));
    assert_eq!(p.quantile(0.5).unwrap(), Some(0.0));
    assert_eq!(p.quantile(0.51).unwrap(), Some(1.0));
    assert_eq!(p.rank(0.0).unwrap(), Some(0.5));
    assert_eq!(p.rank(f64::NEG_INFINITY).unwrap(), Some(0.0));
    assert!(p.quantile(1.5).is_err());
    assert!(p.quantile(f64::NAN).is_err());
    assert!(p.rank(f64::NAN).is_err());
}

#[test]
fn overflowing_moments_survive_json() {
    let p = NumericProfile::from_values(&[f64::MAX, -f64::MAX, f64::MAX]);
    assert_eq!(p.variance(), Some(f64::INFINITY));
    assert!(p.mean().is_some_and(f64::is_finite));
    assert_eq!(p.sum(), f64::MAX);
    let json = serde_json::to_string(&p).unwrap();
    let back: NumericProfile = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
    let mut streamed = NumericProfile::new();
    for x in [f64::MAX, -f64::MAX, f64::MAX] {
        streamed.update(x);
    }
    assert_eq!(streamed.variance(), Some(f64::INFINITY));
    assert_eq!(streamed.sum(), f64::MAX);
}

#[test]
fn exact_mode_ends_past_the_limit_but_keeps_the_sketches() {
    let config = NumericConfig {
        exact_limit: 10,
        ..NumericConfig::default()
    };
    let values: Vec<f64> = (0..10).map(f64::from).collect();
    let mut a = NumericProfile::from_values_with(config.clone(), &values).unwrap();
    assert!(a.is_exact());
    assert_eq!(a.rank_error_bound(), 0.0);
    // NaN and infinities do not count towards the limit.
    a.extend(&[f64::NAN, f64::INFINITY]);
    assert!(a.is_exact());
    let b = NumericProfile::from_values_with(config.clone(), &[10.0]).unwrap();
    let mut merged = a.clone();
    merged.merge(&b).unwrap();
    assert!(!merged.is_exact());
    assert_eq!(merged.exact_values(), None);
    assert!(merged.rank_error_bound() > 0.0);
    assert_eq!(merged.finite_count(), 11);
    // Small data: the sketch is still exact in content.
    assert_eq!(merged.quantile(0.5).unwrap(), Some(5.0));
    assert_eq!(merged.distinct_count().round(), 11.0);
    a.update(10.0);
    assert!(!a.is_exact());
    assert_eq!(a.finite_count(), 11);
    // Merging keeps the smaller limit.
    let mut big = NumericProfile::from_values(&[1.0; 20]);
    assert!(big.is_exact());
    big.merge(&NumericProfile::from_values_with(config, &[2.0]).unwrap())
        .unwrap();
    assert_eq!(big.exact_limit(), 10);
    assert!(!big.is_exact());
}

#[test]
fn histogram_bins_and_edge_errors() {
    let mut p = NumericProfile::with_edges(vec![0.0, 1.0, 2.0]).unwrap();
    p.extend(&[-1.0, 0.0, 0.5, 1.0, 2.0, 2.5, f64::INFINITY, f64::NAN]);
    let h = p.histogram().unwrap();
    assert_eq!(h.edges(), &[0.0, 1.0, 2.0]);
    assert_eq!(h.counts(), &[2, 2]);
    assert_eq!((h.below(), h.above()), (1, 1));

    for bad in [
        vec![],
        vec![1.0],
        vec![0.0, 0.0],
        vec![0.0, f64::NAN],
        vec![2.0, 1.0],
    ] {
        assert!(matches!(
            NumericProfile::with_edges(bad),
            Err(ProfileError::InvalidEdges { .. })
        ));
    }
    let other = NumericProfile::with_edges(vec![0.0, 1.0, 3.0]).unwrap();
    let before = p.clone();
    let err = p.merge(&other).unwrap_err();
    assert!(matches!(err, ProfileError::EdgesMismatch { .. }), "{err}");
    assert_eq!(p, before, "a failed merge changes nothing");
    assert!(p.merge(&NumericProfile::new()).is_err());
    let k = NumericProfile::with_config(NumericConfig {
        kll_k: 100,
        edges: Some(vec![0.0, 1.0, 2.0]),
        ..NumericConfig::default()
    })
    .unwrap();
    assert!(matches!(
        p.merge(&k),
        Err(ProfileError::ParameterMismatch {
            parameter: "kll_k",
            ..
        })
    ));
}

#[test]
fn configuration_problems_are_reported_together() {
    let err = NumericProfile::with_config(NumericConfig {
        kll_k: 2,
        hll_precision: 30,
        edges: Some(vec![1.0]),
        ..NumericConfig::default()
    })
    .unwrap_err();
    let ProfileError::Invalid { problems } = &err else {
        panic!("expected all problems, got {err}");
    };
    assert_eq!(problems.len(), 3);
    let message = err.to_string();
    assert!(
        message.contains("kll_k = 2") && message.contains("hll_precision = 30"),
        "{message}"
    );
    assert!(
        CategoricalProfile::with_config(CategoricalConfig {
            frequent_capacity: 0,
            ..CategoricalConfig::default()
        })
        .is_err()
    );
}

#[test]
fn categorical_counts_switch_to_frequent_items() {
    let mut p = CategoricalProfile::with_config(CategoricalConfig {
        exact_limit: 3,
        frequent_capacity: 2,
        ..CategoricalConfig::default()
    })
    .unwrap();
    p.extend(["a", "b", "a", "c", "a"]);
    p.update_null();
    assert!(p.is_exact());
    assert_eq!(p.count_bounds("a"), (3, 3));
    assert_eq!(p.frequent_items()[0].value, "a");
    p.extend(["d", "a"]);
    assert!(!p.is_exact());
    assert_eq!(p.count(), 8);
    assert_eq!(p.non_null_count(), 7);
    let (lower, upper) = p.count_bounds("a");
    assert!(lower <= 4 && 4 <= upper);
    assert!(p.max_count_error() <= 7 / 3);
    assert_eq!(p.distinct_count().round(), 4.0);
    let from = CategoricalProfile::from_nullable([Some("x"), None, Some("x")]);
    assert_eq!(from.exact_counts().map(|c| c["x"]), Some(2));
    assert_eq!(from.null_count(), 1);
}

#[test]
fn dataset_merge_checks_every_column_first() {
    let window = |s, e| TimeWindow::new(s, e).unwrap();
    let mut a = DatasetProfile::new()
        .with_rows(3)
        .with_window(window(0, 10));
    a.insert_column("age", NumericProfile::from_values(&[1.0, 2.0, 3.0]));
    a.insert_column("city", CategoricalProfile::from_values(["x", "y", "x"]));
    a.insert_column("score", NumericProfile::from_values(&[0.5; 3]));
    let mut b = DatasetProfile::new()
        .with_rows(2)
        .with_window(window(5, 20));
    b.insert_column("age", NumericProfile::from_values(&[4.0, f64::NAN]));
    b.insert_column("zip", CategoricalProfile::from_values(["1", "2"]));
    let mut merged = a.clone();
    merged.merge(&b).unwrap();
    assert_eq!(merged.rows(), 5);
    assert_eq!(merged.window(), Some(window(0, 20)));
    assert_eq!(merged.columns().len(), 4);
    let age = merged
        .column("age")
        .and_then(ColumnProfile::as_numeric)
        .unwrap();
    assert_eq!(
        (age.count(), age.null_count(), age.max()),
        (5, 1, Some(4.0))
    );
    assert_eq!(merged.column("zip").map(ColumnProfile::count), Some(2));

    // Two bad columns: both named, nothing changed.
    let mut bad = DatasetProfile::new();
    bad.insert_column("city", NumericProfile::from_values(&[1.0]));
    bad.insert_column("score", NumericProfile::with_edges(vec![0.0, 1.0]).unwrap());
    bad.insert_column("age", NumericProfile::from_values(&[9.0]));
    let before = a.clone();
    let err = a.merge(&bad).unwrap_err();
    assert_eq!(a, before);
    let ProfileError::Invalid { problems } = &err else {
        panic!("expected both columns, got {err}");
    };
    assert_eq!(problems.len(), 2);
    let message = err.to_string();
    assert!(
        message.contains("column `city`") && message.contains("column `score`"),
        "{message}"
    );
    assert!(
        message.contains("numeric profile into a categorical"),
        "{message}"
    );

    let mut one_bad = DatasetProfile::new();
    one_bad.insert_column("city", NumericProfile::new());
    assert!(matches!(
        a.merge(&one_bad),
        Err(ProfileError::Column { ref column, .. }) if column == "city"
    ));
    // A window on one side only is kept.
    let mut no_window = DatasetProfile::new();
    no_window.merge(&b).unwrap();
    assert_eq!(no_window.window(), Some(window(5, 20)));
    assert!(TimeWindow::new(2, 1).is_err());
}

/// HyperLogLog on profiles: within three standard errors at 10⁵ and 10⁶
/// distinct values, through the batch path.
#[test]
fn numeric_distinct_counts_on_large_data() {
    for n in [100_000u32, 1_000_000] {
        let values: Vec<f64> = (0..n).map(|i| f64::from(i) * 0.37).collect();
        let p = NumericProfile::from_values(&values);
        let estimate = p.hll().estimate();
        let error = (estimate - f64::from(n)).abs() / f64::from(n);
        assert!(
            error <= 3.0 * p.hll().relative_standard_error(),
            "n = {n}: {error}"
        );
        println!("HLL n = {n}: estimate {estimate:.0}, relative error {error:.5}");
    }
}

/// Profiles read from JSON are validated where a bad value could break an
/// invariant the code relies on, and are otherwise answered without
/// panicking, however inconsistent.
#[test]
fn inconsistent_json_is_rejected_or_answered_without_panicking() {
    let mut profile = NumericProfile::from_values_with(
        NumericConfig {
            exact_limit: 0,
            kll_k: 8,
            edges: Some(vec![0.0, 1.0]),
            ..NumericConfig::default()
        },
        &(0..100).map(f64::from).collect::<Vec<_>>(),
    )
    .unwrap();
    profile.update_null();
    let mut json: serde_json::Value = serde_json::to_value(&profile).unwrap();
    // Min above max, a count at the top of u64, moments disagreeing with
    // the sketch.
    json["moments"]["min"] = 5.0.into();
    json["moments"]["max"] = (-5.0).into();
    json["moments"]["n"] = u64::MAX.into();
    json["null"] = u64::MAX.into();
    json["infinite"] = u64::MAX.into();
    let hostile: NumericProfile = serde_json::from_value(json.clone()).unwrap();
    let _ = (hostile.count(), hostile.variance(), hostile.sum());
    let _ = hostile.quantiles(&[0.0, 0.3, 1.0]).unwrap();
    let _ = hostile.ranks(&[-1.0, 50.0]).unwrap();
    let _ = approx_wasserstein(&hostile, &profile).unwrap();
    let _ = approx_ks_statistic(&profile, &hostile).unwrap();
    let mut merged = hostile.clone();
    merged.merge(&profile).unwrap();
    merged.update(1.0);
    merged.extend(&[1.0, f64::NAN, f64::INFINITY]);
    merged.update_null();
    let _ = merged.distinct_count();

    // Values that would break invariants are refused.
    for (path, value) in [
        (&["kll", "k"][..], serde_json::json!(3)),
        (&["kll", "n"][..], serde_json::json!(7)),
        (&["hll", "registers"][..], serde_json::json!("zz")),
        (&["histogram", "counts"][..], serde_json::json!([1, 2, 3])),
        (&["histogram", "edges"][..], serde_json::json!([1.0, 0.0])),
        (&["exact"][..], serde_json::json!(["NaN"])),
    ] {
        let mut bad = json.clone();
        let mut slot = &mut bad;
        for key in path {
            slot = &mut slot[*key];
        }
        *slot = value;
        assert!(
            serde_json::from_value::<NumericProfile>(bad).is_err(),
            "{path:?} accepted"
        );
    }
}
