//! The definitions of a feature repo, read from YAML.
//!
//! A feature repo is a folder of `*.yaml`/`*.yml` files. [`load_repo`]
//! reads every one of them (recursively, in sorted order, skipping hidden
//! files and folders) and [`parse_repo`] turns their text into a typed,
//! validated [`Repo`]: entities, sources, request sources, feature views,
//! on-demand feature views, stream feature views and feature services — the
//! model Feast users know. A file holds any of these lists; a name is
//! defined once across all files.
//!
//! Reading never stops at the first mistake: every problem found comes back
//! at once as a [`Problem`] with its file, line, column and the path of the
//! value (`feature_views[1].ttl`), and a message that says what to do,
//! with "did you mean" hints for misspelt keys, types and references.
//!
//! [`plan`] compares an applied repo with a new one, like `terraform plan`;
//! [`check_against_schema`] checks a view against the columns of its data.
//! A [`Repo`] is stored as JSON (serde); every definition keeps its
//! [`Location`] so later messages can point at the file it came from.

mod check;
mod parse;
mod plan;
pub(crate) mod suggest;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::FeatureError;

pub use check::check_against_schema;
pub use plan::{Action, Change, FieldChange, Plan, plan};

/// One file of a feature repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoFile {
    /// Path relative to the repo folder, with `/` separators; problems name
    /// the file by it.
    pub path: String,
    pub text: String,
}

/// One mistake in a feature repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file, relative to the repo folder.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Where the value sits in its file, e.g. `feature_views[1].ttl`; empty
    /// for a YAML syntax error.
    pub path: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Where a definition was written, kept in the stored form so that later
/// messages (a failed materialization, a schema mismatch) can point at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The file, relative to the repo folder.
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The definition's place in its file, e.g. `feature_views[1]`.
    pub path: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Every definition of a feature repo, validated: names are unique,
/// references resolve, types and durations are well formed. Each list keeps
/// file order (files in sorted order).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Repo {
    pub entities: Vec<Entity>,
    pub sources: Vec<Source>,
    pub request_sources: Vec<RequestSource>,
    pub feature_views: Vec<FeatureView>,
    pub on_demand_feature_views: Vec<OnDemandFeatureView>,
    pub stream_feature_views: Vec<StreamFeatureView>,
    pub feature_services: Vec<FeatureService>,
}

/// What features are keyed by: a user, a driver, a (user, item) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub name: String,
    /// The columns that identify one entity, in order; never empty.
    pub join_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub location: Location,
}

/// Where a batch or stream of rows comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub name: String,
    pub path: SourcePath,
    /// The column with each row's event time, which point-in-time joins
    /// compare with the entity rows' times.
    pub timestamp_field: String,
    /// The column with each row's write time, which breaks ties between
    /// rows of the same event time (the later write wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub location: Location,
}

/// Where a source's data lives, as written in `path:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SourcePath {
    /// A file or folder relative to the repo folder.
    File(String),
    /// A URL such as `s3://bucket/key.parquet`.
    Url(String),
    /// A dataset of Keel's catalog: `dataset:NAME` (the latest version) or
    /// `dataset:NAME@VERSION`.
    Dataset {
        name: String,
        version: Option<String>,
    },
}

/// Values a request carries to on-demand feature views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestSource {
    pub name: String,
    pub schema: Vec<Field>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub location: Location,
}

/// A named, typed column: a feature or a request-time input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub dtype: DataType,
}

/// Features read from a batch source, keyed by entities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureView {
    pub name: String,
    /// Names of entities; empty for a view that is not keyed (one row of
    /// global features).
    pub entities: Vec<String>,
    /// How far back a feature row stays valid for a point-in-time join;
    /// zero means no limit.
    pub ttl: Interval,
    /// Name of a [`Source`].
    pub source: String,
    pub features: Vec<Field>,
    /// A SQL transformation over the source, whose output holds the
    /// features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// Whether the features are materialized into the online store.
    pub online: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    pub location: Location,
}

