//! Tree ensembles (`TreeEnsembleClassifier`, `TreeEnsembleRegressor`) evaluated
//! natively over flat arrays.
//!
//! tract's own classifier gave wrong labels on scikit-learn forests and does not
//! load gradient-boosting exports, so both operators are replaced. The
//! semantics follow the ONNX reference implementation: a NaN feature takes the
//! branch `nodes_missing_value_tracks_true` says; a binary classifier that
//! writes one class column scores `[1 - s, s]` (or `[-s, s]` before a
//! logistic or softmax); the label is the first class with the highest score.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::tract_ndarray::{Array1, Array2, ArrayView2};
use tract_onnx::tract_hir::internal::*;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("TreeEnsembleClassifier", classifier);
    reg.insert("TreeEnsembleRegressor", regressor);
}

/// How a split node compares its feature with its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Rule {
    Leaf,
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
}

fn parse_rule(mode: &str) -> TractResult<Rule> {
    Ok(match mode {
        "LEAF" => Rule::Leaf,
        "BRANCH_LEQ" => Rule::Leq,
        "BRANCH_LT" => Rule::Lt,
        "BRANCH_GTE" => Rule::Gte,
        "BRANCH_GT" => Rule::Gt,
        "BRANCH_EQ" => Rule::Eq,
        "BRANCH_NEQ" => Rule::Neq,
        other => bail!("unknown node mode {other:?}"),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

pub(crate) fn parse_post_transform(node: &NodeProto) -> TractResult<PostTransform> {
    let name: Option<String> = node.get_attr_opt("post_transform")?;
    Ok(match name.as_deref().unwrap_or("NONE") {
        "NONE" => PostTransform::None,
        "LOGISTIC" => PostTransform::Logistic,
        "SOFTMAX" => PostTransform::Softmax,
        "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
        other => bail!("{}: post_transform {other:?} is not supported", node.name),
    })
}

/// The trees of an ensemble, every node of every tree in flat arrays.
///
/// Node `i` compares `x[feature[i]]` with `threshold[i]` by `rule[i]` and goes
/// to `next_true[i]` or `next_false[i]` (global indices); a leaf's weights are
/// `leaf_output[leaf_start[i]..leaf_end[i]]` / `leaf_weight[..]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Forest {
    roots: Vec<u32>,
    feature: Vec<u32>,
    threshold: Vec<f64>,
    rule: Vec<Rule>,
    missing_true: Vec<bool>,
    next_true: Vec<u32>,
    next_false: Vec<u32>,
    leaf_start: Vec<u32>,
    leaf_end: Vec<u32>,
    leaf_output: Vec<u32>,
    leaf_weight: Vec<f32>,
    /// Features the input must have: one more than the highest id used.
    pub n_features: usize,
    /// Output columns (classes or targets).
    pub n_outputs: usize,
}

impl Eq for Forest {}

impl std::hash::Hash for Forest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.roots.hash(state);
        self.feature.hash(state);
        self.leaf_output.hash(state);
    }
}

/// The attribute lists of either operator, read from the node.
struct Attributes {
    tree_ids: Vec<i64>,
    node_ids: Vec<i64>,
    feature_ids: Vec<i64>,
    modes: Vec<String>,
    values: Vec<f64>,
    true_ids: Vec<i64>,
    false_ids: Vec<i64>,
    missing_true: Vec<bool>,
    out_tree_ids: Vec<i64>,
    out_node_ids: Vec<i64>,
    out_ids: Vec<i64>,
    out_weights: Vec<f64>,
}

fn floats(ctx: &ParsingContext, node: &NodeProto, name: &str) -> TractResult<Option<Vec<f64>>> {
    if let Some(values) = node.get_attr_opt_vec::<f32>(name)? {
        return Ok(Some(values.into_iter().map(f64::from).collect()));
    }
    let tensor_name = format!("{name}_as_tensor");
    if let Some(proto) = node.get_attr_opt::<&tract_onnx::pb::TensorProto>(&tensor_name)? {
        let tensor = ctx.load_tensor(proto)?.cast_to::<f64>()?.into_owned();
        return Ok(Some(tensor.try_as_plain_ram()?.as_slice::<f64>()?.to_vec()));
    }
    Ok(None)
}

fn ints(node: &NodeProto, name: &str) -> TractResult<Vec<i64>> {
    Ok(node.get_attr_opt_vec::<i64>(name)?.unwrap_or_default())
}

