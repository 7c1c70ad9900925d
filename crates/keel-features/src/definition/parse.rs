//! From YAML text to definitions: the shape of each file and each item.
//!
//! Everything that can be checked within one item is checked here (keys,
//! types, names, durations, dtypes, duplicates inside a list); what needs
//! the whole repo (references, unique names) is left to `check`.
//!
//! An item that is a mapping is always kept, even with problems, so that
//! the checks across the repo still see it; a value that could not be read
//! is replaced by a placeholder. The placeholder for a name or reference is
//! the empty string, which no valid definition contains: `check` skips
//! empty names (their problem is already reported), and a list of features
//! holding one is taken as not fully known. Placeholders never reach a
//! caller, since any problem makes the whole repo an error.

use std::collections::{BTreeMap, HashMap, HashSet};

use keel_core::yaml::{self, Node, Span, Value};

use super::suggest::{self, hint, list};
use super::{
    AggFunction, Aggregation, DataType, DerivedFeature, Entity, FeatureRef, FeatureService,
    FeatureView, Field, Interval, Location, OnDemandFeatureView, Problem, Repo, RepoFile,
    RequestSource, Source, SourcePath, StreamFeatureView,
};

/// Files read into definitions, with the problems found on the way.
pub(super) struct Parsed {
    pub repo: Repo,
    pub spans: Spans,
    pub problems: Vec<Problem>,
    /// What is left of the "did you mean" budget.
    pub budget: usize,
}

/// Where values were written, by file and path, for checks that run after
/// the YAML trees are gone.
#[derive(Default)]
pub(super) struct Spans {
    by_file: HashMap<String, HashMap<String, Span>>,
}

impl Spans {
    /// Where the value at `path` was written or, if it was not recorded,
    /// its nearest recorded parent (`a[1].b` → `a[1]` → `a`).
    pub(super) fn find(&self, file: &str, path: &str) -> Option<Span> {
        nearest(self.by_file.get(file)?, path)
    }
}

fn nearest(spans: &HashMap<String, Span>, path: &str) -> Option<Span> {
    let mut path = path;
    loop {
        if let Some(span) = spans.get(path) {
            return Some(*span);
        }
        let cut = path.rfind(['.', '['])?;
        path = &path[..cut];
    }
}

/// Reads every file; problems are in the order found.
pub(super) fn read(files: &[RepoFile]) -> Parsed {
    let mut reader = Reader {
        file: String::new(),
        spans: HashMap::new(),
        repo: Repo::default(),
        done: Spans::default(),
        problems: Vec::new(),
        budget: suggest::BUDGET,
    };
    for file in files {
        reader.file(file);
    }
    Parsed {
        repo: reader.repo,
        spans: reader.done,
        problems: reader.problems,
        budget: reader.budget,
    }
}

const TOP_KEYS: &[&str] = &[
    "entities",
    "sources",
    "request_sources",
    "feature_views",
    "on_demand_feature_views",
    "stream_feature_views",
    "feature_services",
];
const FIELD_KEYS: &[&str] = &["name", "dtype"];

/// How one kind of definition is written.
struct Shape {
    /// The keys it may have.
    keys: &'static [&'static str],
    /// What it is called in messages: `feature view`.
    noun: &'static str,
    /// What it looks like, for a value that is not a mapping.
    looks: &'static str,
    /// What characters its name may have.
    rule: Rule,
    /// A name for the "missing `name`" hint.
    example: &'static str,
}

const ENTITY: Shape = Shape {
    keys: &["name", "join_keys", "description"],
    noun: "entity",
    looks: "an entity is a mapping such as `{name: user, join_keys: [user_id]}`",
    rule: Rule::Object,
    example: "user",
};
const SOURCE: Shape = Shape {
    keys: &[
        "name",
        "path",
        "timestamp_field",
        "created_timestamp_field",
        "description",
    ],
    noun: "source",
    looks: "a source is a mapping with `name`, `path` and `timestamp_field`",
    rule: Rule::Object,
    example: "user_activity_src",
};
const REQUEST_SOURCE: Shape = Shape {
    keys: &["name", "schema", "description"],
    noun: "request source",
    looks: "a request source is a mapping with `name` and `schema`",
    rule: Rule::Object,
    example: "request",
};
const FEATURE_VIEW: Shape = Shape {
    keys: &[
        "name",
        "entities",
        "ttl",
        "source",
        "features",
        "sql",
        "online",
        "description",
        "tags",
    ],
    noun: "feature view",
    looks: "a feature view is a mapping with `name`, `source` and `features`",
    rule: Rule::Column,
    example: "user_activity",
};
const ON_DEMAND: Shape = Shape {
    keys: &[
        "name",
        "sources",
        "request_schema",
        "features",
        "description",
        "tags",
    ],
    noun: "on-demand feature view",
    looks: "an on-demand feature view is a mapping with `name`, `sources` and `features`",
    rule: Rule::Column,
    example: "spend_per_click",
};
const STREAM: Shape = Shape {
    keys: &[
        "name",
        "entities",
        "source",
        "timestamp_field",
        "aggregations",
        "ttl",
        "online",
        "description",
        "tags",
    ],
    noun: "stream feature view",
    looks: "a stream feature view is a mapping with `name`, `source` and `aggregations`",
    rule: Rule::Column,
    example: "user_clicks_stream",
};
const SERVICE: Shape = Shape {
    keys: &["name", "features", "description", "tags"],
    noun: "feature service",
    looks: "a feature service is a mapping with `name` and `features`",
    rule: Rule::Object,
    example: "user_features",
};

/// What every definition starts with.
struct Head<'n> {
    entries: Vec<Entry<'n>>,
    location: Location,
    name: String,
}
const DERIVED_KEYS: &[&str] = &["name", "dtype", "expression"];
const AGGREGATION_KEYS: &[&str] = &["column", "function", "window", "slide", "name"];

/// What characters a name may have.
#[derive(Clone, Copy)]
enum Rule {
    /// Names that end up in column names: features, join keys, timestamp
    /// fields, and views (their features are `VIEW__FEATURE` in on-demand
    /// expressions).
    Column,
    /// Entities, sources, request sources and services.
    Object,
}

