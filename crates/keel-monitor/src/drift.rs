//! Data drift: per column, a statistical method compares the current data
//! with the reference, and the dataset drifts when the share of drifted
//! columns reaches a threshold.
//!
//! The default method per column is Evidently's (`DataDriftPreset`):
//!
//! | reference rows | column | distinct values (both samples) | method |
//! |---|---|---|---|
//! | ≤ 1,000 | numerical | > 5 | `ks` (p-value ≤ 0.05) |
//! | ≤ 1,000 | numerical ≤ 5, or categorical | > 2 | chi-square (p < 0.05) |
//! | ≤ 1,000 | numerical or categorical | ≤ 2 | `z` (p < 0.05) |
//! | > 1,000 | numerical | > 5 | `wasserstein` normed by the reference's std (≥ 0.1) |
//! | > 1,000 | numerical ≤ 5, or categorical | any | `jensenshannon` (≥ 0.1) |
//!
//! with one deliberate difference: where Evidently runs its `chisquare`
//! (a goodness-of-fit test that takes the reference proportions as exact,
//! so a small reference sample makes stable columns look drifted), Keel
//! runs `chi2_contingency`, the two-sample homogeneity test on the 2×k
//! table of counts. `evidently_chisquare` in the [`DriftSpec`] restores
//! Evidently's choice. Every result records its method, threshold and
//! comparator, so a verdict can be re-derived from the JSON alone.
//!
//! Nulls, NaN and ±inf are dropped per column before the statistics, as
//! Evidently drops them; the counts are reported.

use std::collections::BTreeMap;

use keel_stats::twosample;
use serde::{Deserialize, Serialize};

use crate::MonitorError;
use crate::sort::{distinct_sorted, distinct_union_sorted, sort_floats};
use crate::table::{ColumnValues, Dictionary, Missing, ParquetTable, Storage};

/// How a column is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Numerical,
    Categorical,
}

/// A drift method, named as Evidently names its stattests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// Two-sample Kolmogorov–Smirnov p-value (scipy's `ks_2samp`).
    Ks,
    /// Evidently's chi-square: goodness of fit of the current counts to the
    /// reference proportions taken as exact.
    ChiSquare,
    /// Chi-square test of homogeneity on the 2×k contingency table
    /// (scipy's `chi2_contingency`).
    Chi2Contingency,
    /// Two-proportion z-test p-value.
    Z,
    /// First Wasserstein distance divided by the reference's standard
    /// deviation (at least 0.001).
    Wasserstein,
    /// Jensen–Shannon distance between binned shares.
    JensenShannon,
    /// Population stability index on binned shares.
    Psi,
    /// Kullback–Leibler divergence of reference from current shares.
    KlDiv,
    /// Hellinger distance.
    Hellinger,
    /// k-sample Anderson–Darling p-value (scipy's `anderson_ksamp`).
    Anderson,
    /// Two-sample Cramér–von Mises p-value.
    CramerVonMises,
    /// Energy distance (scipy's `energy_distance`).
    Energy,
}

/// How a score is compared with its threshold to call drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparator {
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
}

impl Comparator {
    pub fn holds(self, score: f64, threshold: f64) -> bool {
        match self {
            Comparator::Le => score <= threshold,
            Comparator::Lt => score < threshold,
            Comparator::Ge => score >= threshold,
            Comparator::Gt => score > threshold,
        }
    }
}

pub const METHODS: [Method; 12] = [
    Method::Ks,
    Method::ChiSquare,
    Method::Chi2Contingency,
    Method::Z,
    Method::Wasserstein,
    Method::JensenShannon,
    Method::Psi,
    Method::KlDiv,
    Method::Hellinger,
    Method::Anderson,
    Method::CramerVonMises,
    Method::Energy,
];

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Ks => "ks",
            Method::ChiSquare => "chisquare",
            Method::Chi2Contingency => "chi2_contingency",
            Method::Z => "z",
            Method::Wasserstein => "wasserstein",
            Method::JensenShannon => "jensenshannon",
            Method::Psi => "psi",
            Method::KlDiv => "kl_div",
            Method::Hellinger => "hellinger",
            Method::Anderson => "anderson",
            Method::CramerVonMises => "cramer_von_mises",
            Method::Energy => "ed",
        }
    }

    pub fn parse(name: &str) -> Option<Method> {
        METHODS.into_iter().find(|m| m.name() == name)
    }

    /// Evidently's default threshold for the method.
    pub fn default_threshold(self) -> f64 {
        match self {
            Method::Ks | Method::ChiSquare | Method::Chi2Contingency | Method::Z => 0.05,
            Method::Anderson | Method::CramerVonMises => 0.1,
            Method::Wasserstein
            | Method::JensenShannon
            | Method::Psi
            | Method::KlDiv
            | Method::Hellinger
            | Method::Energy => 0.1,
        }
    }

    /// Evidently's comparison of score and threshold for the method.
    pub fn comparator(self) -> Comparator {
        match self {
            Method::Ks | Method::CramerVonMises => Comparator::Le,
            Method::ChiSquare | Method::Chi2Contingency | Method::Z | Method::Anderson => {
                Comparator::Lt
            }
            Method::Energy => Comparator::Gt,
            Method::Wasserstein
            | Method::JensenShannon
            | Method::Psi
            | Method::KlDiv
            | Method::Hellinger => Comparator::Ge,
        }
    }

    /// Whether the score is a p-value (drift when small) or a distance.
    pub fn is_p_value(self) -> bool {
        matches!(self.comparator(), Comparator::Le | Comparator::Lt)
    }

    /// Methods that need an ordered (numerical) column.
    pub fn numerical_only(self) -> bool {
        matches!(
            self,
            Method::Ks
                | Method::Wasserstein
                | Method::Anderson
                | Method::CramerVonMises
                | Method::Energy
        )
    }
}

