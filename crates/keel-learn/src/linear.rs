//! Linear models: L2-regularised logistic regression (binary) and ridge /
//! ordinary least squares regression, solved in the features' own units
//! (no hidden standardisation), so the penalty means what scikit-learn's
//! does and the coefficients can be compared with it directly.
//!
//! # Logistic regression
//! Minimises, over the coefficients `w` and the intercept `b`,
//!
//! ```text
//!     Σᵢ logloss(yᵢ, w·xᵢ + b)  +  (l2 / 2)·‖w‖²
//! ```
//!
//! (a *sum* over rows; the intercept is not penalised). scikit-learn's
//! `LogisticRegression(C=…)` minimises `½‖w‖² + C·Σᵢ logloss`, which is the
//! same problem scaled by `C`, so **`C = 1 / l2`**; `l2 = 0` is
//! `penalty=None`. The solver is Newton's method with a Cholesky solve and a
//! backtracking (Armijo) line search; each Newton iteration is one trainer
//! step. It stops when the largest component of the Newton step is at most
//! `tol·(1 + max |β|)`, which, Newton converging quadratically, leaves the
//! coefficients accurate to far below `tol`.
//!
//! # Ridge regression
//! Minimises `Σᵢ (yᵢ − w·xᵢ − b)² + l2·‖w‖²`, exactly scikit-learn's
//! `Ridge(alpha=l2)` (and `LinearRegression` for `l2 = 0`): the features
//! and target are centred (when fitting an intercept), the normal equations
//! `(XcᵀXc + l2·I) w = Xcᵀyc` are solved by Cholesky, and
//! `b = ȳ − x̄·w`. One trainer step.
//!
//! Both refuse missing (NaN) features, naming the row and column.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{LearnError, Problems, Result};
use crate::metrics;
use crate::parallel::{map_chunks, resolve_threads};
use crate::trainer::IterationMetrics;

/// Parameters of logistic regression (see the [module docs](self) for the
/// objective and the mapping to scikit-learn's `C`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticParams {
    /// L2 penalty on the coefficients (not the intercept); `C = 1 / l2`.
    pub l2: f64,
    pub fit_intercept: bool,
    /// Newton iterations at most.
    pub max_iter: usize,
    /// Convergence tolerance on the Newton step, relative to `1 + max|β|`.
    pub tol: f64,
    /// Threads for the gradient and Hessian sums; results do not depend on
    /// it. Default: every core.
    pub threads: Option<usize>,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams {
            l2: 1.0,
            fit_intercept: true,
            max_iter: 100,
            tol: 1e-10,
            threads: None,
        }
    }
}

impl LogisticParams {
    /// Checks every parameter, reporting all problems at once.
    pub fn validate(&self) -> Result<()> {
        let mut p = Problems::default();
        p.non_negative("l2", self.l2);
        if self.max_iter == 0 {
            p.push("max_iter", "must be at least 1");
        }
        p.positive("tol", self.tol);
        if self.threads == Some(0) {
            p.push("threads", "must be at least 1 (or absent for every core)");
        }
        p.into_result()
    }
}

/// Parameters of ridge regression (`l2 = 0`: ordinary least squares).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RidgeParams {
    /// L2 penalty; scikit-learn's `Ridge(alpha=l2)`.
    pub l2: f64,
    pub fit_intercept: bool,
    /// Threads for the normal equations' sums; results do not depend on it.
    pub threads: Option<usize>,
}

impl Default for RidgeParams {
    fn default() -> Self {
        RidgeParams {
            l2: 1.0,
            fit_intercept: true,
            threads: None,
        }
    }
}

impl RidgeParams {
    /// Checks every parameter, reporting all problems at once.
    pub fn validate(&self) -> Result<()> {
        let mut p = Problems::default();
        p.non_negative("l2", self.l2);
        if self.threads == Some(0) {
            p.push("threads", "must be at least 1 (or absent for every core)");
        }
        p.into_result()
    }
}

/// A fitted linear model: `score = coefficients · x + intercept` in the
/// features' original units. For logistic regression the score is the
/// log-odds of class 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearModel {
    pub feature_names: Vec<String>,
    pub coefficients: Vec<f64>,
    pub intercept: f64,
}

