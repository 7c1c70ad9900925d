//! Security checks: black-box evasion under a query budget ([`evasion`])
//! and hostile inputs ([`hostile_inputs`]).
//!
//! Both see the model only through its predict closure, as an attacker
//! with query access would. Wrong types (a string where a number belongs,
//! a missing field) never reach this layer — the serving layer rejects them
//! while decoding the request — so the hostile probes are all well-typed
//! numeric batches.

use keel_stats::rng::Rng;
use serde::{Deserialize, Serialize};

use super::{Matrix, Predict, call};
use crate::{QualityError, Result, invalid};

/// The ball an evasion attack searches, in units of each column's standard
/// deviation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// Every column moves by at most `budget · σ_c`.
    Linf,
    /// The std-scaled perturbation has Euclidean length at most `budget`.
    L2,
}

/// The parameters of [`evasion`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evasion {
    pub norm: Norm,
    /// The radius of the ball, in standard deviations.
    pub budget: f64,
    /// Model queries per row for the random search (the refinement's
    /// queries come on top, `refine_steps` per evaded row).
    pub queries: usize,
    /// Candidates per row per model call: the search makes
    /// `⌈queries / per_round⌉` batched calls.
    pub per_round: usize,
    /// Bisection steps of the boundary walk.
    pub refine_steps: usize,
    pub seed: u64,
}

impl Default for Evasion {
    fn default() -> Self {
        Evasion {
            norm: Norm::Linf,
            budget: 0.1,
            queries: 100,
            per_round: 10,
            refine_steps: 10,
            seed: 0,
        }
    }
}

/// What [`evasion`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvasionReport {
    pub rows: u64,
    /// Rows whose label the search flipped within the budget.
    pub evaded: u64,
    pub success_rate: f64,
    /// Mean search queries until the first flip, over evaded rows (`None`
    /// if none was).
    pub mean_queries: Option<f64>,
    /// Mean smallest flipping distance (in the norm, std-scaled) after the
    /// boundary walk, over evaded rows.
    pub mean_min_distance: Option<f64>,
    /// All model queries made, refinement included, the initial
    /// prediction of each row excluded.
    pub total_queries: u64,
}