impl Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Method::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown drift method {name:?}; one of {}",
                method_names()
            ))
        })
    }
}

pub fn method_names() -> String {
    METHODS.map(|m| m.name()).join(", ")
}

/// What to compare and how: every choice explicit, every default
/// Evidently's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftSpec {
    /// The dataset drifts when the share of drifted columns is at least this.
    pub drift_share: f64,
    /// A method for every numerical column, instead of the default rule.
    pub numerical_method: Option<Method>,
    /// A method for every categorical column, instead of the default rule.
    pub categorical_method: Option<Method>,
    /// A method per column (wins over the above).
    pub methods: BTreeMap<String, Method>,
    /// A threshold for every column, instead of the method's default.
    pub threshold: Option<f64>,
    /// A threshold per column (wins over the above).
    pub thresholds: BTreeMap<String, f64>,
    /// Only these columns (all readable columns when empty).
    pub columns: Vec<String>,
    /// Columns left out.
    pub exclude: Vec<String>,
    /// Columns compared as categories whatever their storage.
    pub categorical: Vec<String>,
    /// The model's prediction column: reported as prediction drift, apart
    /// from the feature columns' share.
    pub prediction: Option<String>,
    /// Use Evidently's goodness-of-fit `chisquare` where the default rule
    /// calls for a chi-square test, instead of `chi2_contingency`.
    pub evidently_chisquare: bool,
}

impl Default for DriftSpec {
    fn default() -> Self {
        Self {
            drift_share: 0.5,
            numerical_method: None,
            categorical_method: None,
            methods: BTreeMap::new(),
            threshold: None,
            thresholds: BTreeMap::new(),
            columns: Vec::new(),
            exclude: Vec::new(),
            categorical: Vec::new(),
            prediction: None,
            evidently_chisquare: false,
        }
    }
}

impl DriftSpec {
    /// Whether the column is compared: listed in `columns` (or no list),
    /// or the prediction, and not excluded.
    pub fn compares(&self, column: &str) -> bool {
        (self.columns.is_empty()
            || self.columns.iter().any(|c| c == column)
            || self.prediction.as_deref() == Some(column))
            && !self.exclude.iter().any(|c| c == column)
    }

    /// Checks the spec's own values, naming the field at fault.
    pub fn validate(&self) -> Result<(), MonitorError> {
        if !(self.drift_share > 0.0 && self.drift_share <= 1.0) {
            return Err(MonitorError::invalid(
                "drift_share",
                format!("must be in (0, 1], got {}", self.drift_share),
            ));
        }
        for (field, t) in self
            .threshold
            .iter()
            .map(|t| ("threshold".to_string(), *t))
            .chain(
                self.thresholds
                    .iter()
                    .map(|(c, t)| (format!("thresholds.{c}"), *t)),
            )
        {
            if !t.is_finite() || t < 0.0 {
                return Err(MonitorError::invalid(
                    &field,
                    format!("must be a finite number ≥ 0, got {t}"),
                ));
            }
        }
        for (field, m) in [
            ("numerical_method", self.numerical_method),
            ("categorical_method", self.categorical_method),
        ] {
            if field == "categorical_method"
                && let Some(m) = m
                && m.numerical_only()
            {
                return Err(MonitorError::invalid(
                    field,
                    format!("{} compares ordered numbers, not categories", m.name()),
                ));
            }
        }
        Ok(())
    }
}

/// One column's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnDrift {
    pub column: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    pub method: Method,
    pub score: f64,
    pub threshold: f64,
    pub drifted: bool,
    /// `drifted` is `score COMPARATOR threshold`.
    pub comparator: Comparator,
    /// `p_value` or `distance`.
    pub score_kind: &'static str,
    /// Why this method (the default rule's branch, or the spec).
    pub reason: String,
    /// Values compared after dropping missing ones.
    pub reference_count: u64,
    pub current_count: u64,
    pub reference_missing: Missing,
    pub current_missing: Missing,
    /// Distinct values in both samples together, counted up to the rule's
    /// cut-off (6 for numbers), exactly for categories.
    pub distinct: u64,
    /// How far a score from sketches may be from the exact one (absent
    /// for exact scores).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_error_bound: Option<f64>,
    /// The distributions, for plots.
    #[serde(skip)]
    pub plot: Option<Plot>,
}

/// Reference and current distributions of a column, for the HTML report.
#[derive(Debug, Clone)]
pub enum Plot {
    Histogram {
        edges: Vec<f64>,
        reference: Vec<f64>,
        current: Vec<f64>,
    },
    Bars {
        labels: Vec<String>,
        reference: Vec<f64>,
        current: Vec<f64>,
    },
}

/// A column that could not be compared.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub column: String,
    pub reason: String,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub dataset_drift: bool,
    /// Share of compared columns that drifted.
    pub drift_share: f64,
    /// The share at which the dataset drifts.
    pub drift_share_threshold: f64,
    pub drifted_columns: usize,
    pub number_of_columns: usize,
    pub reference_rows: u64,
    pub current_rows: u64,
    pub columns: Vec<ColumnDrift>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction: Option<ColumnDrift>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