/// Features computed at request time from other views' features and
/// request inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnDemandFeatureView {
    pub name: String,
    /// Names of feature views, stream feature views or request sources.
    pub sources: Vec<String>,
    /// Request-time inputs declared in the view itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_schema: Vec<Field>,
    pub features: Vec<DerivedFeature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    pub location: Location,
}

/// A feature of an on-demand view: a SQL expression over the sources'
/// features (written `view__feature`) and request inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedFeature {
    pub name: String,
    pub dtype: DataType,
    pub expression: String,
}

/// Features aggregated over windows of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamFeatureView {
    pub name: String,
    pub entities: Vec<String>,
    /// Name of a [`Source`].
    pub source: String,
    /// The event-time column; when absent, the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_field: Option<String>,
    /// One feature each, named by [`Aggregation::name`].
    pub aggregations: Vec<Aggregation>,
    pub ttl: Interval,
    pub online: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    pub location: Location,
}

/// One windowed aggregation of a stream column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregation {
    pub column: String,
    pub function: AggFunction,
    /// Longer than zero.
    pub window: Interval,
    /// How often a sliding window advances; at most the window. Absent for
    /// a tumbling window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slide: Option<Interval>,
    /// The feature's name; when not written, `COLUMN_FUNCTION_WINDOW`
    /// (`amount_mean_1d`).
    pub name: String,
}

/// A set of features served together, usually to one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureService {
    pub name: String,
    pub features: Vec<FeatureRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    pub location: Location,
}

/// A whole view (`user_activity`) or one of its features
/// (`user_activity:clicks_1d`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FeatureRef {
    pub view: String,
    pub feature: Option<String>,
}

/// The type of a feature or column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DataType {
    Int32,
    Int64,
    Float32,
    Float64,
    String,
    Bool,
    Bytes,
    Timestamp,
    /// A list of one of the other types (lists do not nest).
    List(Box<DataType>),
}

/// How a stream column is aggregated over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggFunction {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    Last,
}

/// A length of time in whole seconds, written `0`, `30s`, `15m`, `2h`,
/// `1d` or `1w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Interval {
    seconds: u64,
}

/// The kinds of definition, in the order a plan lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Entity,
    Source,
    RequestSource,
    FeatureView,
    OnDemandFeatureView,
    StreamFeatureView,
    FeatureService,
}

impl ObjectKind {
    /// The kind as a plan line writes it: `feature_view`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Entity => "entity",
            ObjectKind::Source => "source",
            ObjectKind::RequestSource => "request_source",
            ObjectKind::FeatureView => "feature_view",
            ObjectKind::OnDemandFeatureView => "on_demand_feature_view",
            ObjectKind::StreamFeatureView => "stream_feature_view",
            ObjectKind::FeatureService => "feature_service",
        }
    }

    /// The kind in a sentence: `on-demand feature view`.
    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::Entity => "entity",
            ObjectKind::Source => "source",
            ObjectKind::RequestSource => "request source",
            ObjectKind::FeatureView => "feature view",
            ObjectKind::OnDemandFeatureView => "on-demand feature view",
            ObjectKind::StreamFeatureView => "stream feature view",
            ObjectKind::FeatureService => "feature service",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every kind of definition has; lets plans and checks treat the
/// seven kinds alike.
pub trait Definition {
    const KIND: ObjectKind;
    fn name(&self) -> &str;
    fn location(&self) -> &Location;
}

macro_rules! definitions {
    ($($type:ty => $kind:ident),* $(,)?) => {$(
        impl Definition for $type {
            const KIND: ObjectKind = ObjectKind::$kind;
            fn name(&self) -> &str {
                &self.name
            }
            fn location(&self) -> &Location {
                &self.location
            }
        }
    )*};
}

definitions!(
    Entity => Entity,
    Source => Source,
    RequestSource => RequestSource,
    FeatureView => FeatureView,
    OnDemandFeatureView => OnDemandFeatureView,
    StreamFeatureView => StreamFeatureView,
    FeatureService => FeatureService,
);