impl Rule {
    fn is_valid(self, s: &str) -> bool {
        let mut chars = s.chars();
        let Some(first) = chars.next() else {
            return false;
        };
        match self {
            Rule::Column => {
                (first.is_ascii_alphabetic() || first == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            Rule::Object => {
                (first.is_ascii_alphanumeric() || first == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            }
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Rule::Column => {
                "it must start with a letter or `_` and continue with letters, digits or `_`, \
                 since it is used in column names"
            }
            Rule::Object => {
                "it must start with a letter, digit or `_` and continue with letters, digits, \
                 `_`, `.` or `-`"
            }
        }
    }
}

/// A string-keyed entry of a mapping.
struct Entry<'n> {
    name: &'n str,
    key: &'n Node,
    value: &'n Node,
}

fn find<'a, 'n>(entries: &'a [Entry<'n>], name: &str) -> Option<&'a Entry<'n>> {
    entries.iter().find(|e| e.name == name)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `a mapping`, `an integer`, `null`.
fn a(kind: &str) -> String {
    match kind {
        "null" => "null".to_string(),
        k if k.starts_with(['a', 'e', 'i', 'o', 'u']) => format!("an {k}"),
        k => format!("a {k}"),
    }
}

/// The default name of an aggregation's feature.
fn aggregation_name(column: &str, function: AggFunction, window: Interval) -> String {
    format!("{column}_{function}_{window}")
}

struct Reader {
    /// The file being read.
    file: String,
    /// Spans recorded in the file being read.
    spans: HashMap<String, Span>,
    repo: Repo,
    /// Spans of the files already read.
    done: Spans,
    problems: Vec<Problem>,
    budget: usize,
}

impl Reader {
    // ----- reporting --------------------------------------------------------

    fn report(&mut self, span: Span, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line: span.line,
            column: span.column,
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn type_error(&mut self, node: &Node, path: &str, expected: &str, fix: &str) {
        let message = format!("expected {expected}, found {}; {fix}", a(node.kind()));
        self.report(node.span, path, message);
    }

    fn missing(&mut self, at: Span, path: &str, key: &str, fix: &str) {
        self.report(at, &join(path, key), format!("missing `{key}`: {fix}"));
    }

    fn hint(&mut self, word: &str, candidates: &[&str]) -> String {
        hint(word, candidates, &mut self.budget)
    }

    fn note(&mut self, path: &str, span: Span) {
        self.spans.insert(path.to_string(), span);
    }

    fn span_of(&self, path: &str, fallback: Span) -> Span {
        nearest(&self.spans, path).unwrap_or(fallback)
    }

    // ----- shapes -----------------------------------------------------------

    /// The string-keyed entries of a mapping; keys not in `allowed` are
    /// reported and left out.
    fn mapping<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
        owner: &str,
        fix: &str,
    ) -> Option<Vec<Entry<'n>>> {
        let Value::Map(pairs) = &node.value else {
            self.type_error(node, path, "a mapping", fix);
            return None;
        };
        let mut entries = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let Value::Str(name) = &key.value else {
                let message = format!(
                    "keys of {owner} must be strings, found {}; quote the key",
                    a(key.kind())
                );
                self.report(key.span, path, message);
                continue;
            };
            if !allowed.contains(&name.as_str()) {
                let suggestion = self.hint(name, allowed);
                let message = format!(
                    "unknown key `{name}` in {owner}; allowed keys are: {}{suggestion}",
                    list(allowed)
                );
                self.report(key.span, &join(path, name), message);
                continue;
            }
            entries.push(Entry { name, key, value });
        }
        Some(entries)
    }