fn read_attributes(
    ctx: &ParsingContext,
    node: &NodeProto,
    prefix: &str,
) -> TractResult<Attributes> {
    let tree_ids = ints(node, "nodes_treeids")?;
    let n = tree_ids.len();
    let modes: Vec<String> = node.get_attr_opt_vec("nodes_modes")?.unwrap_or_default();
    let missing_true: Vec<bool> = ints(node, "nodes_missing_value_tracks_true")?
        .into_iter()
        .map(|v| v != 0)
        .collect();
    let attrs = Attributes {
        node_ids: ints(node, "nodes_nodeids")?,
        feature_ids: ints(node, "nodes_featureids")?,
        values: floats(ctx, node, "nodes_values")?.unwrap_or_default(),
        true_ids: ints(node, "nodes_truenodeids")?,
        false_ids: ints(node, "nodes_falsenodeids")?,
        missing_true: if missing_true.is_empty() {
            vec![false; n]
        } else {
            missing_true
        },
        modes,
        tree_ids,
        out_tree_ids: ints(node, &format!("{prefix}_treeids"))?,
        out_node_ids: ints(node, &format!("{prefix}_nodeids"))?,
        out_ids: ints(node, &format!("{prefix}_ids"))?,
        out_weights: floats(ctx, node, &format!("{prefix}_weights"))?.unwrap_or_default(),
    };
    let node_lists = [
        ("nodes_nodeids", attrs.node_ids.len()),
        ("nodes_featureids", attrs.feature_ids.len()),
        ("nodes_modes", attrs.modes.len()),
        ("nodes_values", attrs.values.len()),
        ("nodes_truenodeids", attrs.true_ids.len()),
        ("nodes_falsenodeids", attrs.false_ids.len()),
        ("nodes_missing_value_tracks_true", attrs.missing_true.len()),
    ];
    if n == 0 {
        bail!("{}: nodes_treeids is empty", node.name);
    }
    for (name, len) in node_lists {
        if len != n {
            bail!(
                "{}: {name} has {len} entries, nodes_treeids has {n}",
                node.name
            );
        }
    }
    let m = attrs.out_ids.len();
    for (name, len) in [
        (format!("{prefix}_treeids"), attrs.out_tree_ids.len()),
        (format!("{prefix}_nodeids"), attrs.out_node_ids.len()),
        (format!("{prefix}_weights"), attrs.out_weights.len()),
    ] {
        if len != m {
            bail!(
                "{}: {name} has {len} entries, {prefix}_ids has {m}",
                node.name
            );
        }
    }
    Ok(attrs)
}

impl Forest {
    fn build(attrs: &Attributes, n_outputs: usize, op: &str) -> TractResult<Forest> {
        let n = attrs.tree_ids.len();
        let mut index: HashMap<(i64, i64), u32> = HashMap::with_capacity(n);
        let mut roots: Vec<u32> = Vec::new();
        let mut seen_trees: HashMap<i64, ()> = HashMap::new();
        for i in 0..n {
            let key = (attrs.tree_ids[i], attrs.node_ids[i]);
            if index.insert(key, i as u32).is_some() {
                bail!("{op}: node {} of tree {} is defined twice", key.1, key.0);
            }
            if seen_trees.insert(attrs.tree_ids[i], ()).is_none() {
                roots.push(i as u32);
            }
        }
        let mut forest = Forest {
            roots,
            feature: Vec::with_capacity(n),
            threshold: attrs.values.clone(),
            rule: Vec::with_capacity(n),
            missing_true: attrs.missing_true.clone(),
            next_true: vec![0; n],
            next_false: vec![0; n],
            leaf_start: vec![0; n],
            leaf_end: vec![0; n],
            leaf_output: Vec::new(),
            leaf_weight: Vec::new(),
            n_features: 0,
            n_outputs,
        };
        for i in 0..n {
            let rule = parse_rule(&attrs.modes[i]).map_err(|e| format_err!("{op}: {e}"))?;
            let feature = u32::try_from(attrs.feature_ids[i])
                .map_err(|_| format_err!("{op}: negative feature id {}", attrs.feature_ids[i]))?;
            forest.rule.push(rule);
            forest.feature.push(feature);
            if rule != Rule::Leaf {
                forest.n_features = forest.n_features.max(feature as usize + 1);
                let tree = attrs.tree_ids[i];
                for (ids, next) in [
                    (&attrs.true_ids, &mut forest.next_true),
                    (&attrs.false_ids, &mut forest.next_false),
                ] {
                    next[i] = *index.get(&(tree, ids[i])).ok_or_else(|| {
                        format_err!(
                            "{op}: node {} of tree {tree} points at missing node {}",
                            attrs.node_ids[i],
                            ids[i]
                        )
                    })?;
                }
            }
        }
        // Leaf weights grouped by leaf, in the order they are listed.
        let mut by_leaf: Vec<Vec<usize>> = vec![Vec::new(); n];
        for j in 0..attrs.out_ids.len() {
            let key = (attrs.out_tree_ids[j], attrs.out_node_ids[j]);
            let leaf = *index.get(&key).ok_or_else(|| {
                format_err!(
                    "{op}: a weight names missing node {} of tree {}",
                    key.1,
                    key.0
                )
            })?;
            usize::try_from(attrs.out_ids[j])
                .ok()
                .filter(|&o| o < n_outputs)
                .ok_or_else(|| {
                    format_err!(
                        "{op}: output id {} is outside 0..{n_outputs}",
                        attrs.out_ids[j]
                    )
                })?;
            by_leaf[leaf as usize].push(j);
        }
        for (i, weights) in by_leaf.iter().enumerate() {
            forest.leaf_start[i] = forest.leaf_output.len() as u32;
            for &j in weights {
                forest.leaf_output.push(attrs.out_ids[j] as u32);
                forest.leaf_weight.push(attrs.out_weights[j] as f32);
            }
            forest.leaf_end[i] = forest.leaf_output.len() as u32;
        }
        forest.check_acyclic(op)?;
        Ok(forest)
    }