/// Any of the three kinds of feature view, as services and on-demand views
/// refer to them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum View<'r> {
    Batch(&'r FeatureView),
    OnDemand(&'r OnDemandFeatureView),
    Stream(&'r StreamFeatureView),
}

/// The parts every kind of view has, borrowed from the repo.
impl<'r> View<'r> {
    pub fn name(&self) -> &'r str {
        match self {
            View::Batch(v) => &v.name,
            View::OnDemand(v) => &v.name,
            View::Stream(v) => &v.name,
        }
    }

    /// The names of the features the view produces, in order.
    pub fn feature_names(&self) -> Vec<&'r str> {
        match self {
            View::Batch(v) => v.features.iter().map(|f| f.name.as_str()).collect(),
            View::OnDemand(v) => v.features.iter().map(|f| f.name.as_str()).collect(),
            View::Stream(v) => v.aggregations.iter().map(|a| a.name.as_str()).collect(),
        }
    }

    pub fn location(&self) -> &'r Location {
        match self {
            View::Batch(v) => &v.location,
            View::OnDemand(v) => &v.location,
            View::Stream(v) => &v.location,
        }
    }

    pub fn kind(&self) -> ObjectKind {
        match self {
            View::Batch(_) => ObjectKind::FeatureView,
            View::OnDemand(_) => ObjectKind::OnDemandFeatureView,
            View::Stream(_) => ObjectKind::StreamFeatureView,
        }
    }
}

/// Lookups by name. A validated repo has each name once; in one that is
/// not (a stored form edited by hand), the first definition wins.
impl Repo {
    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }

    pub fn request_source(&self, name: &str) -> Option<&RequestSource> {
        self.request_sources.iter().find(|s| s.name == name)
    }

    /// The feature view, on-demand or stream feature view of that name.
    pub fn view(&self, name: &str) -> Option<View<'_>> {
        self.views().find(|v| v.name() == name)
    }

    /// Every view of the three kinds: feature views first, then on-demand,
    /// then stream views.
    pub fn views(&self) -> impl Iterator<Item = View<'_>> {
        let batch = self.feature_views.iter().map(View::Batch);
        let on_demand = self.on_demand_feature_views.iter().map(View::OnDemand);
        let stream = self.stream_feature_views.iter().map(View::Stream);
        batch.chain(on_demand).chain(stream)
    }

    pub fn feature_service(&self, name: &str) -> Option<&FeatureService> {
        self.feature_services.iter().find(|s| s.name == name)
    }
}

/// Reads and validates the given files as one repo. Problems come sorted by
/// file (in the order given), line and column.
pub fn parse_repo(files: &[RepoFile]) -> Result<Repo, Vec<Problem>> {
    let parsed = parse::read(files);
    let order: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut problems = parsed.problems;
    problems.extend(check::check(
        &parsed.repo,
        &parsed.spans,
        &order,
        parsed.budget,
    ));
    if problems.is_empty() {
        return Ok(parsed.repo);
    }
    sort_problems(&mut problems, &order);
    Err(problems)
}

/// Reads every `*.yaml` and `*.yml` file below `dir` (in sorted order of
/// their paths; hidden files and folders, whose names start with `.`, are
/// skipped, and so are symbolic links to folders) and validates them as
/// one repo. A file that is not UTF-8 is a problem like any other.
pub fn load_repo(dir: &Path) -> Result<Repo, FeatureError> {
    let files = read_repo_files(dir)?;
    parse_repo(&files).map_err(FeatureError::Definitions)
}