impl LinearModel {
    /// The raw score of one row (`row.len()` must equal the coefficients').
    pub fn score(&self, row: &[f64]) -> f64 {
        dot(&self.coefficients, row) + self.intercept
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

// ----------------------------------------------------------------- Cholesky

/// Solves `A x = b` for a symmetric positive definite `A` (row-major
/// `m × m`, only the lower triangle is read) by Cholesky; `None` if `A` is
/// not positive definite to working precision.
pub(crate) fn cholesky_solve(a: &[f64], b: &[f64], m: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; m * m];
    let max_diag = (0..m).map(|i| a[i * m + i].abs()).fold(0.0, f64::max);
    let floor = max_diag * f64::EPSILON * m as f64;
    for i in 0..m {
        for j in 0..=i {
            let mut sum = a[i * m + j];
            for k in 0..j {
                sum -= l[i * m + k] * l[j * m + k];
            }
            if i == j {
                if sum <= floor || !sum.is_finite() {
                    return None;
                }
                l[i * m + i] = sum.sqrt();
            } else {
                l[i * m + j] = sum / l[j * m + j];
            }
        }
    }
    // Forward then back substitution.
    let mut y = vec![0.0; m];
    for i in 0..m {
        let mut sum = b[i];
        for k in 0..i {
            sum -= l[i * m + k] * y[k];
        }
        y[i] = sum / l[i * m + i];
    }
    let mut x = vec![0.0; m];
    for i in (0..m).rev() {
        let mut sum = y[i];
        for k in i + 1..m {
            sum -= l[k * m + i] * x[k];
        }
        x[i] = sum / l[i * m + i];
    }
    Some(x)
}

// -------------------------------------------------------- logistic trainer

/// The state a logistic regression resumes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogisticCheckpoint {
    pub params: LogisticParams,
    pub feature_names: Vec<String>,
    /// Newton iterations done.
    pub iteration: usize,
    /// `[w…, b]` after `iteration` steps.
    pub beta: Vec<f64>,
    pub converged: bool,
    pub train_fingerprint: u64,
    pub valid_fingerprint: Option<u64>,
}

/// Logistic regression, one Newton iteration per [`LogisticTrainer::step`].
#[derive(Debug)]
pub struct LogisticTrainer<'a> {
    params: LogisticParams,
    train: &'a Dataset,
    validation: Option<&'a Dataset>,
    threads: usize,
    iteration: usize,
    /// `[w…, b]`.
    beta: Vec<f64>,
    converged: bool,
}

/// Sums over the rows at `beta`: loss, gradient and (optionally) the lower
/// triangle of the Hessian, both over `[w…, b]` and without the penalty.
struct Sums {
    loss: f64,
    grad: Vec<f64>,
    hess: Vec<f64>,
}

impl<'a> LogisticTrainer<'a> {
    pub fn new(
        params: LogisticParams,
        train: &'a Dataset,
        validation: Option<&'a Dataset>,
    ) -> Result<Self> {
        params.validate()?;
        check_logistic_data(train, validation)?;
        let beta = vec![0.0; train.cols() + 1];
        Ok(LogisticTrainer {
            threads: resolve_threads(params.threads),
            params,
            train,
            validation,
            iteration: 0,
            beta,
            converged: false,
        })
    }

    pub fn resume(
        checkpoint: LogisticCheckpoint,
        train: &'a Dataset,
        validation: Option<&'a Dataset>,
    ) -> Result<Self> {
        checkpoint.params.validate()?;
        check_logistic_data(train, validation)?;
        check_fingerprints(
            train,
            validation,
            checkpoint.train_fingerprint,
            checkpoint.valid_fingerprint,
        )?;
        if checkpoint.beta.len() != train.cols() + 1 {
            return Err(LearnError::Checkpoint {
                field: "beta",
                message: format!(
                    "has {} values for {} features (+ intercept)",
                    checkpoint.beta.len(),
                    train.cols()
                ),
            });
        }
        Ok(LogisticTrainer {
            threads: resolve_threads(checkpoint.params.threads),
            params: checkpoint.params,
            train,
            validation,
            iteration: checkpoint.iteration,
            beta: checkpoint.beta,
            converged: checkpoint.converged,
        })
    }

    pub fn iteration(&self) -> usize {
        self.iteration
    }

    pub fn is_done(&self) -> bool {
        self.converged || self.iteration >= self.params.max_iter
    }

    /// Sets the threads used from now on; results do not change.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Whether the Newton iterations met the tolerance (rather than
    /// running out of `max_iter`).
    pub fn converged(&self) -> bool {
        self.converged
    }