    /// A hostile file could make a "tree" that loops; every walk from a root
    /// must reach a leaf, visiting no node twice.
    fn check_acyclic(&self, op: &str) -> TractResult<()> {
        let mut visited = vec![false; self.rule.len()];
        for &root in &self.roots {
            let mut stack = vec![root];
            while let Some(i) = stack.pop() {
                let i = i as usize;
                if visited[i] {
                    bail!("{op}: the nodes do not form trees (node reached twice)");
                }
                visited[i] = true;
                if self.rule[i] != Rule::Leaf {
                    stack.push(self.next_true[i]);
                    stack.push(self.next_false[i]);
                }
            }
        }
        Ok(())
    }

    fn leaf(&self, root: u32, row: &[f64]) -> usize {
        let mut i = root as usize;
        loop {
            let rule = self.rule[i];
            if rule == Rule::Leaf {
                return i;
            }
            let x = row[self.feature[i] as usize];
            let t = self.threshold[i];
            let go_true = if x.is_nan() {
                self.missing_true[i]
            } else {
                match rule {
                    Rule::Leq => x <= t,
                    Rule::Lt => x < t,
                    Rule::Gte => x >= t,
                    Rule::Gt => x > t,
                    Rule::Eq => x == t,
                    Rule::Neq => x != t,
                    Rule::Leaf => unreachable!("handled above"),
                }
            };
            i = if go_true {
                self.next_true[i]
            } else {
                self.next_false[i]
            } as usize;
        }
    }

    /// Aggregated leaf weights per row: `rows × n_outputs`, summed in f32
    /// tree by tree as onnxruntime does, so that ties (a probability of
    /// exactly 0.5) break the same way.
    pub fn scores(&self, x: ArrayView2<f64>, aggregate: Aggregate) -> Array2<f32> {
        let rows = x.nrows();
        let init = match aggregate {
            Aggregate::Min => f32::MAX,
            Aggregate::Max => f32::MIN,
            _ => 0.0,
        };
        let mut out = Array2::from_elem((rows, self.n_outputs), init);
        let mut row_buf = Vec::with_capacity(x.ncols());
        for (r, row) in x.outer_iter().enumerate() {
            row_buf.clear();
            row_buf.extend(row.iter().copied());
            let mut acc = out.row_mut(r);
            for &root in &self.roots {
                let leaf = self.leaf(root, &row_buf);
                let (start, end) = (self.leaf_start[leaf] as usize, self.leaf_end[leaf] as usize);
                for k in start..end {
                    let o = self.leaf_output[k] as usize;
                    let w = self.leaf_weight[k];
                    match aggregate {
                        Aggregate::Sum | Aggregate::Average => acc[o] += w,
                        Aggregate::Min => acc[o] = acc[o].min(w),
                        Aggregate::Max => acc[o] = acc[o].max(w),
                    }
                }
            }
            if aggregate == Aggregate::Average {
                let trees = self.roots.len() as f32;
                acc.mapv_inplace(|v| v / trees);
            }
        }
        out
    }
}