/// The YAML files of the repo folder `dir` (at any depth, hidden ones
/// skipped), sorted by path, as [`parse_repo`] takes them; a file that is
/// not UTF-8 is a [`FeatureError::Definitions`] problem.
pub fn read_repo_files(dir: &Path) -> Result<Vec<RepoFile>, FeatureError> {
    let mut found = Vec::new();
    collect_files(dir, "", &mut found)?;
    found.sort();
    let mut files = Vec::with_capacity(found.len());
    let mut problems = Vec::new();
    for (rel, path) in &found {
        let bytes = std::fs::read(path).map_err(|source| FeatureError::Io {
            path: path.display().to_string(),
            source,
        })?;
        match String::from_utf8(bytes) {
            Ok(text) => files.push(RepoFile {
                path: rel.clone(),
                text,
            }),
            Err(e) => problems.push(not_utf8(rel, e.as_bytes(), e.utf8_error().valid_up_to())),
        }
    }
    if problems.is_empty() {
        return Ok(files);
    }
    let order: Vec<&str> = found.iter().map(|(rel, _)| rel.as_str()).collect();
    sort_problems(&mut problems, &order);
    Err(FeatureError::Definitions(problems))
}

/// The YAML files below `dir`, as (path relative to the repo, full path).
fn collect_files(
    dir: &Path,
    rel: &str,
    out: &mut Vec<(String, std::path::PathBuf)>,
) -> Result<(), FeatureError> {
    let io = |source| FeatureError::Io {
        path: dir.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let rel_name = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let path = entry.path();
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            collect_files(&path, &rel_name, out)?;
            continue;
        }
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        // A link counts when it leads to a file; links to folders are not
        // followed, so a loop of links cannot trap the walk.
        let is_file = kind.is_file() || (kind.is_symlink() && path.is_file());
        if is_file {
            out.push((rel_name, path));
        }
    }
    Ok(())
}

fn not_utf8(file: &str, bytes: &[u8], valid_up_to: usize) -> Problem {
    let valid = bytes.get(..valid_up_to).unwrap_or_default();
    let text = String::from_utf8_lossy(valid);
    let line = text.matches('\n').count() + 1;
    let column = text.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
    Problem {
        file: file.to_string(),
        line,
        column,
        path: String::new(),
        message: "the file is not UTF-8 text; save it as UTF-8".to_string(),
    }
}

fn sort_problems(problems: &mut Vec<Problem>, file_order: &[&str]) {
    let ranks: HashMap<&str, usize> = file_order
        .iter()
        .enumerate()
        .map(|(i, f)| (*f, i))
        .collect();
    let rank = |file: &str| ranks.get(file).copied();
    problems.sort_by_key(|p| (rank(&p.file), p.line, p.column));
    problems.dedup();
}

// ----- scalar forms ---------------------------------------------------------

impl DataType {
    /// The scalar type names, as written.
    pub const SCALAR_NAMES: [&'static str; 8] = [
        "int32",
        "int64",
        "float32",
        "float64",
        "string",
        "bool",
        "bytes",
        "timestamp",
    ];

    fn scalar(name: &str) -> Option<DataType> {
        Some(match name {
            "int32" => DataType::Int32,
            "int64" => DataType::Int64,
            "float32" => DataType::Float32,
            "float64" => DataType::Float64,
            "string" => DataType::String,
            "bool" => DataType::Bool,
            "bytes" => DataType::Bytes,
            "timestamp" => DataType::Timestamp,
            _ => return None,
        })
    }