    fn sums(&self, beta: &[f64], with_hessian: bool) -> Sums {
        let d = self.train.cols();
        let m = d + 1;
        let x = self.train.features();
        let y = self.train.labels();
        let parts = map_chunks(self.train.rows(), self.threads, |rows| {
            let mut s = Sums {
                loss: 0.0,
                grad: vec![0.0; m],
                hess: if with_hessian {
                    vec![0.0; m * m]
                } else {
                    Vec::new()
                },
            };
            let mut z = vec![0.0; m];
            for i in rows {
                let row = &x[i * d..(i + 1) * d];
                let score = dot(&beta[..d], row) + beta[d];
                s.loss += metrics::row_log_loss(y[i], score);
                let p = metrics::sigmoid(score);
                let r = p - y[i];
                z[..d].copy_from_slice(row);
                z[d] = 1.0;
                for (g, &zj) in s.grad.iter_mut().zip(&z) {
                    *g += r * zj;
                }
                if with_hessian {
                    let w = p * (1.0 - p);
                    for a in 0..m {
                        let wa = w * z[a];
                        let hrow = &mut s.hess[a * m..a * m + a + 1];
                        for (h, &zb) in hrow.iter_mut().zip(&z[..=a]) {
                            *h += wa * zb;
                        }
                    }
                }
            }
            s
        });
        let mut total = Sums {
            loss: 0.0,
            grad: vec![0.0; m],
            hess: if with_hessian {
                vec![0.0; m * m]
            } else {
                Vec::new()
            },
        };
        for part in parts {
            total.loss += part.loss;
            for (a, b) in total.grad.iter_mut().zip(&part.grad) {
                *a += b;
            }
            for (a, b) in total.hess.iter_mut().zip(&part.hess) {
                *a += b;
            }
        }
        total
    }

    /// The penalised objective at `beta` (a fresh pass over the rows).
    fn objective(&self, beta: &[f64]) -> f64 {
        let d = self.train.cols();
        self.sums(beta, false).loss + 0.5 * self.params.l2 * dot(&beta[..d], &beta[..d])
    }