pub(crate) fn input_matrix(
    input: &Tensor,
    n_features: usize,
    op: &str,
) -> TractResult<Array2<f64>> {
    let x = input.cast_to::<f64>()?;
    let view = x.to_plain_array_view::<f64>()?;
    let (rows, cols) = match view.shape() {
        [c] => (1, *c),
        [r, c] => (*r, *c),
        shape => bail!("{op} expects a matrix, got shape {shape:?}"),
    };
    if cols < n_features {
        bail!(
            "{op} reads feature {} but the input has {cols} columns",
            n_features - 1
        );
    }
    Ok(view.to_shape((rows, cols))?.to_owned())
}

// ---------------------------------------------------------------- classifier

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TreeClassifier {
    forest: Forest,
    labels: Arc<Tensor>,
    base_values: Option<Vec<u64>>,
    post_transform: PostTransform,
    /// Every weight names one class: the ensemble scores the positive class.
    binary: bool,
}

impl TreeClassifier {
    /// Scores after the base values, the binary layout and the post transform.
    pub fn probabilities(&self, x: ArrayView2<f64>) -> Array2<f32> {
        let mut scores = self.forest.scores(x, Aggregate::Sum);
        if let Some(base) = &self.base_values {
            add_base_values(&mut scores, base);
        }
        let classes = self.forest.n_outputs;
        if self.binary && classes == 2 {
            for mut row in scores.outer_iter_mut() {
                let positive = row[0];
                row[1] = positive;
                row[0] = match self.post_transform {
                    PostTransform::None => 1.0 - positive,
                    _ => -positive,
                };
            }
        }
        for mut row in scores.outer_iter_mut() {
            if let Some(row) = row.as_slice_mut() {
                self.post_transform.apply(row);
            }
        }
        scores
    }
}

/// Adds base values (bit patterns of f64: one for every column, or one per
/// column) to every row of scores.
fn add_base_values(scores: &mut Array2<f32>, base: &[u64]) {
    for mut row in scores.outer_iter_mut() {
        for (k, v) in row.iter_mut().enumerate() {
            *v += f64::from_bits(if base.len() == 1 { base[0] } else { base[k] }) as f32;
        }
    }
}

impl PostTransform {
    /// Applies the transform to one row of scores.
    pub(crate) fn apply(self, row: &mut [f32]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => row.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
            PostTransform::Softmax => softmax(row, false),
            PostTransform::SoftmaxZero => softmax(row, true),
        }
    }
}

/// The inference rules of a classifier: `label` (rank 1, the labels' type)
/// and `probabilities` (f32, rows × classes), one row per input row.
pub(crate) fn classifier_rules<'r, 'p: 'r>(
    s: &mut Solver<'r>,
    inputs: &'p [TensorProxy],
    outputs: &'p [TensorProxy],
    labels: DatumType,
    classes: usize,
) -> InferenceResult {
    check_input_arity(inputs, 1)?;
    check_output_arity(outputs, 2)?;
    s.equals(&outputs[0].datum_type, labels)?;
    s.equals(&outputs[1].datum_type, DatumType::F32)?;
    s.equals(&outputs[0].rank, 1)?;
    s.equals(&outputs[1].rank, 2)?;
    s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
    s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
    s.equals(&outputs[1].shape[1], classes.to_dim())?;
    Ok(())
}

fn softmax(row: &mut [f32], skip_zeros: bool) {
    let max = row.iter().copied().fold(f32::MIN, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        if skip_zeros && *v == 0.0 {
            continue;
        }
        *v = (*v - max).exp();
        sum += *v;
    }
    if sum > 0.0 {
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}

pub(crate) fn argmax(row: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, v) in row.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

fn classifier(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let ints: Option<Vec<i64>> = node.get_attr_opt_vec("classlabels_int64s")?;
    let strings: Option<Vec<String>> = node.get_attr_opt_vec("classlabels_strings")?;
    let labels = match (ints, strings) {
        (Some(i), None) if !i.is_empty() => rctensor1(&i),
        (None, Some(s)) if !s.is_empty() => rctensor1(&s),
        _ => bail!(
            "{}: exactly one of classlabels_int64s and classlabels_strings must be set",
            node.name
        ),
    };
    let attrs = read_attributes(ctx, node, "class")?;
    let classes = labels.len().max(2);
    let forest = Forest::build(&attrs, classes, "TreeEnsembleClassifier")?;
    let binary = attrs.out_ids.iter().all(|&c| c == attrs.out_ids[0]) && classes == 2;
    let base_values = floats(ctx, node, "base_values")?;
    if let Some(base) = &base_values
        && base.len() != 1
        && base.len() != classes
    {
        bail!(
            "{}: base_values has {} entries for {classes} classes",
            node.name,
            base.len()
        );
    }
    let op = TreeClassifier {
        forest,
        labels,
        base_values: base_values.map(|b| b.into_iter().map(f64::to_bits).collect()),
        post_transform: parse_post_transform(node)?,
        binary,
    };
    Ok((expand(op), vec![]))
}

impl Expansion for TreeClassifier {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifier".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        classifier_rules(
            s,
            inputs,
            outputs,
            self.labels.datum_type(),
            self.forest.n_outputs,
        )
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }
}