    /// Reads a column type as a data source reports it: Keel's own names
    /// (any case) or Arrow's (`Int64`, `Utf8`, `LargeUtf8`, `Boolean`,
    /// `Binary`, `Timestamp(Microsecond, None)`, `List(Int64)`, …).
    pub fn from_column_type(text: &str) -> Option<DataType> {
        let t = text.trim();
        if let Ok(d) = t.to_ascii_lowercase().parse() {
            return Some(d);
        }
        let inner = |prefix: &str| {
            t.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('('))
                .and_then(|rest| rest.strip_suffix(')'))
        };
        for prefix in ["List", "LargeList", "FixedSizeList"] {
            if let Some(item) = inner(prefix) {
                // Arrow may write the item as a field: `item: Int64`,
                // `nullable Int64`, `Int64, field: 'element'`.
                let item = item.split_once(", field:").map_or(item, |(t, _)| t);
                let item = item.trim();
                let item = item.strip_prefix("nullable ").unwrap_or(item);
                let item = item.rsplit_once(": ").map_or(item, |(_, t)| t);
                let item = DataType::from_column_type(item)?;
                return (!matches!(item, DataType::List(_)))
                    .then(|| DataType::List(Box::new(item)));
            }
        }
        if inner("Timestamp").is_some() {
            return Some(DataType::Timestamp);
        }
        Some(match t {
            "Int32" => DataType::Int32,
            "Int64" => DataType::Int64,
            "Float32" => DataType::Float32,
            "Float64" => DataType::Float64,
            "Utf8" | "LargeUtf8" | "Utf8View" => DataType::String,
            "Boolean" => DataType::Bool,
            "Binary" | "LargeBinary" | "BinaryView" => DataType::Bytes,
            _ => return None,
        })
    }

    /// Whether a column of type `data` can hold this type's values without
    /// loss: the same type, or a narrower number of the same kind.
    pub fn accepts(&self, data: &DataType) -> bool {
        match (self, data) {
            (DataType::Int64, DataType::Int32) | (DataType::Float64, DataType::Float32) => true,
            (DataType::List(a), DataType::List(b)) => a.accepts(b),
            (a, b) => a == b,
        }
    }
}

impl FromStr for DataType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(item) = s.strip_prefix("list<").and_then(|r| r.strip_suffix('>')) {
            let item = item.trim();
            return match DataType::scalar(item) {
                Some(t) => Ok(DataType::List(Box::new(t))),
                None if item.starts_with("list<") => Err(format!(
                    "`{s}` nests lists; a list holds one of the scalar types"
                )),
                None => Err(format!("unknown list item type `{item}`")),
            };
        }
        DataType::scalar(s).ok_or_else(|| format!("unknown dtype `{s}`"))
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            DataType::Int32 => "int32",
            DataType::Int64 => "int64",
            DataType::Float32 => "float32",
            DataType::Float64 => "float64",
            DataType::String => "string",
            DataType::Bool => "bool",
            DataType::Bytes => "bytes",
            DataType::Timestamp => "timestamp",
            DataType::List(item) => return write!(f, "list<{item}>"),
        };
        f.write_str(name)
    }
}

impl AggFunction {
    /// Every function, in the order messages list them.
    pub const ALL: [AggFunction; 6] = [
        AggFunction::Count,
        AggFunction::Sum,
        AggFunction::Mean,
        AggFunction::Min,
        AggFunction::Max,
        AggFunction::Last,
    ];

    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            AggFunction::Count => "count",
            AggFunction::Sum => "sum",
            AggFunction::Mean => "mean",
            AggFunction::Min => "min",
            AggFunction::Max => "max",
            AggFunction::Last => "last",
        }
    }
}

impl fmt::Display for AggFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The units of an [`Interval`], largest first.
const UNITS: [(char, u64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

impl Interval {
    /// No length: as a ttl, no limit on how old a feature row may be.
    pub const ZERO: Interval = Interval { seconds: 0 };

    pub fn from_seconds(seconds: u64) -> Self {
        Interval { seconds }
    }

    pub fn seconds(self) -> u64 {
        self.seconds
    }

    pub fn is_zero(self) -> bool {
        self.seconds == 0
    }
}

impl FromStr for Interval {
    type Err = String;

    /// `0`, or a whole number and one unit: `30s`, `15m`, `2h`, `1d`, `1w`.
    fn from_str(s: &str) -> Result<Self, String> {
        const FORMS: &str = "write `0` or a whole number followed by one unit (s, m, h, d, w), \
                             e.g. 30s, 15m, 2h, 1d, 1w";
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(digits_end);
        if digits.is_empty() {
            return Err(format!("invalid duration `{s}`; {FORMS}"));
        }
        let too_long = || format!("duration `{s}` is too long; {FORMS}");
        let n: u64 = digits.parse().map_err(|_| too_long())?;
        if unit.is_empty() {
            return if n == 0 {
                Ok(Interval::ZERO)
            } else {
                Err(format!(
                    "duration `{s}` has no unit; write e.g. `{n}s`, `{n}m` or `{n}d`"
                ))
            };
        }
        let mut chars = unit.chars();
        let factor = match (chars.next(), chars.next()) {
            (Some(u), None) => UNITS.iter().find(|(c, _)| *c == u).map(|(_, f)| *f),
            _ => None,
        };
        let Some(factor) = factor else {
            return Err(if unit.chars().all(|c| c.is_ascii_alphabetic()) {
                format!("invalid duration `{s}`: unknown unit `{unit}`; {FORMS}")
            } else {
                format!("invalid duration `{s}`; {FORMS}")
            });
        };
        n.checked_mul(factor)
            .map(Interval::from_seconds)
            .ok_or_else(too_long)
    }
}

impl fmt::Display for Interval {
    /// The largest unit that divides the length exactly; `0` for zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.seconds == 0 {
            return f.write_str("0");
        }
        let (unit, factor) = UNITS
            .iter()
            .copied()
            .find(|(_, factor)| self.seconds.is_multiple_of(*factor))
            .unwrap_or(('s', 1));
        write!(f, "{}{unit}", self.seconds / factor)
    }
}