/// Black-box evasion by random search, for a classifier: for each row of
/// `sample`, draw up to `queries` candidates on the surface of the ball
/// (L∞: a random corner, each column `±budget·σ_c`; L2: a random direction
/// at length `budget` in std units) — the surface is where a flip is
/// likeliest for a locally monotone model — and count the row evaded at the
/// first candidate whose label differs from the row's own. Then walk the
/// segment from the row to that candidate by bisection (`refine_steps`
/// queries) to report the smallest flipping distance along it.
///
/// `column_std` is each column's standard deviation on the reference data
/// (e.g. [`Matrix::column_std`] of the training set); columns with σ = 0
/// are never moved. Model calls are batched: one [`Matrix`] per round holds
/// the candidates of every row still unbroken.
pub fn evasion(
    sample: &Matrix,
    column_std: &[f64],
    params: &Evasion,
    predict: &mut Predict<'_>,
) -> Result<EvasionReport> {
    sample.check_shape("sample")?;
    if sample.rows == 0 {
        return Err(QualityError::Empty {
            name: "sample".into(),
        });
    }
    crate::paired(
        "columns of sample",
        sample.cols,
        "column_std",
        column_std.len(),
    )?;
    if let Some((i, &s)) = column_std
        .iter()
        .enumerate()
        .find(|(_, s)| !(s.is_finite() && **s >= 0.0))
    {
        return Err(QualityError::OutOfRange {
            name: "column_std".into(),
            index: i,
            value: s,
            range: "[0, ∞)",
        });
    }
    if !(params.budget.is_finite() && params.budget > 0.0) {
        return Err(invalid(
            "budget",
            format!("is {}; it must be a finite number > 0", params.budget),
        ));
    }
    if params.queries == 0 || params.per_round == 0 {
        return Err(invalid(
            "queries",
            "queries and per_round must be at least 1",
        ));
    }
    let (n, d) = (sample.rows, sample.cols);
    let mut rng = Rng::from_seed(params.seed);
    let original = call(predict, sample)?.labels;
    let movable: Vec<usize> = (0..d).filter(|&c| column_std[c] > 0.0).collect();

    // Per row: the flipping perturbation (std-scaled direction) and the
    // queries it took.
    let mut found: Vec<Option<(Vec<f64>, u64)>> = vec![None; n];
    let mut used = vec![0u64; n];
    let mut total_queries = 0u64;
    let mut active: Vec<usize> = if movable.is_empty() {
        Vec::new()
    } else {
        (0..n).collect()
    };
    let mut spent = 0usize;
    while !active.is_empty() && spent < params.queries {
        let k = params.per_round.min(params.queries - spent);
        spent += k;
        let mut batch = Vec::with_capacity(active.len() * k * d);
        let mut deltas = Vec::with_capacity(active.len() * k * d);
        for &r in &active {
            for _ in 0..k {
                let delta = draw(params, d, &movable, &mut rng);
                batch.extend(
                    sample
                        .row(r)
                        .iter()
                        .zip(&delta)
                        .zip(column_std)
                        .map(|((x, z), s)| x + z * s),
                );
                deltas.extend(delta);
            }
        }
        let m = Matrix::new(active.len() * k, d, batch)?;
        let labels = call(predict, &m)?.labels;
        total_queries += m.rows as u64;
        let mut still = Vec::with_capacity(active.len());
        for (a, &r) in active.iter().enumerate() {
            let hit = (0..k).find(|&j| labels[a * k + j] != original[r]);
            match hit {
                Some(j) => {
                    let at = (a * k + j) * d;
                    found[r] = Some((deltas[at..at + d].to_vec(), used[r] + j as u64 + 1));
                }
                None => {
                    used[r] += k as u64;
                    still.push(r);
                }
            }
        }
        active = still;
    }

    // Boundary walk: bisection on t ∈ (lo, hi], flipped at hi, all rows at
    // once.
    let evaded: Vec<usize> = (0..n).filter(|&r| found[r].is_some()).collect();
    let mut lo = vec![0.0f64; evaded.len()];
    let mut hi = vec![1.0f64; evaded.len()];
    for _ in 0..params.refine_steps {
        if evaded.is_empty() {
            break;
        }
        let mut batch = Vec::with_capacity(evaded.len() * d);
        for (e, &r) in evaded.iter().enumerate() {
            let t = 0.5 * (lo[e] + hi[e]);
            if let Some((delta, _)) = &found[r] {
                batch.extend(
                    sample
                        .row(r)
                        .iter()
                        .zip(delta)
                        .zip(column_std)
                        .map(|((x, z), s)| x + t * z * s),
                );
            }
        }
        let m = Matrix::new(evaded.len(), d, batch)?;
        let labels = call(predict, &m)?.labels;
        total_queries += m.rows as u64;
        for (e, &r) in evaded.iter().enumerate() {
            let t = 0.5 * (lo[e] + hi[e]);
            if labels[e] != original[r] {
                hi[e] = t;
            } else {
                lo[e] = t;
            }
        }
    }

    let count = evaded.len();
    let mean =
        |xs: &mut dyn Iterator<Item = f64>| (count > 0).then(|| xs.sum::<f64>() / count as f64);
    let mean_queries = mean(
        &mut evaded
            .iter()
            .filter_map(|&r| found[r].as_ref().map(|f| f.1 as f64)),
    );
    let mean_min_distance = mean(&mut evaded.iter().zip(&hi).filter_map(|(&r, &t)| {
        found[r]
            .as_ref()
            .map(|(delta, _)| t * norm(params.norm, delta))
    }));
    Ok(EvasionReport {
        rows: n as u64,
        evaded: count as u64,
        success_rate: count as f64 / n as f64,
        mean_queries,
        mean_min_distance,
        total_queries,
    })
}

/// A std-scaled perturbation on the surface of the ball.
fn draw(params: &Evasion, d: usize, movable: &[usize], rng: &mut Rng) -> Vec<f64> {
    let mut delta = vec![0.0; d];
    match params.norm {
        Norm::Linf => {
            for &c in movable {
                delta[c] = if rng.next_f64() < 0.5 {
                    -params.budget
                } else {
                    params.budget
                };
            }
        }
        Norm::L2 => {
            let mut len2 = 0.0;
            while len2 == 0.0 {
                for &c in movable {
                    delta[c] = rng.normal();
                    len2 += delta[c] * delta[c];
                }
            }
            let f = params.budget / len2.sqrt();
            for &c in movable {
                delta[c] *= f;
            }
        }
    }
    delta
}