/// Compares two Parquet files column by column, on up to `threads`
/// threads, reading one column of each file at a time.
pub fn drift_parquet(
    reference: &std::path::Path,
    current: &std::path::Path,
    spec: &DriftSpec,
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<DriftReport, MonitorError> {
    spec.validate()?;
    let reference = ParquetTable::open(reference)?;
    let current = ParquetTable::open(current)?;
    drift_tables(&reference, &current, spec, threads, progress)
}

/// [`drift_parquet`] on opened tables (files or bytes in memory).
pub fn drift_tables(
    reference: &ParquetTable,
    current: &ParquetTable,
    spec: &DriftSpec,
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<DriftReport, MonitorError> {
    spec.validate()?;
    let (ref_columns, ref_other) = reference.columns();
    let (cur_columns, _) = current.columns();
    let mut skipped: Vec<Skipped> = ref_other
        .into_iter()
        .map(|column| Skipped {
            column,
            reason: "its type is neither numbers nor text".into(),
        })
        .collect();
    for c in spec
        .columns
        .iter()
        .chain(spec.methods.keys())
        .chain(spec.thresholds.keys())
    {
        if !ref_columns.iter().any(|(n, _)| n == c) {
            return Err(MonitorError::invalid(
                "columns",
                format!("{c} is not a numeric or text column of the reference data"),
            ));
        }
    }
    let mut jobs = Vec::new();
    for (name, storage) in ref_columns {
        if !spec.compares(&name) {
            continue;
        }
        match cur_columns.iter().find(|(n, _)| *n == name) {
            None => skipped.push(Skipped {
                column: name,
                reason: "the current data has no such column".into(),
            }),
            Some((_, cur_storage))
                if (*cur_storage == Storage::Text) != (storage == Storage::Text) =>
            {
                skipped.push(Skipped {
                    column: name,
                    reason: "reference and current data store it as different types".into(),
                })
            }
            Some(_) => jobs.push((name, storage)),
        }
    }
    let total = jobs.len();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<(usize, ColumnResult)>> = Default::default();
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, total.max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((name, storage)) = jobs.get(i) else {
                        break;
                    };
                    let r = column_drift(reference, current, name, *storage, spec);
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    progress(n, total);
                    if let Ok(mut v) = results.lock() {
                        v.push((i, r));
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let mut columns = Vec::new();
    let mut prediction = None;
    for (i, r) in results {
        let name = &jobs[i].0;
        match r? {
            None => skipped.push(Skipped {
                column: name.clone(),
                reason: "no values left after dropping nulls, NaN and infinities".into(),
            }),
            Some(d) if spec.prediction.as_ref() == Some(name) => prediction = Some(d),
            Some(d) => columns.push(d),
        }
    }
    Ok(summarize(
        columns,
        prediction,
        skipped,
        spec.drift_share,
        reference.rows(),
        current.rows(),
    ))
}

/// A column's verdict, `None` when nothing was left to compare.
type ColumnResult = Result<Option<ColumnDrift>, MonitorError>;

/// The dataset verdict over column verdicts.
pub fn summarize(
    columns: Vec<ColumnDrift>,
    prediction: Option<ColumnDrift>,
    skipped: Vec<Skipped>,
    drift_share_threshold: f64,
    reference_rows: u64,
    current_rows: u64,
) -> DriftReport {
    let drifted = columns.iter().filter(|c| c.drifted).count();
    let share = if columns.is_empty() {
        0.0
    } else {
        drifted as f64 / columns.len() as f64
    };
    DriftReport {
        dataset_drift: !columns.is_empty() && share >= drift_share_threshold,
        drift_share: share,
        drift_share_threshold,
        drifted_columns: drifted,
        number_of_columns: columns.len(),
        reference_rows,
        current_rows,
        columns,
        prediction,
        skipped,
    }
}

fn column_drift(
    reference: &ParquetTable,
    current: &ParquetTable,
    name: &str,
    storage: Storage,
    spec: &DriftSpec,
) -> Result<Option<ColumnDrift>, MonitorError> {
    let forced_categorical = spec.categorical.iter().any(|c| c == name);
    let mut dictionary = Dictionary::default();
    if storage == Storage::Text || forced_categorical {
        let (r, rm) = reference.read(name, true, &mut dictionary)?;
        let (c, cm) = current.read(name, true, &mut dictionary)?;
        let (ColumnValues::Codes(r), ColumnValues::Codes(c)) = (r, c) else {
            return Ok(None);
        };
        let sample = Sample {
            name,
            missing: (rm, cm),
        };
        return categorical(&sample, &r, &c, &dictionary, spec);
    }
    let (r, rm) = reference.read(name, false, &mut dictionary)?;
    let (c, cm) = current.read(name, false, &mut dictionary)?;
    let (ColumnValues::Numbers(mut r), ColumnValues::Numbers(mut c)) = (r, c) else {
        return Ok(None);
    };
    sort_floats(&mut r);
    sort_floats(&mut c);
    let sample = Sample {
        name,
        missing: (rm, cm),
    };
    // Evidently types an integer column with at most 10 distinct values
    // (in the current data) as categorical.
    if storage == Storage::Integer && distinct_sorted(&c) <= INTEGER_CARDINALITY_LIMIT {
        let (r, c, dictionary) = numbers_as_codes(&r, &c);
        return categorical(&sample, &r, &c, &dictionary, spec);
    }
    numerical(&sample, &r, &c, storage == Storage::Integer, spec)
}

/// Evidently's `INTEGER_CARDINALITY_LIMIT`.
pub const INTEGER_CARDINALITY_LIMIT: usize = 10;

struct Sample<'a> {
    name: &'a str,
    missing: (Missing, Missing),
}

impl Sample<'_> {
    /// The column's verdict: the score against the spec's threshold with
    /// the method's comparator. `counts` are the reference and current
    /// values compared and the distinct values seen.
    fn verdict(
        &self,
        column_type: ColumnType,
        (method, reason): (Method, String),
        score: f64,
        spec: &DriftSpec,
        counts: (usize, usize, usize),
        plot: Plot,
    ) -> ColumnDrift {
        let threshold = threshold_for(spec, self.name, method);
        ColumnDrift {
            column: self.name.to_string(),
            column_type,
            method,
            score,
            threshold,
            drifted: method.comparator().holds(score, threshold),
            comparator: method.comparator(),
            score_kind: if method.is_p_value() {
                "p_value"
            } else {
                "distance"
            },
            reason,
            reference_count: counts.0 as u64,
            current_count: counts.1 as u64,
            reference_missing: self.missing.0,
            current_missing: self.missing.1,
            distinct: counts.2 as u64,
            score_error_bound: None,
            plot: Some(plot),
        }
    }
}

fn threshold_for(spec: &DriftSpec, column: &str, method: Method) -> f64 {
    spec.thresholds
        .get(column)
        .copied()
        .or(spec.threshold)
        .unwrap_or_else(|| method.default_threshold())
}

fn chi_square(spec: &DriftSpec) -> Method {
    if spec.evidently_chisquare {
        Method::ChiSquare
    } else {
        Method::Chi2Contingency
    }
}

/// Drift of a numerical column from its sorted finite values.
fn numerical(
    sample: &Sample,
    reference: &[f64],
    current: &[f64],
    integer: bool,
    spec: &DriftSpec,
) -> Result<Option<ColumnDrift>, MonitorError> {
    if reference.is_empty() || current.is_empty() {
        return Ok(None);
    }
    let distinct = distinct_union_sorted(reference, current, 5);
    let (method, reason) = match spec
        .methods
        .get(sample.name)
        .or(spec.numerical_method.as_ref())
    {
        Some(m) => (*m, "chosen in the spec".to_string()),
        None => {
            let small = reference.len() <= 1000;
            let m = match (small, distinct > 5, distinct > 2) {
                (true, true, _) => Method::Ks,
                (true, false, true) => chi_square(spec),
                (true, false, false) => Method::Z,
                (false, true, _) => Method::Wasserstein,
                (false, false, _) => Method::JensenShannon,
            };
            let values = if distinct > 5 {
                "more than 5 distinct values".to_string()
            } else {
                format!("{distinct} distinct values")
            };
            (
                m,
                format!(
                    "{} reference values ({} 1000), {values}",
                    reference.len(),
                    if small { "≤" } else { ">" }
                ),
            )
        }
    };
    let score = match method {
        Method::Ks => {
            twosample::ks_2samp(reference, current)
                .map_err(stats_error(sample.name))?
                .p_value
        }
        Method::Wasserstein => {
            let d = twosample::wasserstein_distance(reference, current)
                .map_err(stats_error(sample.name))?;
            d / population_std(reference).max(0.001)
        }
        Method::Anderson => {
            twosample::anderson_ksamp(reference, current)
                .map_err(stats_error(sample.name))?
                .p_value
        }
        Method::CramerVonMises => {
            twosample::cramervonmises_2samp(reference, current)
                .map_err(stats_error(sample.name))?
                .p_value
        }
        Method::Energy => {
            twosample::energy_distance(reference, current).map_err(stats_error(sample.name))?
        }
        Method::Hellinger => hellinger_numerical(reference, current),
        Method::JensenShannon | Method::Psi | Method::KlDiv => {
            let feel_zeroes = method != Method::JensenShannon;
            let (r, c) = binned_numerical(sample.name, reference, current, integer, feel_zeroes)?;
            binned_score(sample.name, method, &r, &c)?
        }
        Method::ChiSquare | Method::Chi2Contingency | Method::Z => {
            let counts = value_counts_sorted(reference, current);
            counts_score(sample.name, method, &counts.1, &counts.2)?
        }
    };
    Ok(Some(sample.verdict(
        ColumnType::Numerical,
        (method, reason),
        score,
        spec,
        (reference.len(), current.len(), distinct),
        histogram_plot(reference, current),
    )))
}

/// Drift of a categorical column from its codes.
fn categorical(
    sample: &Sample,
    reference: &[u32],
    current: &[u32],
    dictionary: &Dictionary,
    spec: &DriftSpec,
) -> Result<Option<ColumnDrift>, MonitorError> {
    let k = dictionary.len();
    let mut rc = vec![0u64; k];
    let mut cc = vec![0u64; k];
    for c in reference {
        rc[*c as usize] += 1;
    }
    for c in current {
        cc[*c as usize] += 1;
    }
    // Keys present in either sample, in string order (the z-test's first
    // key is the smallest).
    let mut keys: Vec<u32> = (0..k as u32)
        .filter(|c| rc[*c as usize] + cc[*c as usize] > 0)
        .collect();
    keys.sort_by(|a, b| dictionary.value(*a).cmp(dictionary.value(*b)));
    let counts = CategoryCounts {
        labels: keys
            .iter()
            .map(|c| dictionary.value(*c).to_string())
            .collect(),
        reference: keys.iter().map(|c| rc[*c as usize]).collect(),
        current: keys.iter().map(|c| cc[*c as usize]).collect(),
    };
    categorical_counts(sample, &counts, spec)
}

/// Counts per category of both samples: every category present in one of
/// them, in string order.
struct CategoryCounts {
    labels: Vec<String>,
    reference: Vec<u64>,
    current: Vec<u64>,
}

/// Drift of a categorical column from its counts.
fn categorical_counts(
    sample: &Sample,
    counts: &CategoryCounts,
    spec: &DriftSpec,
) -> Result<Option<ColumnDrift>, MonitorError> {
    let (r, c) = (&counts.reference, &counts.current);
    let (rn, cn): (u64, u64) = (r.iter().sum(), c.iter().sum());
    if rn == 0 || cn == 0 {
        return Ok(None);
    }
    let distinct = counts.labels.len();
    let (method, reason) = match spec
        .methods
        .get(sample.name)
        .or(spec.categorical_method.as_ref())
    {
        Some(m) if m.numerical_only() => {
            return Err(MonitorError::invalid(
                &format!("methods.{}", sample.name),
                format!(
                    "{} compares ordered numbers; {} holds categories",
                    m.name(),
                    sample.name
                ),
            ));
        }
        Some(m) => (*m, "chosen in the spec".to_string()),
        None => {
            let small = rn <= 1000;
            let m = match (small, distinct > 2) {
                (true, true) => chi_square(spec),
                (true, false) => Method::Z,
                (false, _) => Method::JensenShannon,
            };
            (
                m,
                format!(
                    "{rn} reference values ({} 1000), categorical with {distinct} distinct values",
                    if small { "≤" } else { ">" }
                ),
            )
        }
    };
    let score = match method {
        Method::JensenShannon | Method::Psi | Method::KlDiv | Method::Hellinger => {
            let feel_zeroes = matches!(method, Method::Psi | Method::KlDiv);
            let (rp, cp) = shares(sample.name, r, c, feel_zeroes)?;
            binned_score(sample.name, method, &rp, &cp)?
        }
        _ => counts_score(sample.name, method, r, c)?,
    };
    let mut order: Vec<usize> = (0..distinct).collect();
    order.sort_by_key(|i| std::cmp::Reverse(r[*i] + c[*i]));
    order.truncate(20);
    Ok(Some(sample.verdict(
        ColumnType::Categorical,
        (method, reason),
        score,
        spec,
        (rn as usize, cn as usize, distinct),
        Plot::Bars {
            labels: order.iter().map(|i| counts.labels[*i].clone()).collect(),
            reference: order.iter().map(|i| r[*i] as f64 / rn as f64).collect(),
            current: order.iter().map(|i| c[*i] as f64 / cn as f64).collect(),
        },
    )))
}

/// Compares two saved profiles (`keel monitor profile`) instead of the
/// raw data. A column whose profiles both hold their values (exact mode:
/// up to 100,000 numbers, up to 10,000 categories) gets exactly the verdict
/// the files would give. A numeric column past exact mode is compared by
/// the normed Wasserstein distance between the two KLL sketches, with
/// `score_error_bound` the documented bound of the sketches' rank error
/// (normed the same way); a column whose default method needs values a
/// sketch cannot give is listed as skipped, saying why.
pub fn drift_profiles(
    reference: &crate::profile::DatasetProfile,
    current: &crate::profile::DatasetProfile,
    spec: &DriftSpec,
) -> Result<DriftReport, MonitorError> {
    use crate::profile::ColumnProfile;
    spec.validate()?;
    let mut columns = Vec::new();
    let mut prediction = None;
    let mut skipped = Vec::new();
    for (name, r) in reference.columns() {
        if !spec.compares(name) {
            continue;
        }
        let skip = |reason: &str| Skipped {
            column: name.clone(),
            reason: reason.to_string(),
        };
        let Some(c) = current.column(name) else {
            skipped.push(skip("the current profile has no such column"));
            continue;
        };
        let verdict = match (r, c) {
            (ColumnProfile::Numeric(rp), ColumnProfile::Numeric(cp)) => {
                let sample = Sample {
                    name,
                    missing: (
                        Missing {
                            nulls: rp.null_count(),
                            infinite: rp.infinite_count(),
                        },
                        Missing {
                            nulls: cp.null_count(),
                            infinite: cp.infinite_count(),
                        },
                    ),
                };
                match (rp.exact_values(), cp.exact_values()) {
                    (Some(rv), Some(cv)) => numerical(&sample, &rv, &cv, false, spec)?,
                    _ => match sketched_wasserstein(&sample, rp, cp, spec)? {
                        Ok(d) => Some(d),
                        Err(reason) => {
                            skipped.push(skip(&reason));
                            continue;
                        }
                    },
                }
            }
            (ColumnProfile::Categorical(rp), ColumnProfile::Categorical(cp)) => {
                let sample = Sample {
                    name,
                    missing: (
                        Missing {
                            nulls: rp.null_count(),
                            infinite: 0,
                        },
                        Missing {
                            nulls: cp.null_count(),
                            infinite: 0,
                        },
                    ),
                };
                match (rp.exact_counts(), cp.exact_counts()) {
                    (Some(rc), Some(cc)) => {
                        let mut labels: Vec<&String> = rc.keys().chain(cc.keys()).collect();
                        labels.sort();
                        labels.dedup();
                        let counts = CategoryCounts {
                            reference: labels
                                .iter()
                                .map(|l| rc.get(*l).copied().unwrap_or(0))
                                .collect(),
                            current: labels
                                .iter()
                                .map(|l| cc.get(*l).copied().unwrap_or(0))
                                .collect(),
                            labels: labels.into_iter().cloned().collect(),
                        };
                        categorical_counts(&sample, &counts, spec)?
                    }
                    _ => {
                        skipped.push(skip(
                            "more categories than the profile counts exactly: compare the files",
                        ));
                        continue;
                    }
                }
            }
            _ => {
                skipped.push(skip("numbers in one profile, categories in the other"));
                continue;
            }
        };
        match verdict {
            None => skipped.push(skip(
                "no values left after dropping nulls, NaN and infinities",
            )),
            Some(d) if spec.prediction.as_ref() == Some(name) => prediction = Some(d),
            Some(d) => columns.push(d),
        }
    }
    Ok(summarize(
        columns,
        prediction,
        skipped,
        spec.drift_share,
        reference.rows(),
        current.rows(),
    ))
}

/// The normed Wasserstein distance of two sketched numeric profiles, or
/// why it cannot stand in for the column's method.
fn sketched_wasserstein(
    sample: &Sample,
    r: &crate::profile::NumericProfile,
    c: &crate::profile::NumericProfile,
    spec: &DriftSpec,
) -> Result<Result<ColumnDrift, String>, MonitorError> {
    let chosen = spec
        .methods
        .get(sample.name)
        .or(spec.numerical_method.as_ref())
        .copied();
    if chosen.is_some_and(|m| m != Method::Wasserstein) {
        return Ok(Err(format!(
            "{} needs the values, which a sketched profile no longer holds: compare the files",
            chosen.map(|m| m.name()).unwrap_or_default()
        )));
    }
    let distinct = r.distinct_count() + c.distinct_count();
    if chosen.is_none() && (r.finite_count() <= 1000 || distinct <= 5.0) {
        return Ok(Err(
            "Evidently's rule asks for a test on the values here, which a sketched profile no longer holds"
                .into(),
        ));
    }
    let estimate =
        crate::profile::approx_wasserstein(r, c).map_err(|e| MonitorError::Statistics {
            column: sample.name.to_string(),
            message: e.to_string(),
        })?;
    let norm = r.population_variance().unwrap_or(0.0).sqrt().max(0.001);
    let mut d = sample.verdict(
        ColumnType::Numerical,
        (
            Method::Wasserstein,
            format!(
                "{} reference values (> 1000) in a sketched profile: Wasserstein between the KLL sketches",
                r.finite_count()
            ),
        ),
        estimate.value / norm,
        spec,
        (r.finite_count() as usize, c.finite_count() as usize, 6),
        Plot::Bars {
            labels: Vec::new(),
            reference: Vec::new(),
            current: Vec::new(),
        },
    );
    d.score_error_bound = Some(estimate.error_bound / norm);
    d.plot = None;
    Ok(Ok(d))
}

fn stats_error(column: &str) -> impl Fn(keel_stats::StatsError) -> MonitorError + '_ {
    move |e| MonitorError::Statistics {
        column: column.to_string(),
        message: e.to_string(),
    }
}