    /// The items of a list; null is an empty list.
    fn sequence<'n>(&mut self, node: &'n Node, path: &str, fix: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            Value::Null => Some(&[]),
            _ => {
                self.type_error(node, path, "a list", fix);
                None
            }
        }
    }

    fn location(&mut self, node: &Node, path: &str) -> Location {
        self.note(path, node.span);
        Location {
            file: self.file.clone(),
            line: node.span.line,
            column: node.span.column,
            path: path.to_string(),
        }
    }

    // ----- scalars ----------------------------------------------------------

    fn text(&mut self, node: &Node, path: &str, fix: &str) -> Option<String> {
        self.note(path, node.span);
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            _ => {
                self.type_error(node, path, "a string", fix);
                None
            }
        }
    }

    /// An optional string that must not be blank when given.
    fn optional_text(
        &mut self,
        entries: &[Entry<'_>],
        key: &str,
        path: &str,
        fix: &str,
    ) -> Option<String> {
        let entry = find(entries, key)?;
        let path = join(path, key);
        let text = self.text(entry.value, &path, fix)?;
        if text.trim().is_empty() {
            let message = format!("`{key}` is empty; {fix}, or leave the key out");
            self.report(entry.value.span, &path, message);
        }
        Some(text)
    }

    /// A name; with a `rule`, its characters are checked too. An invalid
    /// name is kept (references to it should still resolve); a value that is
    /// not a string becomes the placeholder.
    fn name(&mut self, node: &Node, path: &str, rule: Option<Rule>, noun: &str) -> String {
        let fix = format!("write {} as a string", a(noun));
        let Some(text) = self.text(node, path, &fix) else {
            return String::new();
        };
        if let Some(rule) = rule
            && !rule.is_valid(&text)
        {
            let message = format!("invalid {noun} `{text}`: {}", rule.explain());
            self.report(node.span, path, message);
        }
        text
    }

    /// The required `name` of an item.
    fn item_name(
        &mut self,
        entries: &[Entry<'_>],
        at: Span,
        path: &str,
        rule: Rule,
        noun: &str,
        example: &str,
    ) -> String {
        match find(entries, "name") {
            Some(e) => self.name(
                e.value,
                &join(path, "name"),
                Some(rule),
                &format!("{noun} name"),
            ),
            None => {
                let fix = format!("name the {noun}, e.g. `name: {example}`");
                self.missing(at, path, "name", &fix);
                String::new()
            }
        }
    }

    /// The keys, location and name of a definition; `None` if it is not a
    /// mapping (then there is nothing to refer to).
    fn head<'n>(&mut self, node: &'n Node, path: &str, shape: &Shape) -> Option<Head<'n>> {
        let owner = a(shape.noun);
        let entries = self.mapping(node, path, shape.keys, &owner, shape.looks)?;
        let location = self.location(node, path);
        let name = self.item_name(
            &entries,
            node.span,
            path,
            shape.rule,
            shape.noun,
            shape.example,
        );
        Some(Head {
            entries,
            location,
            name,
        })
    }

    /// A list of names, each checked with `rule` if given; a value that is
    /// not a list becomes one placeholder.
    fn names(&mut self, node: &Node, path: &str, rule: Option<Rule>, noun: &str) -> Vec<String> {
        let fix = format!("write a list of {noun}s, e.g. `[a, b]`");
        let Some(items) = self.sequence(node, path, &fix) else {
            return vec![String::new()];
        };
        let names: Vec<String> = items
            .iter()
            .enumerate()
            .map(|(i, item)| self.name(item, &format!("{path}[{i}]"), rule, noun))
            .collect();
        self.no_duplicates(&names, |i| format!("{path}[{i}]"), noun, node.span);
        names
    }

    /// Reports each name already seen earlier in `names`.
    fn no_duplicates(
        &mut self,
        names: &[String],
        path_of: impl Fn(usize) -> String,
        noun: &str,
        fallback: Span,
    ) {
        let mut seen = HashSet::new();
        for (i, name) in names.iter().enumerate() {
            if !name.is_empty() && !seen.insert(name) {
                let path = path_of(i);
                let span = self.span_of(&path, fallback);
                let message =
                    format!("duplicate {noun} `{name}`: it is already listed; remove one");
                self.report(span, &path, message);
            }
        }
    }

    fn boolean(&mut self, node: &Node, path: &str, fix: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.type_error(node, path, "`true` or `false`", fix);
                None
            }
        }
    }

    fn interval(&mut self, node: &Node, path: &str) -> Option<Interval> {
        let text = match &node.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => {
                let fix = "write `0` or a number with a unit, e.g. `30s`, `15m`, `2h`, `1d`, `1w`";
                self.type_error(node, path, "a duration", fix);
                return None;
            }
        };
        match text.parse() {
            Ok(interval) => Some(interval),
            Err(message) => {
                self.report(node.span, path, message);
                None
            }
        }
    }

    fn dtype(&mut self, node: &Node, path: &str) -> Option<DataType> {
        let fix = "write a type name such as `int64`";
        let text = self.text(node, path, fix)?;
        match text.parse() {
            Ok(d) => Some(d),
            Err(message) => {
                let word = text
                    .strip_prefix("list<")
                    .and_then(|t| t.strip_suffix('>'))
                    .unwrap_or(&text);
                let suggestion = self.hint(word.trim(), &DataType::SCALAR_NAMES);
                let message = format!(
                    "{message}; use one of {}, or `list<…>` of one of them{suggestion}",
                    list(&DataType::SCALAR_NAMES)
                );
                self.report(node.span, path, message);
                None
            }
        }
    }

    fn tags(&mut self, entries: &[Entry<'_>], path: &str) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        let Some(entry) = find(entries, "tags") else {
            return tags;
        };
        let path = join(path, "tags");
        let fix = "write tags as a mapping of names to values, e.g. `{team: growth}`";
        let Value::Map(pairs) = &entry.value.value else {
            self.type_error(entry.value, &path, "a mapping", fix);
            return tags;
        };
        for (key, value) in pairs {
            let Some(k) = key.as_str() else {
                let message = format!(
                    "tag names must be strings, found {}; quote it",
                    a(key.kind())
                );
                self.report(key.span, &path, message);
                continue;
            };
            let v = match &value.value {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Float(f) if f.is_finite() => f.to_string(),
                _ => {
                    let fix = "a tag's value is a string, number or boolean";
                    self.type_error(value, &join(&path, k), "a string", fix);
                    continue;
                }
            };
            tags.insert(k.to_string(), v);
        }
        tags
    }

    /// A list of `{name, dtype}`; `noun` is what one is (`feature`).
    fn fields(&mut self, node: &Node, path: &str, noun: &str) -> Vec<Field> {
        let fix = format!("write a list of {noun}s, e.g. `- {{name: clicks, dtype: int64}}`");
        let Some(items) = self.sequence(node, path, &fix) else {
            return vec![placeholder_field()];
        };
        let mut fields = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let owner = a(noun);
            let Some(entries) = self.mapping(item, &path, FIELD_KEYS, &owner, &fix) else {
                fields.push(placeholder_field());
                continue;
            };
            self.note(&path, item.span);
            let name = self.item_name(&entries, item.span, &path, Rule::Column, noun, "clicks");
            let dtype = self.required_dtype(&entries, item.span, &path);
            fields.push(Field {
                name,
                dtype: dtype.unwrap_or(DataType::String),
            });
        }
        let names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
        self.no_duplicates(&names, |i| format!("{path}[{i}].name"), noun, node.span);
        fields
    }

    fn required_dtype(&mut self, entries: &[Entry<'_>], at: Span, path: &str) -> Option<DataType> {
        match find(entries, "dtype") {
            Some(e) => self.dtype(e.value, &join(path, "dtype")),
            None => {
                self.missing(at, path, "dtype", "give its type, e.g. `dtype: int64`");
                None
            }
        }
    }

    /// A required reference to another definition; the placeholder if absent.
    fn reference(
        &mut self,
        entries: &[Entry<'_>],
        key: &str,
        at: Span,
        path: &str,
        fix: &str,
    ) -> String {
        match find(entries, key) {
            Some(e) => self.name(e.value, &join(path, key), None, key),
            None => {
                self.missing(at, path, key, fix);
                String::new()
            }
        }
    }

    /// `ttl`, zero when absent.
    fn ttl(&mut self, entries: &[Entry<'_>], path: &str) -> Interval {
        find(entries, "ttl")
            .and_then(|e| self.interval(e.value, &join(path, "ttl")))
            .unwrap_or(Interval::ZERO)
    }

    /// `online`, true when absent.
    fn online(&mut self, entries: &[Entry<'_>], path: &str) -> bool {
        let fix = "write `online: false` to keep these features out of the online store";
        find(entries, "online")
            .and_then(|e| self.boolean(e.value, &join(path, "online"), fix))
            .unwrap_or(true)
    }

    fn description(&mut self, entries: &[Entry<'_>], path: &str) -> Option<String> {
        self.optional_text(entries, "description", path, "write a sentence")
    }

    // ----- files and items --------------------------------------------------

    fn file(&mut self, file: &RepoFile) {
        self.file = file.path.clone();
        self.read_file(&file.text);
        let spans = std::mem::take(&mut self.spans);
        self.done.by_file.insert(file.path.clone(), spans);
    }

    fn read_file(&mut self, text: &str) {
        let root = match yaml::parse(text) {
            Ok(root) => root,
            Err(e) => {
                let at = Span {
                    line: e.line,
                    column: e.column,
                    offset: 0,
                };
                let message = format!("invalid YAML: {}; fix the syntax here", e.message);
                self.report(at, "", message);
                return;
            }
        };
        if root.value == Value::Null {
            return;
        }
        let fix = "a feature repo file is a mapping with lists under `entities`, `sources`, \
                   `feature_views`, …";
        let Some(entries) = self.mapping(&root, "", TOP_KEYS, "a feature repo file", fix) else {
            return;
        };
        for entry in &entries {
            self.note(entry.name, entry.key.span);
            let noun = match entry.name {
                "entities" => "entities",
                "sources" => "sources",
                "request_sources" => "request sources",
                "feature_views" => "feature views",
                "on_demand_feature_views" => "on-demand feature views",
                "stream_feature_views" => "stream feature views",
                _ => "feature services",
            };
            let fix = format!("write the {noun} as a list of `- name: …` items");
            let Some(items) = self.sequence(entry.value, entry.name, &fix) else {
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                let path = format!("{}[{i}]", entry.name);
                match entry.name {
                    "entities" => {
                        if let Some(x) = self.entity(item, &path) {
                            self.repo.entities.push(x);
                        }
                    }
                    "sources" => {
                        if let Some(x) = self.source(item, &path) {
                            self.repo.sources.push(x);
                        }
                    }
                    "request_sources" => {
                        if let Some(x) = self.request_source(item, &path) {
                            self.repo.request_sources.push(x);
                        }
                    }
                    "feature_views" => {
                        if let Some(x) = self.feature_view(item, &path) {
                            self.repo.feature_views.push(x);
                        }
                    }
                    "on_demand_feature_views" => {
                        if let Some(x) = self.on_demand(item, &path) {
                            self.repo.on_demand_feature_views.push(x);
                        }
                    }
                    "stream_feature_views" => {
                        if let Some(x) = self.stream(item, &path) {
                            self.repo.stream_feature_views.push(x);
                        }
                    }
                    _ => {
                        if let Some(x) = self.service(item, &path) {
                            self.repo.feature_services.push(x);
                        }
                    }
                }
            }
        }
    }

    fn entity(&mut self, node: &Node, path: &str) -> Option<Entity> {
        let Head {
            entries,
            location,
            name,
        } = self.head(node, path, &ENTITY)?;
        let join_keys = match find(&entries, "join_keys") {
            Some(e) => {
                let keys_path = join(path, "join_keys");
                let keys = self.names(e.value, &keys_path, Some(Rule::Column), "join key");
                if keys.is_empty() {
                    let message =
                        "an entity needs at least one join key, e.g. `join_keys: [user_id]`";
                    self.report(e.value.span, &keys_path, message);
                }
                keys
            }
            None => {
                let fix = "list the columns that identify one entity, e.g. `join_keys: [user_id]`";
                self.missing(node.span, path, "join_keys", fix);
                vec![String::new()]
            }
        };
        Some(Entity {
            name,
            join_keys,
            description: self.description(&entries, path),
            location,
        })
    }

    fn source(&mut self, node: &Node, path: &str) -> Option<Source> {
        let Head {
            entries,
            location,
            name,
        } = self.head(node, path, &SOURCE)?;
        let source_path = match find(&entries, "path") {
            Some(e) => {
                let at = join(path, "path");
                let fix = "write a path relative to the repo folder, a URL or `dataset:NAME`";
                self.text(e.value, &at, fix)
                    .and_then(|text| match text.parse() {
                        Ok(p) => Some(p),
                        Err(message) => {
                            self.report(e.value.span, &at, message);
                            None
                        }
                    })
            }
            None => {
                let fix = "say where the data is: a path relative to the repo folder \
                           (`data/clicks.parquet`), a URL (`s3://bucket/clicks.parquet`) or a \
                           catalog dataset (`dataset:clicks`)";
                self.missing(node.span, path, "path", fix);
                None
            }
        };
        let timestamp_field = match find(&entries, "timestamp_field") {
            Some(e) => self.name(
                e.value,
                &join(path, "timestamp_field"),
                Some(Rule::Column),
                "timestamp field",
            ),
            None => {
                let fix = "name the column with each row's event time, e.g. \
                           `timestamp_field: event_timestamp`";
                self.missing(node.span, path, "timestamp_field", fix);
                String::new()
            }
        };
        let created_timestamp_field = find(&entries, "created_timestamp_field").map(|e| {
            let at = join(path, "created_timestamp_field");
            let created = self.name(e.value, &at, Some(Rule::Column), "timestamp field");
            if !created.is_empty() && created == timestamp_field {
                let message = format!(
                    "`{created}` is already the timestamp field; the created timestamp is a \
                     second column (when the row was written): name that one, or leave the key out"
                );
                self.report(e.value.span, &at, message);
            }
            created
        });
        Some(Source {
            name,
            path: source_path.unwrap_or(SourcePath::File(String::new())),
            timestamp_field,
            created_timestamp_field,
            description: self.description(&entries, path),
            location,
        })
    }

    fn request_source(&mut self, node: &Node, path: &str) -> Option<RequestSource> {
        let Head {
            entries,
            location,
            name,
        } = self.head(node, path, &REQUEST_SOURCE)?;
        let schema = match find(&entries, "schema") {
            Some(e) => {
                let at = join(path, "schema");
                let schema = self.fields(e.value, &at, "request field");
                if schema.is_empty() {
                    let message = "a request source needs at least one field, e.g. \
                                   `schema: [{name: discount, dtype: float64}]`";
                    self.report(e.value.span, &at, message);
                }
                schema
            }
            None => {
                let fix = "list the values requests carry, e.g. \
                           `schema: [{name: discount, dtype: float64}]`";
                self.missing(node.span, path, "schema", fix);
                vec![placeholder_field()]
            }
        };
        Some(RequestSource {
            name,
            schema,
            description: self.description(&entries, path),
            location,
        })
    }

    fn feature_view(&mut self, node: &Node, path: &str) -> Option<FeatureView> {
        let Head {
            entries,
            location,
            name,
        } = self.head(node, path, &FEATURE_VIEW)?;
        let entities = find(&entries, "entities")
            .map(|e| self.names(e.value, &join(path, "entities"), None, "entity"))
            .unwrap_or_default();
        let ttl = self.ttl(&entries, path);
        let fix = "name the source this view reads, e.g. `source: user_activity_src`";
        let source = self.reference(&entries, "source", node.span, path, fix);
        let features = self.required_fields(&entries, node.span, path);
        let sql = self.optional_text(&entries, "sql", path, "write a SQL query over the source");
        Some(FeatureView {
            name,
            entities,
            ttl,
            source,
            features,
            sql,
            online: self.online(&entries, path),
            description: self.description(&entries, path),
            tags: self.tags(&entries, path),
            location,
        })
    }

    /// The required, non-empty `features` of a feature view.
    fn required_fields(&mut self, entries: &[Entry<'_>], at: Span, path: &str) -> Vec<Field> {
        let Some(e) = find(entries, "features") else {
            let fix = "list the features, e.g. `features: [{name: clicks_1d, dtype: int64}]`";
            self.missing(at, path, "features", fix);
            return vec![placeholder_field()];
        };
        let at = join(path, "features");
        let features = self.fields(e.value, &at, "feature");
        if features.is_empty() {
            let message = "a feature view needs at least one feature, e.g. \
                           `features: [{name: clicks_1d, dtype: int64}]`";
            self.report(e.value.span, &at, message);
        }
        features
    }

    fn on_demand(&mut self, node: &Node, path: &str) -> Option<OnDemandFeatureView> {
        let Head {
            entries,
            location,
            name,
        } = self.head(node, path, &ON_DEMAND)?;
        let sources = match find(&entries, "sources") {
            Some(e) => {
                let at = join(path, "sources");
                let sources = self.names(e.value, &at, None, "source");
                if sources.is_empty() {
                    let message = "an on-demand view needs at least one source: the feature \
                                   views or request sources it reads";
                    self.report(e.value.span, &at, message);
                }
                sources
            }
            None => {
                let fix = "list the feature views or request sources it reads, e.g. \
                           `sources: [user_activity]`";
                self.missing(node.span, path, "sources", fix);
                vec![String::new()]
            }
        };
        let request_schema = find(&entries, "request_schema")
            .map(|e| self.fields(e.value, &join(path, "request_schema"), "request field"))
            .unwrap_or_default();
        let features = match find(&entries, "features") {
            Some(e) => self.derived_features(e.value, &join(path, "features")),
            None => {
                let fix = "list the features with their expressions, e.g. \
                           `features: [{name: ratio, dtype: float64, expression: \"a / b\"}]`";
                self.missing(node.span, path, "features", fix);
                vec![placeholder_derived()]
            }
        };
        for (i, f) in features.iter().enumerate() {
            if !f.name.is_empty() && request_schema.iter().any(|r| r.name == f.name) {
                let at = format!("{path}.features[{i}].name");
                let span = self.span_of(&at, node.span);
                let message = format!(
                    "feature `{}` has the name of a request field of this view; rename one of them",
                    f.name
                );
                self.report(span, &at, message);
            }
        }
        Some(OnDemandFeatureView {
            name,
            sources,
            request_schema,
            features,
            description: self.description(&entries, path),
            tags: self.tags(&entries, path),
            location,
        })
    }

    fn derived_features(&mut self, node: &Node, path: &str) -> Vec<DerivedFeature> {
        let fix = "write a list of `- {name: …, dtype: …, expression: …}` items";
        let Some(items) = self.sequence(node, path, fix) else {
            return vec![placeholder_derived()];
        };
        if items.is_empty() {
            let message = "an on-demand view needs at least one feature";
            self.report(node.span, path, message);
        }
        let mut features = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let Some(entries) = self.mapping(item, &path, DERIVED_KEYS, "a feature", fix) else {
                features.push(placeholder_derived());
                continue;
            };
            self.note(&path, item.span);
            let name = self.item_name(&entries, item.span, &path, Rule::Column, "feature", "ratio");
            let dtype = self.required_dtype(&entries, item.span, &path);
            let expression = match find(&entries, "expression") {
                Some(e) => {
                    let at = join(&path, "expression");
                    let fix = "write a SQL expression, e.g. \"view__a / NULLIF(view__b, 0)\"";
                    let text = self.text(e.value, &at, fix).unwrap_or_default();
                    if text.trim().is_empty() && e.value.as_str().is_some() {
                        let message = "the expression is empty; write a SQL expression over the \
                                       sources' features (`VIEW__FEATURE`) and request fields, \
                                       e.g. \"user_activity__spend_1d * 2\"";
                        self.report(e.value.span, &at, message);
                    }
                    text
                }
                None => {
                    let fix = "say how to compute it, e.g. \
                               `expression: \"user_activity__spend_1d * 2\"`";
                    self.missing(item.span, &path, "expression", fix);
                    String::new()
                }
            };
            features.push(DerivedFeature {
                name,
                dtype: dtype.unwrap_or(DataType::String),
                expression,
            });
        }
        let names: Vec<String> = features.iter().map(|f| f.name.clone()).collect();
        self.no_duplicates(
            &names,
            |i| format!("{path}[{i}].name"),
            "feature",
            node.span,
        );
        features
    }

    fn stream(&mut self, node: &Node, path: &str) -> Option<StreamFeatureView> {
        let Head {
            entries,
            location,
            name,
        } = self.head(node, path, &STREAM)?;
        let entities = find(&entries, "entities")
            .map(|e| self.names(e.value, &join(path, "entities"), None, "entity"))
            .unwrap_or_default();
        let fix = "name the stream source this view reads, e.g. `source: clicks_stream_src`";
        let source = self.reference(&entries, "source", node.span, path, fix);
        let timestamp_field = find(&entries, "timestamp_field").map(|e| {
            let at = join(path, "timestamp_field");
            self.name(e.value, &at, Some(Rule::Column), "timestamp field")
        });
        let aggregations = match find(&entries, "aggregations") {
            Some(e) => self.aggregations(e.value, &join(path, "aggregations")),
            None => {
                let fix = "list the aggregations, e.g. \
                           `aggregations: [{column: clicks, function: sum, window: 1h}]`";
                self.missing(node.span, path, "aggregations", fix);
                vec![placeholder_aggregation()]
            }
        };
        Some(StreamFeatureView {
            name,
            entities,
            source,
            timestamp_field,
            aggregations,
            ttl: self.ttl(&entries, path),
            online: self.online(&entries, path),
            description: self.description(&entries, path),
            tags: self.tags(&entries, path),
            location,
        })
    }

    fn aggregations(&mut self, node: &Node, path: &str) -> Vec<Aggregation> {
        let fix = "write a list of `- {column: …, function: …, window: …}` items";
        let Some(items) = self.sequence(node, path, fix) else {
            return vec![placeholder_aggregation()];
        };
        if items.is_empty() {
            self.report(
                node.span,
                path,
                "a stream feature view needs at least one aggregation",
            );
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let Some(entries) = self.mapping(item, &path, AGGREGATION_KEYS, "an aggregation", fix)
            else {
                out.push(placeholder_aggregation());
                continue;
            };
            self.note(&path, item.span);
            let column = match find(&entries, "column") {
                Some(e) => self.name(
                    e.value,
                    &join(&path, "column"),
                    Some(Rule::Column),
                    "column name",
                ),
                None => {
                    self.missing(
                        item.span,
                        &path,
                        "column",
                        "name the column to aggregate, e.g. `column: clicks`",
                    );
                    String::new()
                }
            };
            let function = match find(&entries, "function") {
                Some(e) => self.function(e.value, &join(&path, "function")),
                None => {
                    self.missing(
                        item.span,
                        &path,
                        "function",
                        "say how to aggregate, e.g. `function: sum`",
                    );
                    None
                }
            };
            let window = match find(&entries, "window") {
                Some(e) => {
                    let at = join(&path, "window");
                    let window = self.interval(e.value, &at);
                    if window.is_some_and(Interval::is_zero) {
                        self.report(
                            e.value.span,
                            &at,
                            "the window must be longer than 0, e.g. `window: 1h`",
                        );
                    }
                    window
                }
                None => {
                    self.missing(
                        item.span,
                        &path,
                        "window",
                        "give the window's length, e.g. `window: 1h`",
                    );
                    None
                }
            };
            let slide = find(&entries, "slide").and_then(|e| {
                let at = join(&path, "slide");
                let slide = self.interval(e.value, &at)?;
                if slide.is_zero() {
                    let message =
                        "the slide must be longer than 0; leave it out for a tumbling window";
                    self.report(e.value.span, &at, message);
                } else if let Some(window) = window
                    && slide > window
                {
                    let message = format!(
                        "the slide ({slide}) is longer than the window ({window}); a window \
                         advances by at most its length: shorten the slide or lengthen the window"
                    );
                    self.report(e.value.span, &at, message);
                }
                Some(slide)
            });
            let name = match (find(&entries, "name"), function, window) {
                (Some(e), _, _) => self.name(
                    e.value,
                    &join(&path, "name"),
                    Some(Rule::Column),
                    "feature name",
                ),
                (None, Some(function), Some(window)) if !column.is_empty() => {
                    aggregation_name(&column, function, window)
                }
                _ => String::new(),
            };
            out.push(Aggregation {
                column,
                function: function.unwrap_or(AggFunction::Count),
                window: window.unwrap_or(Interval::ZERO),
                slide,
                name,
            });
        }
        let names: Vec<String> = out.iter().map(|a| a.name.clone()).collect();
        self.no_duplicates(
            &names,
            |i| format!("{path}[{i}].name"),
            "feature name",
            node.span,
        );
        out
    }

    fn function(&mut self, node: &Node, path: &str) -> Option<AggFunction> {
        let names = AggFunction::ALL.map(AggFunction::as_str);
        let fix = format!("write one of {}", list(&names));
        let text = self.text(node, path, &fix)?;
        if let Some(f) = AggFunction::ALL.into_iter().find(|f| f.as_str() == text) {
            return Some(f);
        }
        let suggestion = self.hint(&text, &names);
        let message = format!("unknown function `{text}`; {fix}{suggestion}");
        self.report(node.span, path, message);
        None
    }

    fn service(&mut self, node: &Node, path: &str) -> Option<FeatureService> {
        let Head {
            entries,
            location,
            name,
        } = self.head(node, path, &SERVICE)?;
        let features = match find(&entries, "features") {
            Some(e) => self.feature_refs(e.value, &join(path, "features")),
            None => {
                let fix = "list whole views or `VIEW:FEATURE`s, e.g. \
                           `features: [user_activity, user_profile:age]`";
                self.missing(node.span, path, "features", fix);
                vec![placeholder_ref()]
            }
        };
        Some(FeatureService {
            name,
            features,
            description: self.description(&entries, path),
            tags: self.tags(&entries, path),
            location,
        })
    }

    fn feature_refs(&mut self, node: &Node, path: &str) -> Vec<FeatureRef> {
        let fix = "write a list such as `[user_activity, user_profile:age]`";
        let Some(items) = self.sequence(node, path, fix) else {
            return vec![placeholder_ref()];
        };
        if items.is_empty() {
            let message = "a feature service needs at least one feature or view";
            self.report(node.span, path, message);
        }
        let mut refs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let fix = "write a view name or `VIEW:FEATURE` as a string";
            let parsed = self
                .text(item, &at, fix)
                .and_then(|text| match text.parse() {
                    Ok(r) => Some(r),
                    Err(message) => {
                        self.report(item.span, &at, message);
                        None
                    }
                });
            refs.push(parsed.unwrap_or_else(placeholder_ref));
        }
        let texts: Vec<String> = refs
            .iter()
            .map(|r| {
                if r.view.is_empty() {
                    String::new()
                } else {
                    r.to_string()
                }
            })
            .collect();
        self.no_duplicates(&texts, |i| format!("{path}[{i}]"), "feature", node.span);
        refs
    }
}

fn placeholder_field() -> Field {
    Field {
        name: String::new(),
        dtype: DataType::String,
    }
}

fn placeholder_derived() -> DerivedFeature {
    DerivedFeature {
        name: String::new(),
        dtype: DataType::String,
        expression: String::new(),
    }
}

fn placeholder_aggregation() -> Aggregation {
    Aggregation {
        column: String::new(),
        function: AggFunction::Count,
        window: Interval::ZERO,
        slide: None,
        name: String::new(),
    }
}

fn placeholder_ref() -> FeatureRef {
    FeatureRef {
        view: String::new(),
        feature: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{expect, ok, problems};
    use super::super::*;

    const SAMPLE: &str = r#"
        entities:
          - name: user
            join_keys: [user_id]
            description: optional
        sources:
          - name: user_activity_src
            path: data/user_activity.parquet
            timestamp_field: event_timestamp
            created_timestamp_field: created
          - name: clicks_stream_src
            path: dataset:clicks@2
            timestamp_field: event_timestamp
        feature_views:
          - name: user_activity
            entities: [user]
            ttl: 1d
            source: user_activity_src
            features:
              - {name: clicks_1d, dtype: int64}
              - {name: spend_1d, dtype: float64}
            sql: SELECT * FROM user_activity_src
            online: true
            tags: {team: growth, tier: 1}
        on_demand_feature_views:
          - name: spend_per_click
            sources: [user_activity]
            request_schema: [{name: discount, dtype: float64}]
            features:
              - {name: spend_per_click, dtype: float64, expression: "user_activity__spend_1d / NULLIF(user_activity__clicks_1d, 0)"}
        stream_feature_views:
          - name: user_clicks_stream
            entities: [user]
            source: clicks_stream_src
            timestamp_field: event_timestamp
            aggregations:
              - {column: clicks, function: sum, window: 1h, name: clicks_sum_1h}
              - {column: amount, function: mean, window: 1d, slide: 1h}
            ttl: 7d
        feature_services:
          - name: user_features
            features: [user_activity, user_clicks_stream:amount_mean_1d]
        "#;

    #[test]
    fn the_documented_example_reads() {
        let repo = ok(SAMPLE);
        let user = &repo.entities[0];
        assert_eq!(user.join_keys, ["user_id"]);
        assert_eq!(user.description.as_deref(), Some("optional"));
        assert_eq!(
            (
                user.location.line,
                user.location.column,
                user.location.path.as_str()
            ),
            (2, 5, "entities[0]")
        );
        assert_eq!(
            repo.sources[1].path,
            SourcePath::Dataset {
                name: "clicks".into(),
                version: Some("2".into())
            }
        );
        let view = &repo.feature_views[0];
        assert_eq!(view.ttl, Interval::from_seconds(86_400));
        assert_eq!(view.features[1].dtype, DataType::Float64);
        assert!(view.online);
        assert_eq!(view.tags.get("tier").map(String::as_str), Some("1"));
        let odfv = &repo.on_demand_feature_views[0];
        assert_eq!(odfv.request_schema[0].name, "discount");
        assert!(
            odfv.features[0]
                .expression
                .starts_with("user_activity__spend_1d")
        );
        let stream = &repo.stream_feature_views[0];
        let names: Vec<&str> = stream
            .aggregations
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(names, ["clicks_sum_1h", "amount_mean_1d"]);
        assert_eq!(
            stream.aggregations[1].slide,
            Some(Interval::from_seconds(3_600))
        );
        assert_eq!(stream.ttl.to_string(), "1w");
        assert_eq!(
            repo.feature_services[0].features[1].to_string(),
            "user_clicks_stream:amount_mean_1d"
        );
    }

    #[test]
    fn defaults() {
        let repo = ok(r#"
            sources: [{name: s, path: s.parquet, timestamp_field: ts}]
            feature_views:
              - {name: v, source: s, features: [{name: f, dtype: bool}]}
            "#);
        let view = &repo.feature_views[0];
        assert!(view.online);
        assert!(view.ttl.is_zero());
        assert!(view.entities.is_empty());
        assert!(view.sql.is_none() && view.tags.is_empty());
    }

    #[test]
    fn empty_files_and_empty_lists_are_fine() {
        assert_eq!(ok(""), Repo::default());
        assert_eq!(ok("# nothing yet\n"), Repo::default());
        assert_eq!(ok("entities:\nfeature_views: []\n"), Repo::default());
    }

    #[test]
    fn yaml_errors_stop_the_file() {
        expect(
            "entities: [\n",
            &[
                "2:1: invalid YAML: while parsing a node, did not find expected node content; fix the syntax here",
            ],
        );
        let found = problems("a: 1\na: 2\n");
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("2:1: invalid YAML: duplicate key `a`"),
            "{found:?}"
        );
    }

    #[test]
    fn unknown_keys_get_hints() {
        expect(
            r#"
            entites: []
            views: []
            feature_views:
              - name: v
                source: s
                tll: 1d
                features: [{name: f, dtype: int64, dtyp: int32}]
            sources: [{name: s, path: p, timestamp_field: ts}]
            "#,
            &[
                "1:1: entites: unknown key `entites` in a feature repo file; allowed keys are: entities, sources, request_sources, feature_views, on_demand_feature_views, stream_feature_views, feature_services; did you mean `entities`?",
                "2:1: views: unknown key `views` in a feature repo file; allowed keys are: entities, sources, request_sources, feature_views, on_demand_feature_views, stream_feature_views, feature_services",
                "6:5: feature_views[0].tll: unknown key `tll` in a feature view; allowed keys are: name, entities, ttl, source, features, sql, online, description, tags; did you mean `ttl`?",
                "7:40: feature_views[0].features[0].dtyp: unknown key `dtyp` in a feature; allowed keys are: name, dtype; did you mean `dtype`?",
            ],
        );
    }

    #[test]
    fn shapes_and_missing_fields() {
        expect(
            r#"
            entities: {name: user}
            sources:
              - just a string
              - {name: s}
            feature_views:
              - {name: v}
            feature_services:
              - {features: [v]}
            "#,
            &[
                "1:11: entities: expected a list, found a mapping; write the entities as a list of `- name: …` items",
                "3:5: sources[0]: expected a mapping, found a string; a source is a mapping with `name`, `path` and `timestamp_field`",
                "4:5: sources[1].path: missing `path`: say where the data is: a path relative to the repo folder (`data/clicks.parquet`), a URL (`s3://bucket/clicks.parquet`) or a catalog dataset (`dataset:clicks`)",
                "4:5: sources[1].timestamp_field: missing `timestamp_field`: name the column with each row's event time, e.g. `timestamp_field: event_timestamp`",
                "6:5: feature_views[0].source: missing `source`: name the source this view reads, e.g. `source: user_activity_src`",
                "6:5: feature_views[0].features: missing `features`: list the features, e.g. `features: [{name: clicks_1d, dtype: int64}]`",
                "8:5: feature_services[0].name: missing `name`: name the feature service, e.g. `name: user_features`",
            ],
        );
    }

    #[test]
    fn names_must_be_well_formed() {
        expect(
            r#"
            entities:
              - {name: web-user, join_keys: [user id, 7]}
            sources: [{name: s, path: p, timestamp_field: event-time}]
            feature_views:
              - name: user-activity
                source: s
                features: [{name: 1d_clicks, dtype: int64}]
            "#,
            &[
                "2:34: entities[0].join_keys[0]: invalid join key `user id`: it must start with a letter or `_` and continue with letters, digits or `_`, since it is used in column names",
                "2:43: entities[0].join_keys[1]: expected a string, found an integer; write a join key as a string",
                "3:47: sources[0].timestamp_field: invalid timestamp field `event-time`: it must start with a letter or `_` and continue with letters, digits or `_`, since it is used in column names",
                "5:11: feature_views[0].name: invalid feature view name `user-activity`: it must start with a letter or `_` and continue with letters, digits or `_`, since it is used in column names",
                "7:23: feature_views[0].features[0].name: invalid feature name `1d_clicks`: it must start with a letter or `_` and continue with letters, digits or `_`, since it is used in column names",
            ],
        );
    }

    #[test]
    fn dtypes_durations_and_functions() {
        expect(
            r#"
            sources: [{name: s, path: p, timestamp_field: ts}]
            feature_views:
              - name: v
                source: s
                ttl: 1 day
                features:
                  - {name: a, dtype: flaot64}
                  - {name: b, dtype: list<in64>}
                  - {name: c, dtype: list<list<int64>>}
                  - {name: d, dtype: 64}
            stream_feature_views:
              - name: w
                source: s
                ttl: 5
                aggregations:
                  - {column: x, function: avg, window: 0}
                  - {column: x, function: max, window: 1h, slide: 2h}
                  - {column: x, function: min, window: 1h, slide: 0s}
                  - {column: x, function: sum, window: 1ms}
            "#,
            &[
                "5:10: feature_views[0].ttl: invalid duration `1 day`; write `0` or a whole number followed by one unit (s, m, h, d, w), e.g. 30s, 15m, 2h, 1d, 1w",
                "7:26: feature_views[0].features[0].dtype: unknown dtype `flaot64`; use one of int32, int64, float32, float64, string, bool, bytes, timestamp, or `list<…>` of one of them; did you mean `float64`?",
                "8:26: feature_views[0].features[1].dtype: unknown list item type `in64`; use one of int32, int64, float32, float64, string, bool, bytes, timestamp, or `list<…>` of one of them; did you mean `int64`?",
                "9:26: feature_views[0].features[2].dtype: `list<list<int64>>` nests lists; a list holds one of the scalar types; use one of int32, int64, float32, float64, string, bool, bytes, timestamp, or `list<…>` of one of them",
                "10:26: feature_views[0].features[3].dtype: expected a string, found an integer; write a type name such as `int64`",
                "14:10: stream_feature_views[0].ttl: duration `5` has no unit; write e.g. `5s`, `5m` or `5d`",
                "16:31: stream_feature_views[0].aggregations[0].function: unknown function `avg`; write one of count, sum, mean, min, max, last",
                "16:44: stream_feature_views[0].aggregations[0].window: the window must be longer than 0, e.g. `window: 1h`",
                "17:55: stream_feature_views[0].aggregations[1].slide: the slide (2h) is longer than the window (1h); a window advances by at most its length: shorten the slide or lengthen the window",
                "18:55: stream_feature_views[0].aggregations[2].slide: the slide must be longer than 0; leave it out for a tumbling window",
                "19:44: stream_feature_views[0].aggregations[3].window: invalid duration `1ms`: unknown unit `ms`; write `0` or a whole number followed by one unit (s, m, h, d, w), e.g. 30s, 15m, 2h, 1d, 1w",
            ],
        );
    }

    #[test]
    fn duplicates_within_an_item() {
        expect(
            r#"
            entities: [{name: e, join_keys: [k, k]}]
            sources: [{name: s, path: p, timestamp_field: ts, created_timestamp_field: ts}]
            feature_views:
              - name: v
                entities: [e, e]
                source: s
                features: [{name: f, dtype: int64}, {name: f, dtype: string}]
            stream_feature_views:
              - name: w
                source: s
                aggregations:
                  - {column: x, function: sum, window: 1h}
                  - {column: y, function: sum, window: 1h, name: x_sum_1h}
            feature_services:
              - {name: svc, features: [v, w, v]}
            "#,
            &[
                "1:37: entities[0].join_keys[1]: duplicate join key `k`: it is already listed; remove one",
                "2:76: sources[0].created_timestamp_field: `ts` is already the timestamp field; the created timestamp is a second column (when the row was written): name that one, or leave the key out",
                "5:19: feature_views[0].entities[1]: duplicate entity `e`: it is already listed; remove one",
                "7:48: feature_views[0].features[1].name: duplicate feature `f`: it is already listed; remove one",
                "13:54: stream_feature_views[0].aggregations[1].name: duplicate feature name `x_sum_1h`: it is already listed; remove one",
                "15:34: feature_services[0].features[2]: duplicate feature `v`: it is already listed; remove one",
            ],
        );
    }

    #[test]
    fn on_demand_views() {
        expect(
            r#"
            sources: [{name: s, path: p, timestamp_field: ts}]
            feature_views: [{name: v, source: s, features: [{name: f, dtype: int64}]}]
            on_demand_feature_views:
              - name: o
                sources: []
                request_schema: [{name: discount, dtype: float64}]
                features:
                  - {name: discount, dtype: float64, expression: "v__f * 2"}
                  - {name: empty, dtype: float64, expression: "  "}
                  - {name: absent, dtype: float64}
            "#,
            &[
                "5:14: on_demand_feature_views[0].sources: an on-demand view needs at least one source: the feature views or request sources it reads",
                "8:16: on_demand_feature_views[0].features[0].name: feature `discount` has the name of a request field of this view; rename one of them",
                "9:51: on_demand_feature_views[0].features[1].expression: the expression is empty; write a SQL expression over the sources' features (`VIEW__FEATURE`) and request fields, e.g. \"user_activity__spend_1d * 2\"",
                "10:9: on_demand_feature_views[0].features[2].expression: missing `expression`: say how to compute it, e.g. `expression: \"user_activity__spend_1d * 2\"`",
            ],
        );
    }

    #[test]
    fn sources_and_values() {
        expect(
            r#"
            entities: [{name: e, join_keys: []}]
            sources:
              - {name: a, path: /data/a.parquet, timestamp_field: ts}
              - {name: b, path: "dataset:", timestamp_field: ts, description: ""}
            feature_views:
              - name: v
                source: a
                online: yes
                sql: 42
                tags: {team: {name: growth}, 1: x}
                features: []
            "#,
            &[
                "1:33: entities[0].join_keys: an entity needs at least one join key, e.g. `join_keys: [user_id]`",
                "3:21: sources[0].path: `/data/a.parquet` is an absolute path; write it relative to the repo folder so the repo works wherever it is checked out, or as a `file://` URL",
                "4:21: sources[1].path: `dataset:` names no dataset; write `dataset:NAME` or `dataset:NAME@VERSION`",
                "4:67: sources[1].description: `description` is empty; write a sentence, or leave the key out",
                "8:13: feature_views[0].online: expected `true` or `false`, found a string; write `online: false` to keep these features out of the online store",
                "9:10: feature_views[0].sql: expected a string, found an integer; write a SQL query over the source",
                "10:18: feature_views[0].tags.team: expected a string, found a mapping; a tag's value is a string, number or boolean",
                "10:34: feature_views[0].tags: tag names must be strings, found an integer; quote it",
                "11:15: feature_views[0].features: a feature view needs at least one feature, e.g. `features: [{name: clicks_1d, dtype: int64}]`",
            ],
        );
    }

    #[test]
    fn file_roots_must_be_mappings() {
        expect(
            "- entities: []\n",
            &[
                "1:1: expected a mapping, found a sequence; a feature repo file is a mapping with lists under `entities`, `sources`, `feature_views`, …",
            ],
        );
        expect(
            "7: []\n",
            &["1:1: keys of a feature repo file must be strings, found an integer; quote the key"],
        );
    }
}