impl FromStr for SourcePath {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err(
                "the path is empty; write a file path relative to the repo folder, \
                        a URL such as `s3://bucket/data.parquet`, or `dataset:NAME`"
                    .to_string(),
            );
        }
        if let Some(rest) = s.strip_prefix("dataset:") {
            let (name, version) = match rest.split_once('@') {
                Some((name, version)) => (name, Some(version)),
                None => (rest, None),
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!(
                    "`{s}` names no dataset; write `dataset:NAME` or `dataset:NAME@VERSION`"
                ));
            }
            if version.is_some_and(|v| v.is_empty() || v.contains(char::is_whitespace)) {
                return Err(format!(
                    "`{s}` has an empty version; write `dataset:{name}@VERSION`, or leave out \
                     `@` for the latest version"
                ));
            }
            return Ok(SourcePath::Dataset {
                name: name.to_string(),
                version: version.map(str::to_string),
            });
        }
        if let Some((scheme, _)) = s.split_once("://") {
            let mut chars = scheme.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if !valid {
                return Err(format!("`{s}` is not a valid URL: bad scheme `{scheme}`"));
            }
            return Ok(SourcePath::Url(s.to_string()));
        }
        let bytes = s.as_bytes();
        let windows_drive = bytes.len() > 2
            && bytes[0].is_ascii_alphabetic()
            && bytes[1] == b':'
            && matches!(bytes[2], b'/' | b'\\');
        if s.starts_with(['/', '\\']) || windows_drive {
            return Err(format!(
                "`{s}` is an absolute path; write it relative to the repo folder so the repo \
                 works wherever it is checked out, or as a `file://` URL"
            ));
        }
        Ok(SourcePath::File(s.to_string()))
    }
}

impl fmt::Display for SourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourcePath::File(p) | SourcePath::Url(p) => f.write_str(p),
            SourcePath::Dataset {
                name,
                version: None,
            } => write!(f, "dataset:{name}"),
            SourcePath::Dataset {
                name,
                version: Some(v),
            } => write!(f, "dataset:{name}@{v}"),
        }
    }
}

impl FromStr for FeatureRef {
    type Err = String;

    /// `VIEW` or `VIEW:FEATURE`; each part non-empty.
    fn from_str(s: &str) -> Result<Self, String> {
        let (view, feature) = match s.split_once(':') {
            Some((view, feature)) => (view, Some(feature)),
            None => (s, None),
        };
        if view.is_empty() || feature.is_some_and(|f| f.is_empty() || f.contains(':')) {
            return Err(format!(
                "`{s}` is not a feature reference; write a view name (`user_activity`) for all \
                 its features or `VIEW:FEATURE` (`user_activity:clicks_1d`) for one"
            ));
        }
        Ok(FeatureRef {
            view: view.to_string(),
            feature: feature.map(str::to_string),
        })
    }
}