/// `np.std` (population, two passes).
pub fn population_std(x: &[f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    (x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
}

/// The distinct values of two sorted samples with their counts in each.
fn value_counts_sorted(a: &[f64], b: &[f64]) -> (Vec<f64>, Vec<u64>, Vec<u64>) {
    let (mut keys, mut ca, mut cb) = (Vec::new(), Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let x = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.min(*y),
            (Some(x), None) => *x,
            (None, Some(y)) => *y,
            (None, None) => break,
        };
        let si = i;
        while i < a.len() && a[i] == x {
            i += 1;
        }
        let sj = j;
        while j < b.len() && b[j] == x {
            j += 1;
        }
        keys.push(x);
        ca.push((i - si) as u64);
        cb.push((j - sj) as u64);
    }
    (keys, ca, cb)
}

fn numbers_as_codes(a: &[f64], b: &[f64]) -> (Vec<u32>, Vec<u32>, Dictionary) {
    let (keys, _, _) = value_counts_sorted(a, b);
    let mut dictionary = Dictionary::default();
    for k in &keys {
        dictionary.code(&format!("{}", *k as i128));
    }
    let code = |x: &f64| keys.partition_point(|k| k < x) as u32;
    (
        a.iter().map(code).collect(),
        b.iter().map(code).collect(),
        dictionary,
    )
}

/// Scores of the tests on counts per category (same key order in both).
fn counts_score(column: &str, method: Method, r: &[u64], c: &[u64]) -> Result<f64, MonitorError> {
    let rn: u64 = r.iter().sum();
    let cn: u64 = c.iter().sum();
    match method {
        Method::ChiSquare => {
            let k_norm = cn as f64 / rn as f64;
            let f_obs: Vec<f64> = c.iter().map(|x| *x as f64).collect();
            let f_exp: Vec<f64> = r.iter().map(|x| *x as f64 * k_norm).collect();
            // A category the reference never saw has expected count 0: the
            // statistic is infinite and scipy's p-value 0.
            if f_exp.contains(&0.0) {
                return Ok(0.0);
            }
            Ok(twosample::chisquare(&f_obs, &f_exp)
                .map_err(stats_error(column))?
                .p_value)
        }
        Method::Chi2Contingency => {
            let table: Vec<Vec<f64>> = vec![
                r.iter().map(|x| *x as f64).collect(),
                c.iter().map(|x| *x as f64).collect(),
            ];
            Ok(
                twosample::chi2_contingency(&table, twosample::Correction::Yates)
                    .map_err(stats_error(column))?
                    .p_value,
            )
        }
        Method::Z => {
            // Evidently: p = 1 when both samples hold one and the same value.
            let in_r = r.iter().filter(|x| **x > 0).count();
            let in_c = c.iter().filter(|x| **x > 0).count();
            if in_r == 1 && in_c == 1 && r.iter().zip(c).any(|(a, b)| *a > 0 && *b > 0) {
                return Ok(1.0);
            }
            // Ones are the values other than the smallest key.
            let ref_ones = rn - r.first().copied().unwrap_or(0);
            let cur_ones = cn - c.first().copied().unwrap_or(0);
            twosample::proportions_z_test(ref_ones, rn, cur_ones, cn)
                .map(|t| t.p_value)
                .map_err(stats_error(column))
        }
        _ => {
            let (rp, cp) = shares(column, r, c, matches!(method, Method::Psi | Method::KlDiv))?;
            binned_score(column, method, &rp, &cp)
        }
    }
}

fn binned_score(column: &str, method: Method, r: &[f64], c: &[f64]) -> Result<f64, MonitorError> {
    let e = stats_error(column);
    match method {
        Method::JensenShannon => twosample::jensenshannon(r, c, None).map_err(e),
        Method::Psi => twosample::psi(r, c).map_err(e),
        Method::KlDiv => twosample::kl_div(r, c).map_err(e),
        Method::Hellinger => twosample::hellinger(r, c).map_err(e),
        other => Err(MonitorError::invalid(
            "method",
            format!("{} does not compare binned shares", other.name()),
        )),
    }
}

/// Evidently's `get_binned_data` on counts per bin or category: shares of
/// each sample, zeros replaced (`keel_stats::twosample::fill_zero_percents`)
/// when `feel_zeroes`.
fn shares(
    column: &str,
    r: &[u64],
    c: &[u64],
    feel_zeroes: bool,
) -> Result<(Vec<f64>, Vec<f64>), MonitorError> {
    let share = |x: &[u64]| -> Result<Vec<f64>, MonitorError> {
        let n: u64 = x.iter().sum();
        let p: Vec<f64> = x.iter().map(|v| *v as f64 / n as f64).collect();
        if feel_zeroes {
            twosample::fill_zero_percents(&p).map_err(stats_error(column))
        } else {
            Ok(p)
        }
    };
    Ok((share(r)?, share(c)?))
}

/// Evidently's `get_binned_data` on a numerical column: Sturges bins over
/// both samples when the reference has more than 20 distinct values, the
/// values themselves otherwise.
fn binned_numerical(
    column: &str,
    r: &[f64],
    c: &[f64],
    integer: bool,
    feel_zeroes: bool,
) -> Result<(Vec<f64>, Vec<f64>), MonitorError> {
    let (rc, cc) = if distinct_sorted(r) > 20 {
        let lo = r[0].min(c[0]);
        let hi = r[r.len() - 1].max(c[c.len() - 1]);
        let edges = sturges_edges(lo, hi, r.len() + c.len(), integer);
        // The edges span both samples: every value is in a bin.
        (histogram_sorted(r, &edges), histogram_sorted(c, &edges))
    } else {
        let (_, rc, cc) = value_counts_sorted(r, c);
        (rc, cc)
    };
    shares(column, &rc, &cc, feel_zeroes)
}

/// `np.histogram_bin_edges(x, bins="sturges")` for data with minimum `lo`,
/// maximum `hi` and `n` values.
pub fn sturges_edges(lo: f64, hi: f64, n: usize, integer: bool) -> Vec<f64> {
    let ptp = hi - lo;
    let (first, last) = if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let mut width = ptp / ((n as f64).log2() + 1.0);
    if integer && width > 0.0 && width < 1.0 {
        width = 1.0;
    }
    let bins = if width > 0.0 {
        ((last - first) / width).ceil() as usize
    } else {
        1
    };
    linspace(first, last, bins + 1)
}

/// `np.linspace(start, stop, num)` with its endpoint.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut y: Vec<f64> = (0..num)
        .map(|i| {
            if step == 0.0 {
                i as f64 / div * delta + start
            } else {
                i as f64 * step + start
            }
        })
        .collect();
    if let Some(last) = y.last_mut() {
        *last = stop;
    }
    y
}