impl Op for TreeClassifier {
    fn name(&self) -> StaticName {
        "Keel.TreeEnsembleClassifier".into()
    }

    op_as_typed_op!();
}

impl EvalOp for TreeClassifier {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let x = input_matrix(&input, self.forest.n_features, "TreeEnsembleClassifier")?;
        let probabilities = self.probabilities(x.view());
        let picks: Vec<usize> = probabilities
            .outer_iter()
            .map(|row| argmax(row.iter().copied()))
            .collect();
        let labels: Tensor = if self.labels.datum_type() == DatumType::String {
            let names = self.labels.try_as_plain_ram()?.as_slice::<String>()?;
            let picked: Vec<String> = picks
                .iter()
                .map(|&i| names[i.min(names.len() - 1)].clone())
                .collect();
            Array1::from(picked).into()
        } else {
            let ids = self.labels.try_as_plain_ram()?.as_slice::<i64>()?;
            // A binary ensemble with one label (`[1]`) answers 0 for the negative class.
            let picked: Vec<i64> = picks
                .iter()
                .map(|&i| if i < ids.len() { ids[i] } else { 0 })
                .collect();
            Array1::from(picked).into()
        };
        let probabilities: Tensor = probabilities.into();
        Ok(tvec!(labels.into_tvalue(), probabilities.into_tvalue()))
    }
}

impl TypedOp for TreeClassifier {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        Ok(tvec!(
            self.labels.datum_type().fact([n.clone()]),
            f32::fact([n, self.forest.n_outputs.to_dim()])
        ))
    }

    as_op!();
}

// ----------------------------------------------------------------- regressor

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TreeRegressor {
    forest: Forest,
    aggregate: Aggregate,
    base_values: Option<Vec<u64>>,
}

impl TreeRegressor {
    pub fn predict(&self, x: ArrayView2<f64>) -> Array2<f32> {
        let mut out = self.forest.scores(x, self.aggregate);
        if let Some(base) = &self.base_values {
            add_base_values(&mut out, base);
        }
        out
    }
}

fn regressor(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let targets: i64 = node.get_attr_opt("n_targets")?.unwrap_or(1);
    let targets = usize::try_from(targets)
        .ok()
        .filter(|&t| t > 0)
        .ok_or_else(|| format_err!("{}: n_targets must be positive", node.name))?;
    let attrs = read_attributes(ctx, node, "target")?;
    let forest = Forest::build(&attrs, targets, "TreeEnsembleRegressor")?;
    let aggregate_name: Option<String> = node.get_attr_opt("aggregate_function")?;
    let aggregate = match aggregate_name.as_deref().unwrap_or("SUM") {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => bail!(
            "{}: aggregate_function {other:?} is not supported",
            node.name
        ),
    };
    if parse_post_transform(node)? != PostTransform::None {
        bail!(
            "{}: TreeEnsembleRegressor supports post_transform NONE only",
            node.name
        );
    }
    let base_values = floats(ctx, node, "base_values")?;
    if let Some(base) = &base_values
        && base.len() != 1
        && base.len() != targets
    {
        bail!(
            "{}: base_values has {} entries for {targets} targets",
            node.name,
            base.len()
        );
    }
    let op = TreeRegressor {
        forest,
        aggregate,
        base_values: base_values.map(|b| b.into_iter().map(f64::to_bits).collect()),
    };
    Ok((expand(op), vec![]))
}

impl Expansion for TreeRegressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.forest.n_outputs.to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for TreeRegressor {
    fn name(&self) -> StaticName {
        "Keel.TreeEnsembleRegressor".into()
    }

    op_as_typed_op!();
}

impl EvalOp for TreeRegressor {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let x = input_matrix(&input, self.forest.n_features, "TreeEnsembleRegressor")?;
        let out: Tensor = self.predict(x.view()).into();
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for TreeRegressor {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        Ok(tvec!(f32::fact([n, self.forest.n_outputs.to_dim()])))
    }

    as_op!();
}