    /// One Newton iteration with a backtracking line search; returns the
    /// metrics at the new coefficients.
    pub fn step(&mut self) -> Result<IterationMetrics> {
        if self.is_done() {
            return Err(LearnError::Finished {
                iterations: self.iteration,
            });
        }
        let d = self.train.cols();
        let m = d + 1;
        let l2 = self.params.l2;
        let sums = self.sums(&self.beta, true);
        let mut grad = sums.grad;
        let mut hess = sums.hess;
        for j in 0..d {
            grad[j] += l2 * self.beta[j];
            hess[j * m + j] += l2;
        }
        // Without an intercept, b stays 0: solve the d×d block only.
        let size = if self.params.fit_intercept { m } else { d };
        let mut a = vec![0.0; size * size];
        for i in 0..size {
            for j in 0..=i {
                a[i * size + j] = hess[i * m + j];
            }
        }
        let neg_grad: Vec<f64> = grad[..size].iter().map(|g| -g).collect();
        let direction = cholesky_solve(&a, &neg_grad, size).ok_or(LearnError::Singular {
            matrix: "the logistic Hessian XᵀWX + l2·I",
        })?;
        let current = sums.loss + 0.5 * l2 * dot(&self.beta[..d], &self.beta[..d]);
        let slope = dot(&grad[..size], &direction);
        let mut t = 1.0;
        let mut candidate = self.beta.clone();
        let mut accepted = false;
        for _ in 0..60 {
            for (j, dj) in direction.iter().enumerate() {
                candidate[j] = self.beta[j] + t * dj;
            }
            let value = self.objective(&candidate);
            // Armijo, with the objective's rounding noise allowed: near the
            // optimum the decrease of a full Newton step is below what f64
            // resolves, and the step must still be taken.
            let noise = 16.0 * f64::EPSILON * current.abs();
            if value.is_finite() && value <= current + 1e-4 * t * slope + noise {
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        self.iteration += 1;
        if !candidate.iter().all(|v| v.is_finite()) {
            return Err(LearnError::Diverged {
                what: "logistic regression",
                iteration: self.iteration,
                hint: "the classes are probably separable: set l2 > 0",
            });
        }
        let step_size = direction.iter().map(|v| (t * v).abs()).fold(0.0, f64::max);
        let scale = 1.0 + self.beta.iter().map(|v| v.abs()).fold(0.0, f64::max);
        if accepted {
            self.beta = candidate;
        }
        // No acceptable step even at t ≈ 1e-18: the objective cannot be
        // decreased in floating point, i.e. we are at the optimum.
        self.converged = !accepted || step_size <= self.params.tol * scale;
        Ok(self.metrics())
    }

    fn metrics(&self) -> IterationMetrics {
        let model = self.model();
        let train_scores: Vec<f64> = (0..self.train.rows())
            .map(|i| model.score(self.train.row(i)))
            .collect();
        let mut m = IterationMetrics::new(
            self.iteration,
            metrics::log_loss(self.train.labels(), &train_scores),
        );
        if let Some(v) = self.validation {
            let scores: Vec<f64> = (0..v.rows()).map(|i| model.score(v.row(i))).collect();
            m.valid_loss = Some(metrics::log_loss(v.labels(), &scores));
            m.valid_auc = metrics::roc_auc(v.labels(), &scores);
        }
        m
    }

    fn model(&self) -> LinearModel {
        let d = self.train.cols();
        LinearModel {
            feature_names: self.train.feature_names().to_vec(),
            coefficients: self.beta[..d].to_vec(),
            intercept: self.beta[d],
        }
    }

    pub fn checkpoint(&self) -> LogisticCheckpoint {
        LogisticCheckpoint {
            params: self.params.clone(),
            feature_names: self.train.feature_names().to_vec(),
            iteration: self.iteration,
            beta: self.beta.clone(),
            converged: self.converged,
            train_fingerprint: self.train.fingerprint(),
            valid_fingerprint: self.validation.map(Dataset::fingerprint),
        }
    }

    /// The coefficients as they are now (converged or not).
    pub fn finish(self) -> LinearModel {
        self.model()
    }
}

fn check_logistic_data(train: &Dataset, validation: Option<&Dataset>) -> Result<()> {
    train.check_binary_labels()?;
    train.check_no_missing()?;
    let positives = train.labels().iter().filter(|&&y| y == 1.0).count();
    if positives == 0 || positives == train.rows() {
        return Err(LearnError::Labels(format!(
            "all {} labels are {}; a binary classifier needs both 0 and 1",
            train.rows(),
            train.labels()[0]
        )));
    }
    if let Some(v) = validation {
        train.check_same_columns(v, "validation")?;
        v.check_binary_labels()?;
        v.check_no_missing()?;
    }
    Ok(())
}

pub(crate) fn check_fingerprints(
    train: &Dataset,
    validation: Option<&Dataset>,
    train_fp: u64,
    valid_fp: Option<u64>,
) -> Result<()> {
    if train.fingerprint() != train_fp {
        return Err(LearnError::Checkpoint {
            field: "train_fingerprint",
            message: "the training data differs from the data the checkpoint was trained on".into(),
        });
    }
    if validation.map(Dataset::fingerprint) != valid_fp {
        return Err(LearnError::Checkpoint {
            field: "valid_fingerprint",
            message: "the validation data differs from the checkpoint's (or one of them has none)"
                .into(),
        });
    }
    Ok(())
}

// ------------------------------------------------------------ ridge trainer

/// The state a ridge regression resumes from: done or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RidgeCheckpoint {
    pub params: RidgeParams,
    pub model: Option<LinearModel>,
    pub train_fingerprint: u64,
    pub valid_fingerprint: Option<u64>,
}

/// Ridge regression: one step solves it.
#[derive(Debug)]
pub struct RidgeTrainer<'a> {
    params: RidgeParams,
    train: &'a Dataset,
    validation: Option<&'a Dataset>,
    model: Option<LinearModel>,
}

impl<'a> RidgeTrainer<'a> {
    pub fn new(
        params: RidgeParams,
        train: &'a Dataset,
        validation: Option<&'a Dataset>,
    ) -> Result<Self> {
        params.validate()?;
        check_ridge_data(train, validation)?;
        Ok(RidgeTrainer {
            params,
            train,
            validation,
            model: None,
        })
    }

    pub fn resume(
        checkpoint: RidgeCheckpoint,
        train: &'a Dataset,
        validation: Option<&'a Dataset>,
    ) -> Result<Self> {
        checkpoint.params.validate()?;
        check_ridge_data(train, validation)?;
        check_fingerprints(
            train,
            validation,
            checkpoint.train_fingerprint,
            checkpoint.valid_fingerprint,
        )?;
        Ok(RidgeTrainer {
            params: checkpoint.params,
            train,
            validation,
            model: checkpoint.model,
        })
    }