/// `np.histogram(x, edges)[0]` for sorted `x`: bins are half-open except
/// the last, values outside the edges are not counted.
pub fn histogram_sorted(x: &[f64], edges: &[f64]) -> Vec<u64> {
    if edges.len() < 2 {
        return Vec::new();
    }
    let mut cum: Vec<usize> = edges[..edges.len() - 1]
        .iter()
        .map(|e| x.partition_point(|v| v < e))
        .collect();
    let last = edges[edges.len() - 1];
    cum.push(x.partition_point(|v| *v <= last));
    cum.windows(2).map(|w| (w[1] - w[0]) as u64).collect()
}

/// Evidently's Hellinger distance on a numerical column: Sturges bins
/// over the distinct values of both samples, density histograms.
fn hellinger_numerical(r: &[f64], c: &[f64]) -> f64 {
    let (keys, _, _) = value_counts_sorted(r, c);
    let (lo, hi) = (keys[0], keys[keys.len() - 1]);
    let edges = sturges_edges(lo, hi, keys.len(), false);
    let density = |x: &[f64]| -> Vec<f64> {
        let counts = histogram_sorted(x, &edges);
        let total: u64 = counts.iter().sum();
        counts
            .iter()
            .zip(edges.windows(2))
            .map(|(n, w)| *n as f64 / (w[1] - w[0]) / total as f64)
            .collect()
    };
    let (h1, h2) = (density(r), density(c));
    let bin_width = (edges[edges.len() - 1] - edges[0]) / (edges.len() - 1) as f64;
    let mut sum = 0.0;
    for (p1, p2) in h1.iter().zip(&h2) {
        sum += (p1 * p2).sqrt() * bin_width;
    }
    (1.0 - sum.clamp(0.0, 1.0)).sqrt()
}