fn norm(kind: Norm, delta: &[f64]) -> f64 {
    match kind {
        Norm::Linf => delta.iter().fold(0.0, |a, x| a.max(x.abs())),
        Norm::L2 => delta.iter().map(|x| x * x).sum::<f64>().sqrt(),
    }
}

/// Rows in the oversized hostile batch.
pub const OVERSIZED_ROWS: usize = 100_000;

/// A value far outside any plausible feature range.
pub const OUT_OF_RANGE: f64 = 1e12;

/// What the model did with one hostile probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeOutcome {
    /// `nan`, `pos_inf`, `neg_inf`, `huge`, `neg_huge`, `empty_batch`,
    /// `oversized_batch`.
    pub probe: String,
    pub rows: u64,
    /// The model answered (with anything) instead of returning an error.
    pub answered: bool,
    /// The error it returned, when it rejected the probe.
    pub error: Option<String>,
}

/// Builds the hostile probes from one valid row (`template`'s first): the
/// row with every value NaN, +∞, −∞, +1e12 or −1e12; an empty batch; and
/// the row repeated [`OVERSIZED_ROWS`] times. A model should reject the
/// first five and the last (or answer them on purpose); answering the
/// empty batch with an empty answer is fine.
pub fn hostile_probes(template: &Matrix) -> Result<Vec<(&'static str, Matrix)>> {
    template.check_shape("template")?;
    if template.rows == 0 {
        return Err(QualityError::Empty {
            name: "template".into(),
        });
    }
    let d = template.cols;
    let base = template.row(0);
    let filled = |x: f64| Matrix {
        rows: 1,
        cols: d,
        values: vec![x; d],
    };
    let mut oversized = Vec::with_capacity(OVERSIZED_ROWS * d);
    for _ in 0..OVERSIZED_ROWS {
        oversized.extend_from_slice(base);
    }
    Ok(vec![
        ("nan", filled(f64::NAN)),
        ("pos_inf", filled(f64::INFINITY)),
        ("neg_inf", filled(f64::NEG_INFINITY)),
        ("huge", filled(OUT_OF_RANGE)),
        ("neg_huge", filled(-OUT_OF_RANGE)),
        (
            "empty_batch",
            Matrix {
                rows: 0,
                cols: d,
                values: Vec::new(),
            },
        ),
        (
            "oversized_batch",
            Matrix {
                rows: OVERSIZED_ROWS,
                cols: d,
                values: oversized,
            },
        ),
    ])
}