    pub fn is_done(&self) -> bool {
        self.model.is_some()
    }

    pub fn iteration(&self) -> usize {
        usize::from(self.model.is_some())
    }

    /// Sets the threads used from now on; results do not change.
    pub fn set_threads(&mut self, threads: usize) {
        self.params.threads = Some(threads.max(1));
    }

    /// Solves the normal equations.
    pub fn step(&mut self) -> Result<IterationMetrics> {
        if self.is_done() {
            return Err(LearnError::Finished { iterations: 1 });
        }
        let model = fit_ridge(&self.params, self.train)?;
        let predict =
            |d: &Dataset| -> Vec<f64> { (0..d.rows()).map(|i| model.score(d.row(i))).collect() };
        let mut m = IterationMetrics::new(
            1,
            metrics::mean_squared_error(self.train.labels(), &predict(self.train)),
        );
        if let Some(v) = self.validation {
            m.valid_loss = Some(metrics::mean_squared_error(v.labels(), &predict(v)));
        }
        self.model = Some(model);
        Ok(m)
    }

    pub fn checkpoint(&self) -> RidgeCheckpoint {
        RidgeCheckpoint {
            params: self.params.clone(),
            model: self.model.clone(),
            train_fingerprint: self.train.fingerprint(),
            valid_fingerprint: self.validation.map(Dataset::fingerprint),
        }
    }

    /// The fitted model (solving it now if `step` was not called).
    pub fn finish(mut self) -> Result<LinearModel> {
        if self.model.is_none() {
            self.step()?;
        }
        self.model.ok_or(LearnError::Finished { iterations: 0 })
    }
}

fn check_ridge_data(train: &Dataset, validation: Option<&Dataset>) -> Result<()> {
    train.check_no_missing()?;
    if let Some(v) = validation {
        train.check_same_columns(v, "validation")?;
        v.check_no_missing()?;
    }
    Ok(())
}