/// 30 equal bins over both samples, as shares of each.
fn histogram_plot(r: &[f64], c: &[f64]) -> Plot {
    let lo = r[0].min(c[0]);
    let hi = r[r.len() - 1].max(c[c.len() - 1]);
    let (lo, hi) = if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let edges = linspace(lo, hi, 31);
    let share = |x: &[f64]| -> Vec<f64> {
        histogram_sorted(x, &edges)
            .iter()
            .map(|n| *n as f64 / x.len() as f64)
            .collect()
    };
    Plot::Histogram {
        reference: share(r),
        current: share(c),
        edges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_histogram_counts_the_last_edge_in_the_last_bin() {
        let x = [0.0, 0.5, 1.0, 1.0, 2.0, 3.0];
        assert_eq!(histogram_sorted(&x, &[0.0, 1.0, 2.0, 3.0]), vec![2, 2, 2]);
        assert_eq!(histogram_sorted(&x, &[0.5, 1.0]), vec![3]);
    }

    #[test]
    fn sturges_matches_numpy() {
        // np.histogram_bin_edges(np.arange(100.0), bins="sturges") has 9 edges.
        let e = sturges_edges(0.0, 99.0, 100, false);
        assert_eq!(e.len(), 9);
        assert_eq!(e[0], 0.0);
        assert_eq!(e[8], 99.0);
        assert_eq!(sturges_edges(3.0, 3.0, 10, false), vec![2.5, 3.5]);
    }

    #[test]
    fn feel_zeroes_is_evidentlys() {
        let (p, _) = shares("c", &[1, 0, 1], &[1, 1, 1], true).expect("shares");
        assert_eq!(p, vec![0.5, 0.0001, 0.5]);
        let (p, _) = shares("c", &[99_999, 0, 1], &[1, 1, 1], true).expect("shares");
        assert_eq!(p[1], 0.00001 / 1e6);
        let (p, _) = shares("c", &[1, 0, 1], &[1, 1, 1], false).expect("shares");
        assert_eq!(p, vec![0.5, 0.0, 0.5]);
    }

    #[test]
    fn comparators_follow_evidently() {
        assert!(Method::Ks.comparator().holds(0.05, 0.05));
        assert!(!Method::Z.comparator().holds(0.05, 0.05));
        assert!(Method::Wasserstein.comparator().holds(0.1, 0.1));
        assert!(!Method::Energy.comparator().holds(0.1, 0.1));
    }

    fn write(path: &std::path::Path, columns: Vec<(&str, arrow_array::ArrayRef)>) {
        let batch = arrow_array::RecordBatch::try_from_iter(columns).expect("batch");
        let file = std::fs::File::create(path).expect("create");
        let mut w =
            parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
    }

    fn column_of<'a>(r: &'a DriftReport, name: &str) -> &'a ColumnDrift {
        r.columns.iter().find(|c| c.column == name).expect("column")
    }

    #[test]
    fn parquet_columns_are_typed_cleaned_and_compared() {
        use arrow_array::{
            ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
        };
        use std::sync::Arc;
        let dir = tempfile::tempdir().expect("tempdir");
        let (r, c) = (dir.path().join("r.parquet"), dir.path().join("c.parquet"));
        let n = 400;
        let table = |shift: f64| -> Vec<(&str, ArrayRef)> {
            let x: Vec<Option<f64>> = (0..n)
                .map(|i| match i % 50 {
                    0 => None,
                    1 => Some(f64::NAN),
                    2 => Some(f64::INFINITY),
                    _ => Some((i as f64 * 0.37).sin() * 3.0 + shift),
                })
                .collect();
            let level: Vec<i64> = (0..n).map(|i| (i % 4) as i64).collect();
            let colour: Vec<Option<&str>> = (0..n)
                .map(|i| {
                    if i % 10 == 0 {
                        None
                    } else {
                        Some(["a", "b", "c"][i % 3])
                    }
                })
                .collect();
            vec![
                ("x", Arc::new(Float64Array::from(x)) as ArrayRef),
                ("level", Arc::new(Int64Array::from(level)) as ArrayRef),
                ("colour", Arc::new(StringArray::from(colour)) as ArrayRef),
                (
                    "ts",
                    Arc::new(TimestampMicrosecondArray::from(vec![0i64; n])) as ArrayRef,
                ),
            ]
        };
        write(&r, table(0.0));
        write(&c, table(2.0));
        let report = drift_parquet(&r, &c, &DriftSpec::default(), 2, &|_, _| {}).expect("drift");
        let x = column_of(&report, "x");
        assert_eq!(x.column_type, ColumnType::Numerical);
        assert_eq!(x.method, Method::Ks);
        assert!(x.drifted);
        assert_eq!(
            x.reference_missing,
            Missing {
                nulls: 16,
                infinite: 8
            }
        );
        assert_eq!(x.reference_count, 376);
        // Integers with at most 10 values are categories, as in Evidently.
        let level = column_of(&report, "level");
        assert_eq!(level.column_type, ColumnType::Categorical);
        assert_eq!(level.method, Method::Chi2Contingency);
        assert!(!level.drifted && (level.score - 1.0).abs() < 1e-12);
        let colour = column_of(&report, "colour");
        assert_eq!((colour.reference_count, colour.distinct), (360, 3));
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].column, "ts");
        assert!((report.drift_share - 1.0 / 3.0).abs() < 1e-12 && !report.dataset_drift);
        let html = crate::report::render_html(&report, "t");
        assert_eq!(html.matches("<svg").count(), 4);
        // A column the files lack is a named error.
        let spec = DriftSpec {
            columns: vec!["nope".into()],
            ..Default::default()
        };
        let e = drift_parquet(&r, &c, &spec, 1, &|_, _| {}).unwrap_err();
        assert!(e.to_string().contains("nope"));
        let e = drift_parquet(
            &dir.path().join("none.parquet"),
            &c,
            &DriftSpec::default(),
            1,
            &|_, _| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("none.parquet"));
    }

    #[test]
    fn bad_specs_name_the_field() {
        let spec = DriftSpec {
            drift_share: 1.5,
            ..Default::default()
        };
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("drift_share")
        );
        let spec = DriftSpec {
            categorical_method: Some(Method::Ks),
            ..Default::default()
        };
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("categorical_method")
        );
    }
}