/// Sends each of [`hostile_probes`] to the model and records whether it
/// answered or rejected it (an `Err` is a rejection). The answers' contents
/// are not judged: the check asserts on which probes were answered.
pub fn hostile_inputs(template: &Matrix, predict: &mut Predict<'_>) -> Result<Vec<ProbeOutcome>> {
    Ok(hostile_probes(template)?
        .into_iter()
        .map(|(probe, m)| {
            let result = predict(&m);
            ProbeOutcome {
                probe: probe.to_string(),
                rows: m.rows as u64,
                answered: result.is_ok(),
                error: result.err().map(|e| e.to_string()),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::{Predictions, toy};
    use super::*;

    /// Rows at `x₀ ∈ {−0.05, 2}`: the first flip with a budget ≥ 0.05/σ₀,
    /// the second do not.
    fn sample() -> Matrix {
        Matrix::new(4, 2, vec![-0.05, 1.0, 2.0, 1.0, -0.05, -3.0, 2.0, 0.0]).unwrap()
    }

    #[test]
    fn evasion_flips_rows_near_the_boundary() {
        let params = Evasion {
            budget: 0.1,
            queries: 20,
            per_round: 4,
            refine_steps: 20,
            ..Evasion::default()
        };
        let mut calls = 0;
        let mut model = |m: &Matrix| {
            calls += 1;
            toy::logistic(m)
        };
        let r = evasion(&sample(), &[1.0, 1.0], &params, &mut model).unwrap();
        assert_eq!((r.rows, r.evaded, r.success_rate), (4, 2, 0.5));
        // Linf corner: x₀ moves by ±0.1; the boundary is at 0.05 away.
        let dist = r.mean_min_distance.unwrap();
        assert!((dist - 0.05).abs() < 1e-4, "{dist}");
        assert!(r.mean_queries.unwrap() >= 1.0);
        // 1 initial + 5 search rounds + 20 refinement rounds at most.
        assert!(calls <= 26, "{calls}");
        // The same seed, the same report.
        assert_eq!(
            evasion(&sample(), &[1.0, 1.0], &params, &mut toy::logistic).unwrap(),
            r
        );
    }

    #[test]
    fn evasion_l2_and_small_budget() {
        let params = Evasion {
            norm: Norm::L2,
            budget: 0.1,
            queries: 200,
            per_round: 20,
            refine_steps: 20,
            seed: 9,
        };
        let r = evasion(&sample(), &[1.0, 1.0], &params, &mut toy::logistic).unwrap();
        assert_eq!(r.evaded, 2);
        let dist = r.mean_min_distance.unwrap();
        assert!((0.05 - 1e-6..=0.1).contains(&dist), "{dist}");
        let tiny = Evasion {
            budget: 0.01,
            ..params
        };
        let r = evasion(&sample(), &[1.0, 1.0], &tiny, &mut toy::logistic).unwrap();
        assert_eq!(
            (r.evaded, r.mean_queries, r.mean_min_distance),
            (0, None, None)
        );
        assert_eq!(r.total_queries, 4 * 200);
        // Column 0 frozen (σ = 0): nothing can flip.
        let r = evasion(&sample(), &[0.0, 1.0], &params, &mut toy::logistic).unwrap();
        assert_eq!(r.evaded, 0);
    }

    #[test]
    fn evasion_bad_input() {
        let p = Evasion::default();
        assert!(evasion(&sample(), &[1.0], &p, &mut toy::logistic).is_err());
        assert!(evasion(&sample(), &[1.0, f64::NAN], &p, &mut toy::logistic).is_err());
        assert!(
            evasion(
                &sample(),
                &[1.0, 1.0],
                &Evasion {
                    budget: 0.0,
                    ..p.clone()
                },
                &mut toy::logistic
            )
            .is_err()
        );
        assert!(
            evasion(
                &sample(),
                &[1.0, 1.0],
                &Evasion {
                    queries: 0,
                    ..p.clone()
                },
                &mut toy::logistic
            )
            .is_err()
        );
        let empty = Matrix::new(0, 2, vec![]).unwrap();
        assert!(evasion(&empty, &[1.0, 1.0], &p, &mut toy::logistic).is_err());
        let mut broken = |_: &Matrix| Err(invalid("model", "down"));
        assert!(evasion(&sample(), &[1.0, 1.0], &p, &mut broken).is_err());
    }

    #[test]
    fn hostile_inputs_record_answers_and_rejections() {
        let template = Matrix::new(1, 3, vec![0.5, 1.0, 2.0]).unwrap();
        let probes = hostile_probes(&template).unwrap();
        assert_eq!(probes.len(), 7);
        assert_eq!(probes[6].1.rows, OVERSIZED_ROWS);
        assert_eq!(probes[6].1.values.len(), OVERSIZED_ROWS * 3);

        // Answers everything.
        let lax = hostile_inputs(&template, &mut toy::logistic).unwrap();
        assert!(lax.iter().all(|p| p.answered && p.error.is_none()));

        // Rejects non-finite values, out-of-range values and bad batch sizes.
        let mut strict = |m: &Matrix| {
            if m.rows == 0 || m.rows > 10_000 {
                return Err(invalid("batch", format!("{} rows", m.rows)));
            }
            if m.values.iter().any(|x| !x.is_finite() || x.abs() > 1e6) {
                return Err(invalid("batch", "value out of range"));
            }
            Ok(Predictions {
                labels: vec![0; m.rows],
                scores: None,
            })
        };
        let strict = hostile_inputs(&template, &mut strict).unwrap();
        assert!(strict.iter().all(|p| !p.answered && p.error.is_some()));
        let names: Vec<&str> = strict.iter().map(|p| p.probe.as_str()).collect();
        assert_eq!(
            names,
            [
                "nan",
                "pos_inf",
                "neg_inf",
                "huge",
                "neg_huge",
                "empty_batch",
                "oversized_batch"
            ]
        );

        assert!(hostile_probes(&Matrix::new(0, 3, vec![]).unwrap()).is_err());
    }
}