fn fit_ridge(params: &RidgeParams, train: &Dataset) -> Result<LinearModel> {
    let d = train.cols();
    let n = train.rows();
    let x = train.features();
    let y = train.labels();
    let threads = resolve_threads(params.threads);
    let (x_mean, y_mean) = if params.fit_intercept {
        let parts = map_chunks(n, threads, |rows| {
            let mut s = vec![0.0; d + 1];
            for i in rows {
                for (a, b) in s.iter_mut().zip(&x[i * d..(i + 1) * d]) {
                    *a += b;
                }
                s[d] += y[i];
            }
            s
        });
        let mut s = vec![0.0; d + 1];
        for p in parts {
            for (a, b) in s.iter_mut().zip(&p) {
                *a += b;
            }
        }
        let means: Vec<f64> = s.iter().map(|v| v / n as f64).collect();
        (means[..d].to_vec(), means[d])
    } else {
        (vec![0.0; d], 0.0)
    };
    // XcᵀXc (lower triangle) and Xcᵀyc with centred values.
    let parts = map_chunks(n, threads, |rows| {
        let mut a = vec![0.0; d * d];
        let mut b = vec![0.0; d];
        let mut z = vec![0.0; d];
        for i in rows {
            for ((zj, xj), mj) in z.iter_mut().zip(&x[i * d..(i + 1) * d]).zip(&x_mean) {
                *zj = xj - mj;
            }
            let yc = y[i] - y_mean;
            for r in 0..d {
                let zr = z[r];
                for (acc, &zc) in a[r * d..r * d + r + 1].iter_mut().zip(&z[..=r]) {
                    *acc += zr * zc;
                }
                b[r] += zr * yc;
            }
        }
        (a, b)
    });
    let mut a = vec![0.0; d * d];
    let mut b = vec![0.0; d];
    for (pa, pb) in parts {
        for (s, v) in a.iter_mut().zip(&pa) {
            *s += v;
        }
        for (s, v) in b.iter_mut().zip(&pb) {
            *s += v;
        }
    }
    for j in 0..d {
        a[j * d + j] += params.l2;
    }
    let w = cholesky_solve(&a, &b, d).ok_or(LearnError::Singular {
        matrix: "the normal equations' XᵀX + l2·I",
    })?;
    let intercept = if params.fit_intercept {
        y_mean - dot(&x_mean, &w)
    } else {
        0.0
    };
    Ok(LinearModel {
        feature_names: train.feature_names().to_vec(),
        coefficients: w,
        intercept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_and_detects_singular() {
        // A = [[4, 2], [2, 3]], b = [2, 1] → x = [0.5, 0].
        let x = cholesky_solve(&[4.0, 0.0, 2.0, 3.0], &[2.0, 1.0], 2).unwrap();
        assert!((x[0] - 0.5).abs() < 1e-15 && x[1].abs() < 1e-15, "{x:?}");
        assert!(cholesky_solve(&[1.0, 0.0, 1.0, 1.0], &[1.0, 1.0], 2).is_none());
    }

    #[test]
    fn ridge_recovers_exact_line_and_intercept() {
        // y = 3 + 2·x0 − x1 exactly.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..30 {
            let (a, b) = (f64::from(i) * 0.1, f64::from(i % 7));
            x.extend([a, b]);
            y.push(3.0 + 2.0 * a - b);
        }
        let d = Dataset::unnamed(2, x, y).unwrap();
        let params = RidgeParams {
            l2: 0.0,
            ..RidgeParams::default()
        };
        let m = RidgeTrainer::new(params, &d, None)
            .unwrap()
            .finish()
            .unwrap();
        assert!((m.coefficients[0] - 2.0).abs() < 1e-10);
        assert!((m.coefficients[1] + 1.0).abs() < 1e-10);
        assert!((m.intercept - 3.0).abs() < 1e-10);
    }

    #[test]
    fn collinear_without_penalty_is_singular() {
        let x: Vec<f64> = (0..10)
            .flat_map(|i| [f64::from(i), 2.0 * f64::from(i)])
            .collect();
        let d = Dataset::unnamed(2, x, (0..10).map(f64::from).collect()).unwrap();
        let params = RidgeParams {
            l2: 0.0,
            ..RidgeParams::default()
        };
        let e = RidgeTrainer::new(params, &d, None)
            .unwrap()
            .finish()
            .unwrap_err();
        assert!(matches!(e, LearnError::Singular { .. }), "{e}");
        // A penalty makes it solvable.
        RidgeTrainer::new(RidgeParams::default(), &d, None)
            .unwrap()
            .finish()
            .unwrap();
    }

    #[test]
    fn logistic_gradient_vanishes_at_the_solution() {
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut rng = keel_stats::Rng::from_seed(3);
        for _ in 0..300 {
            let (a, b) = (rng.normal(), rng.normal());
            x.extend([a, b]);
            let p = metrics::sigmoid(0.5 + 1.5 * a - b);
            y.push(f64::from(u8::from(rng.next_f64() < p)));
        }
        let d = Dataset::unnamed(2, x, y).unwrap();
        let params = LogisticParams {
            l2: 2.0,
            ..LogisticParams::default()
        };
        let mut t = LogisticTrainer::new(params.clone(), &d, None).unwrap();
        let mut losses = Vec::new();
        while !t.is_done() {
            losses.push(t.step().unwrap().train_loss);
        }
        assert!(t.converged());
        assert!(losses.len() < 15, "{losses:?}");
        let beta = t.beta.clone();
        let sums = t.sums(&beta, false);
        // ∇ = Σ(p − y)x + l2·w must be ~0.
        for (j, b) in beta.iter().enumerate().take(2) {
            let g = sums.grad[j] + params.l2 * b;
            assert!(g.abs() < 1e-9, "grad[{j}] = {g}");
        }
        assert!(sums.grad[2].abs() < 1e-9);
        let m = t.finish();
        assert!(m.coefficients[0] > 1.0 && m.coefficients[1] < -0.5, "{m:?}");
    }

    #[test]
    fn logistic_refuses_missing_and_one_class() {
        let d = Dataset::unnamed(1, vec![0.0, f64::NAN], vec![0.0, 1.0]).unwrap();
        let e = LogisticTrainer::new(LogisticParams::default(), &d, None).unwrap_err();
        assert!(
            matches!(
                e,
                LearnError::BadFeature {
                    row: 1,
                    column: 0,
                    ..
                }
            ),
            "{e}"
        );
        let d = Dataset::unnamed(1, vec![0.0, 1.0], vec![1.0, 1.0]).unwrap();
        let e = LogisticTrainer::new(LogisticParams::default(), &d, None).unwrap_err();
        assert_eq!(e.fields(), ["labels"]);
        let bad = LogisticParams {
            l2: -1.0,
            max_iter: 0,
            ..LogisticParams::default()
        };
        let e = LogisticTrainer::new(bad, &d, None).unwrap_err();
        assert_eq!(e.fields(), ["l2", "max_iter"]);
    }
}