impl fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.feature {
            Some(feature) => write!(f, "{}:{feature}", self.view),
            None => f.write_str(&self.view),
        }
    }
}

/// Serde reads and writes these as the text a repo file holds (`1d`,
/// `list<int64>`, `dataset:clicks@3`, `view:feature`), through `FromStr`
/// and `Display`, so the stored form reads like the YAML.
macro_rules! text_form {
    ($($type:ty),*) => {$(
        impl TryFrom<String> for $type {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }

        impl From<$type> for String {
            fn from(value: $type) -> String {
                value.to_string()
            }
        }
    )*};
}

text_form!(DataType, Interval, SourcePath, FeatureRef);

/// Helpers for the unit tests of this module's files.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// The text without the indentation common to its non-blank lines and
    /// without a leading newline, so tests can indent their YAML.
    pub fn dedent(text: &str) -> String {
        let text = text.strip_prefix('\n').unwrap_or(text);
        let indent = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.len() - l.trim_start().len())
            .min()
            .unwrap_or(0);
        let lines: Vec<&str> = text
            .lines()
            .map(|l| l.get(indent..).unwrap_or(""))
            .collect();
        lines.join("\n") + "\n"
    }

    pub fn files(files: &[(&str, &str)]) -> Vec<RepoFile> {
        files
            .iter()
            .map(|(path, text)| RepoFile {
                path: path.to_string(),
                text: dedent(text),
            })
            .collect()
    }

    /// The repo of one file `repo.yaml`; panics with the problems if any.
    pub fn ok(yaml: &str) -> Repo {
        match parse_repo(&files(&[("repo.yaml", yaml)])) {
            Ok(repo) => repo,
            Err(problems) => panic!("unexpected problems:\n{}", lines(&problems)),
        }
    }

    /// The problems of one file `repo.yaml`, displayed without the file.
    pub fn problems(yaml: &str) -> Vec<String> {
        match parse_repo(&files(&[("repo.yaml", yaml)])) {
            Ok(_) => Vec::new(),
            Err(problems) => problems
                .iter()
                .map(|p| p.to_string().trim_start_matches("repo.yaml:").to_string())
                .collect(),
        }
    }

    /// Asserts the exact problems of one file.
    #[track_caller]
    pub fn expect(yaml: &str, expected: &[&str]) {
        let found = problems(yaml);
        assert!(
            found == expected,
            "expected:\n{}\nfound:\n{}",
            expected.join("\n"),
            found.join("\n")
        );
    }

    fn lines(problems: &[Problem]) -> String {
        let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        for (text, seconds) in [
            ("0", 0),
            ("0s", 0),
            ("30s", 30),
            ("15m", 900),
            ("2h", 7_200),
            ("1d", 86_400),
            ("1w", 604_800),
            ("90m", 5_400),
        ] {
            assert_eq!(
                text.parse::<Interval>(),
                Ok(Interval::from_seconds(seconds))
            );
        }
        for bad in [
            "", "d", "1", "1x", "1ms", "1h30m", "-1d", "1.5h", " 1d", "1d ", "1D",
        ] {
            assert!(bad.parse::<Interval>().is_err(), "{bad:?}");
        }
        assert!("1".parse::<Interval>().unwrap_err().contains("no unit"));
        assert!(
            "99999999999999999999s"
                .parse::<Interval>()
                .unwrap_err()
                .contains("too long")
        );
        assert!(
            "3000000000000000w"
                .parse::<Interval>()
                .unwrap_err()
                .contains("too long")
        );
        let shown: Vec<String> = [0, 30, 90, 5_400, 86_400, 172_800, 604_800, 691_200]
            .map(|s| Interval::from_seconds(s).to_string())
            .into();
        assert_eq!(shown, ["0", "30s", "90s", "90m", "1d", "2d", "1w", "8d"]);
    }

    #[test]
    fn data_types() {
        assert_eq!("int64".parse(), Ok(DataType::Int64));
        assert_eq!(
            "list<float32>".parse(),
            Ok(DataType::List(Box::new(DataType::Float32)))
        );
        assert_eq!(
            "list< string >".parse::<DataType>().map(|d| d.to_string()),
            Ok("list<string>".to_string())
        );
        assert!(
            "list<list<int64>>"
                .parse::<DataType>()
                .unwrap_err()
                .contains("nests")
        );
        assert!("list<int>".parse::<DataType>().is_err());
        assert!("Int64".parse::<DataType>().is_err(), "dtypes are lowercase");
        for name in DataType::SCALAR_NAMES {
            let d: DataType = name.parse().unwrap();
            assert_eq!(d.to_string(), name);
        }
    }

    #[test]
    fn column_types() {
        let read = DataType::from_column_type;
        assert_eq!(read("Int64"), Some(DataType::Int64));
        assert_eq!(read("INT64"), Some(DataType::Int64));
        assert_eq!(read("LargeUtf8"), Some(DataType::String));
        assert_eq!(read("Boolean"), Some(DataType::Bool));
        assert_eq!(
            read("Timestamp(Microsecond, None)"),
            Some(DataType::Timestamp)
        );
        assert_eq!(
            read("Timestamp(Nanosecond, Some(\"UTC\"))"),
            Some(DataType::Timestamp)
        );
        assert_eq!(
            read("List(Int64)"),
            Some(DataType::List(Box::new(DataType::Int64)))
        );
        assert_eq!(
            read("List(nullable Float32)"),
            Some(DataType::List(Box::new(DataType::Float32)))
        );
        assert_eq!(read("List(List(Int64))"), None, "lists do not nest");
        assert_eq!(
            read("List(item: Float64)"),
            Some(DataType::List(Box::new(DataType::Float64)))
        );
        assert_eq!(read("Decimal128(10, 2)"), None);
        assert!(DataType::Int64.accepts(&DataType::Int32));
        assert!(!DataType::Int32.accepts(&DataType::Int64));
        assert!(DataType::Float64.accepts(&DataType::Float32));
        assert!(!DataType::Float64.accepts(&DataType::Int64));
    }

    #[test]
    fn source_paths() {
        assert_eq!(
            "data/a.parquet".parse(),
            Ok(SourcePath::File("data/a.parquet".into()))
        );
        assert_eq!(
            "s3://b/k.parquet".parse(),
            Ok(SourcePath::Url("s3://b/k.parquet".into()))
        );
        assert_eq!(
            "dataset:clicks@3".parse(),
            Ok(SourcePath::Dataset {
                name: "clicks".into(),
                version: Some("3".into())
            })
        );
        assert_eq!(
            "dataset:clicks"
                .parse::<SourcePath>()
                .map(|p| p.to_string()),
            Ok("dataset:clicks".to_string())
        );
        for bad in [
            "",
            "  ",
            "/abs/x.parquet",
            "C:\\x",
            "dataset:",
            "dataset:a@",
            "1x://y",
        ] {
            assert!(bad.parse::<SourcePath>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn feature_refs() {
        assert_eq!(
            "v:f".parse(),
            Ok(FeatureRef {
                view: "v".into(),
                feature: Some("f".into())
            })
        );
        assert_eq!(
            "v".parse::<FeatureRef>().map(|r| r.to_string()),
            Ok("v".into())
        );
        for bad in ["", ":f", "v:", "v:f:g"] {
            assert!(bad.parse::<FeatureRef>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn problems_display() {
        let p = Problem {
            file: "views.yaml".into(),
            line: 3,
            column: 7,
            path: "feature_views[0].ttl".into(),
            message: "bad".into(),
        };
        assert_eq!(p.to_string(), "views.yaml:3:7: feature_views[0].ttl: bad");
        let p = Problem {
            path: String::new(),
            ..p
        };
        assert_eq!(p.to_string(), "views.yaml:3:7: bad");
    }

    #[test]
    fn not_utf8_points_at_the_bad_byte() {
        let bytes = b"a: 1\nbc: \xff\n";
        let p = not_utf8("x.yaml", bytes, 9);
        assert_eq!((p.line, p.column), (2, 5));
    }
}
