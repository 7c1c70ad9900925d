//! Checks that need the whole repo (unique names, references between
//! definitions), and the check of a view against the columns of its data.

use std::collections::{HashMap, HashSet};

use super::parse::Spans;
use super::suggest::{self, hint, list};
use super::{DataType, Definition, Entity, FeatureView, Location, Problem, Repo, Source, View};

/// The problems of a repo that no single item shows. Empty names are
/// placeholders for values whose problem is already reported; they are
/// skipped, and a view with an empty feature name has features that are
/// not fully known.
pub(super) fn check(
    repo: &Repo,
    spans: &Spans,
    file_order: &[&str],
    budget: usize,
) -> Vec<Problem> {
    let mut c = Checker {
        repo,
        index: Index::new(repo),
        spans,
        problems: Vec::new(),
        budget,
    };
    c.unique_names(file_order);
    for v in &repo.feature_views {
        let mut reserved = c.entities(&v.location, &v.entities);
        if let Some(source) = c.source(&v.location, &v.source) {
            reserved.extend(source_timestamps(source));
        }
        for (i, f) in v.features.iter().enumerate() {
            c.collision(
                &v.location,
                &format!(".features[{i}].name"),
                &f.name,
                &reserved,
            );
        }
    }
    for v in &repo.stream_feature_views {
        let mut reserved = c.entities(&v.location, &v.entities);
        let source = c.source(&v.location, &v.source);
        match (&v.timestamp_field, source) {
            (Some(field), _) => {
                reserved.push((field.clone(), "this view's timestamp field".into()))
            }
            (None, Some(source)) => reserved.extend(source_timestamps(source)),
            (None, None) => {}
        }
        for (i, a) in v.aggregations.iter().enumerate() {
            c.collision(
                &v.location,
                &format!(".aggregations[{i}].name"),
                &a.name,
                &reserved,
            );
        }
    }
    for v in &repo.on_demand_feature_views {
        for (i, name) in v.sources.iter().enumerate() {
            c.on_demand_source(&v.location, i, name, &v.name);
        }
    }
    for s in &repo.feature_services {
        for (i, r) in s.features.iter().enumerate() {
            c.service_feature(&s.location, i, &r.view, r.feature.as_deref());
        }
    }
    c.problems
}

/// Name, location and noun of each definition, for the unique-name check.
fn named<T: Definition>(items: &[T]) -> impl Iterator<Item = (&str, &Location, &'static str)> {
    items
        .iter()
        .map(|d| (d.name(), d.location(), T::KIND.noun()))
}

/// Columns a view's features must not be named after, with what they are.
type Reserved = Vec<(String, String)>;

fn source_timestamps(source: &Source) -> Reserved {
    let mut out = vec![(
        source.timestamp_field.clone(),
        format!("the timestamp field of source `{}`", source.name),
    )];
    if let Some(created) = &source.created_timestamp_field {
        out.push((
            created.clone(),
            format!("the created timestamp field of source `{}`", source.name),
        ));
    }
    out
}

/// The definitions by name; the first of a duplicated name wins, as in
/// [`Repo::view`] and its siblings.
struct Index<'r> {
    entities: HashMap<&'r str, &'r Entity>,
    sources: HashMap<&'r str, &'r Source>,
    views: HashMap<&'r str, View<'r>>,
    requests: HashSet<&'r str>,
}

impl<'r> Index<'r> {
    fn new(repo: &'r Repo) -> Self {
        let mut index = Index {
            entities: HashMap::new(),
            sources: HashMap::new(),
            views: HashMap::new(),
            requests: repo
                .request_sources
                .iter()
                .map(|r| r.name.as_str())
                .collect(),
        };
        for e in &repo.entities {
            index.entities.entry(&e.name).or_insert(e);
        }
        for s in &repo.sources {
            index.sources.entry(&s.name).or_insert(s);
        }
        for v in repo.views() {
            index.views.entry(v.name()).or_insert(v);
        }
        index
    }
}

struct Checker<'r> {
    repo: &'r Repo,
    index: Index<'r>,
    spans: &'r Spans,
    problems: Vec<Problem>,
    budget: usize,
}

impl<'r> Checker<'r> {
    /// Reports at `suffix` (`.source`, `.features[0].name`) of a definition.
    fn report(&mut self, at: &Location, suffix: &str, message: impl Into<String>) {
        let path = format!("{}{suffix}", at.path);
        let (line, column) = self
            .spans
            .find(&at.file, &path)
            .map_or((at.line, at.column), |s| (s.line, s.column));
        self.problems.push(Problem {
            file: at.file.clone(),
            line,
            column,
            path,
            message: message.into(),
        });
    }

    /// "unknown entity `x`; the entities defined are: …; did you mean …?"
    fn unknown(&mut self, at: &Location, suffix: &str, kind: Ref, name: &str) {
        let mut candidates = kind.candidates(self.repo);
        candidates.retain(|c| !c.is_empty());
        let message = if candidates.is_empty() {
            format!(
                "unknown {} `{name}`: the repo defines no {}; define it under `{}:` in any file \
                 of the repo",
                kind.noun(),
                kind.plural(),
                kind.section()
            )
        } else {
            let suggestion = hint(name, &candidates, &mut self.budget);
            format!(
                "unknown {} `{name}`; the {} defined are: {}{suggestion}",
                kind.noun(),
                kind.plural(),
                list(&candidates)
            )
        };
        self.report(at, suffix, message);
    }

    fn unique_names(&mut self, file_order: &[&str]) {
        let repo = self.repo;
        let mut views: Vec<_> = named(&repo.feature_views).collect();
        views.extend(named(&repo.on_demand_feature_views));
        views.extend(named(&repo.stream_feature_views));
        views.extend(named(&repo.request_sources));
        let namespaces = [
            named(&repo.entities).collect(),
            named(&repo.sources).collect(),
            views,
            named(&repo.feature_services).collect(),
        ];
        let ranks: HashMap<&str, usize> = file_order
            .iter()
            .enumerate()
            .map(|(i, f)| (*f, i))
            .collect();
        let rank = |at: &Location| (ranks.get(at.file.as_str()).copied(), at.line, at.column);
        for mut names in namespaces {
            names.sort_by_key(|(_, at, _)| rank(at));
            let mut first: HashMap<&str, (&Location, &str)> = HashMap::new();
            for (name, at, noun) in names {
                if name.is_empty() {
                    continue;
                }
                let Some((first_at, first_noun)) = first.get(name).copied() else {
                    first.insert(name, (at, noun));
                    continue;
                };
                let message = if first_noun == noun {
                    format!("{noun} `{name}` is already defined at {first_at}; rename one of them")
                } else {
                    format!(
                        "`{name}` is already the name of the {first_noun} at {first_at}; views of \
                         every kind and request sources share one set of names, since services \
                         and on-demand views refer to them by name: rename one of them"
                    )
                };
                self.report(at, ".name", message);
            }
        }
    }

    /// Resolves a view's entities; their join keys, with what they are.
    fn entities(&mut self, at: &Location, names: &[String]) -> Reserved {
        let mut keys: Vec<(String, String)> = Vec::new();
        let mut owners: Vec<&str> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            // A name listed twice is reported where the list is read.
            if name.is_empty() || names[..i].contains(name) {
                continue;
            }
            let Some(&entity) = self.index.entities.get(name.as_str()) else {
                self.unknown(at, &format!(".entities[{i}]"), Ref::Entity, name);
                continue;
            };
            for (j, key) in entity.join_keys.iter().enumerate() {
                if key.is_empty() || entity.join_keys[..j].contains(key) {
                    continue;
                }
                if let Some(pos) = keys.iter().position(|(k, _)| k == key) {
                    let message = format!(
                        "entities `{}` and `{name}` both have the join key `{key}`; the entities \
                         of a view need distinct join keys: drop one entity or give it its own key",
                        owners[pos]
                    );
                    self.report(at, &format!(".entities[{i}]"), message);
                    continue;
                }
                keys.push((key.clone(), format!("the join key of entity `{name}`")));
                owners.push(&entity.name);
            }
        }
        keys
    }

    fn source(&mut self, at: &Location, name: &str) -> Option<&'r Source> {
        if name.is_empty() {
            return None;
        }
        let found = self.index.sources.get(name).copied();
        if found.is_none() {
            self.unknown(at, ".source", Ref::Source, name);
        }
        found
    }

    fn collision(&mut self, at: &Location, suffix: &str, feature: &str, reserved: &Reserved) {
        if feature.is_empty() {
            return;
        }
        if let Some((_, what)) = reserved.iter().find(|(name, _)| name == feature) {
            let message = format!(
                "feature `{feature}` has the name of {what}; rename the feature, since both are \
                 columns of the same rows"
            );
            self.report(at, suffix, message);
        }
    }

    fn on_demand_source(&mut self, at: &Location, i: usize, name: &str, own_name: &str) {
        if name.is_empty() {
            return;
        }
        let suffix = format!(".sources[{i}]");
        match self.index.views.get(name) {
            Some(View::Batch(_) | View::Stream(_)) => {}
            Some(View::OnDemand(_)) if name == own_name => {
                self.report(at, &suffix, "an on-demand feature view cannot read itself");
            }
            Some(View::OnDemand(_)) => {
                let message = format!(
                    "`{name}` is an on-demand feature view; on-demand views read feature views, \
                     stream feature views and request sources: list the views `{name}` reads \
                     instead"
                );
                self.report(at, &suffix, message);
            }
            None if self.index.requests.contains(name) => {}
            None => self.unknown(at, &suffix, Ref::OnDemandSource, name),
        }
    }

    fn service_feature(&mut self, at: &Location, i: usize, view: &str, feature: Option<&str>) {
        if view.is_empty() {
            return;
        }
        let suffix = format!(".features[{i}]");
        let Some(found) = self.index.views.get(view).copied() else {
            self.unknown(at, &suffix, Ref::View, view);
            return;
        };
        let Some(feature) = feature else {
            return;
        };
        let names = found.feature_names();
        if names.contains(&feature) || names.contains(&"") {
            return;
        }
        let suggestion = hint(feature, &names, &mut self.budget);
        let message = format!(
            "{} `{view}` has no feature `{feature}`; its features are: {}{suggestion}",
            found.kind().noun(),
            list(&names)
        );
        self.report(at, &suffix, message);
    }
}

/// Checks a feature view against the columns of the data it reads: the
/// source's, or what its `sql` returns when it has one. Each column is a
/// (name, type) pair, the type as [`DataType::from_column_type`] reads it
/// (`int64`, `Int64`, `Utf8`, `Timestamp(Microsecond, None)`, …), so that
/// callers need not share an Arrow version with this crate.
///
/// The source's timestamp fields must be timestamps, the view's entities'
/// join keys must be present, and each feature must be present with a type
/// its dtype accepts ([`DataType::accepts`]). Problems point at the
/// definition that expects the column.
pub fn check_against_schema(
    repo: &Repo,
    view: &FeatureView,
    columns: &[(String, String)],
) -> Vec<Problem> {
    let mut check = SchemaCheck {
        columns,
        from_sql: view.sql.is_some(),
        problems: Vec::new(),
        budget: suggest::BUDGET,
    };
    match repo.source(&view.source) {
        Some(source) => {
            let what = format!("the timestamp field of source `{}`", source.name);
            let timestamp = Some(&DataType::Timestamp);
            check.expect(
                &source.location,
                ".timestamp_field",
                &what,
                &source.timestamp_field,
                timestamp,
            );
            if let Some(created) = &source.created_timestamp_field {
                let what = format!("the created timestamp field of source `{}`", source.name);
                check.expect(
                    &source.location,
                    ".created_timestamp_field",
                    &what,
                    created,
                    timestamp,
                );
            }
        }
        None => {
            let message = format!(
                "unknown source `{}`; the repo does not define it",
                view.source
            );
            check
                .problems
                .push(problem(&view.location, ".source", message));
        }
    }
    for (i, name) in view.entities.iter().enumerate() {
        let Some(entity) = repo.entity(name) else {
            let message = format!("unknown entity `{name}`; the repo does not define it");
            check
                .problems
                .push(problem(&view.location, &format!(".entities[{i}]"), message));
            continue;
        };
        for key in &entity.join_keys {
            let what = format!("the join key of entity `{name}`");
            check.expect(&view.location, &format!(".entities[{i}]"), &what, key, None);
        }
    }
    for (i, f) in view.features.iter().enumerate() {
        let what = format!("feature `{}`", f.name);
        check.expect(
            &view.location,
            &format!(".features[{i}]"),
            &what,
            &f.name,
            Some(&f.dtype),
        );
    }
    check.problems
}

fn problem(at: &Location, suffix: &str, message: String) -> Problem {
    Problem {
        file: at.file.clone(),
        line: at.line,
        column: at.column,
        path: format!("{}{suffix}", at.path),
        message,
    }
}

struct SchemaCheck<'c> {
    columns: &'c [(String, String)],
    /// The columns are the output of the view's SQL, not the source's.
    from_sql: bool,
    problems: Vec<Problem>,
    budget: usize,
}

impl SchemaCheck<'_> {
    /// Column `name` must exist and, with `want`, hold values of that type.
    fn expect(
        &mut self,
        at: &Location,
        suffix: &str,
        what: &str,
        name: &str,
        want: Option<&DataType>,
    ) {
        let data = if self.from_sql {
            "the view's SQL"
        } else {
            "the source's data"
        };
        let Some((_, found)) = self.columns.iter().find(|(n, _)| n == name) else {
            let names: Vec<&str> = self.columns.iter().map(|(n, _)| n.as_str()).collect();
            let suggestion = hint(name, &names, &mut self.budget);
            let message = format!(
                "{data} has no column `{name}` for {what}; its columns are: {}{suggestion}",
                list(&names)
            );
            self.problems.push(problem(at, suffix, message));
            return;
        };
        let Some(want) = want else {
            return;
        };
        let message = match DataType::from_column_type(found) {
            Some(got) if want.accepts(&got) => return,
            Some(got) if *want == DataType::Timestamp => format!(
                "column `{name}` of {data} holds {got} values, but {what} must be a timestamp; \
                 name a timestamp column, or convert it in the view's `sql`"
            ),
            Some(got) => format!(
                "column `{name}` of {data} holds {got} values, but {what} is declared {want}; \
                 change the dtype, or cast the column in the view's `sql`"
            ),
            None => format!(
                "column `{name}` of {data} has type `{found}`, which Keel cannot read as {want}; \
                 cast it in the view's `sql`"
            ),
        };
        self.problems.push(problem(at, suffix, message));
    }
}

/// What a reference names.
#[derive(Clone, Copy)]
enum Ref {
    Entity,
    Source,
    /// A view of any kind, from a feature service.
    View,
    /// What an on-demand view reads: a feature view, a stream feature view
    /// or a request source.
    OnDemandSource,
}

impl Ref {
    fn noun(self) -> &'static str {
        match self {
            Ref::Entity => "entity",
            Ref::Source | Ref::OnDemandSource => "source",
            Ref::View => "view",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Ref::Entity => "entities",
            Ref::Source => "sources",
            Ref::View => "views",
            Ref::OnDemandSource => "feature views, stream feature views and request sources",
        }
    }

    fn section(self) -> &'static str {
        match self {
            Ref::Entity => "entities",
            Ref::Source => "sources",
            Ref::View | Ref::OnDemandSource => "feature_views",
        }
    }

    fn candidates(self, repo: &Repo) -> Vec<&str> {
        match self {
            Ref::Entity => repo.entities.iter().map(|e| e.name.as_str()).collect(),
            Ref::Source => repo.sources.iter().map(|s| s.name.as_str()).collect(),
            Ref::View => repo.views().map(|v| v.name()).collect(),
            Ref::OnDemandSource => {
                let views = repo.views().filter(|v| !matches!(v, View::OnDemand(_)));
                let requests = repo.request_sources.iter().map(|r| r.name.as_str());
                views.map(|v| v.name()).chain(requests).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{expect, files, ok};
    use super::super::*;
    use super::*;

    #[test]
    fn names_are_unique_across_files_and_view_kinds() {
        let found = parse_repo(&files(&[
            (
                "a.yaml",
                r#"
                entities: [{name: user, join_keys: [user_id]}]
                sources: [{name: s, path: p, timestamp_field: ts}]
                feature_views: [{name: v, source: s, features: [{name: f, dtype: int64}]}]
                "#,
            ),
            (
                "b.yaml",
                r#"
                entities: [{name: user, join_keys: [id]}]
                request_sources: [{name: v, schema: [{name: r, dtype: int64}]}]
                stream_feature_views:
                  - {name: v, source: s, aggregations: [{column: c, function: sum, window: 1h}]}
                "#,
            ),
        ]))
        .unwrap_err();
        let found: Vec<String> = found.iter().map(Problem::to_string).collect();
        assert_eq!(
            found,
            [
                "b.yaml:1:19: entities[0].name: entity `user` is already defined at a.yaml:1:12; rename one of them",
                "b.yaml:2:26: request_sources[0].name: `v` is already the name of the feature view at a.yaml:3:17; views of every kind and request sources share one set of names, since services and on-demand views refer to them by name: rename one of them",
                "b.yaml:4:12: stream_feature_views[0].name: `v` is already the name of the feature view at a.yaml:3:17; views of every kind and request sources share one set of names, since services and on-demand views refer to them by name: rename one of them",
            ]
        );
    }

    #[test]
    fn references_resolve_with_hints() {
        expect(
            r#"
            entities: [{name: user, join_keys: [user_id]}]
            sources: [{name: user_src, path: p, timestamp_field: ts}]
            feature_views:
              - {name: v, entities: [usr], source: user_scr, features: [{name: f, dtype: int64}]}
            stream_feature_views:
              - {name: w, source: nothing_like_it, aggregations: [{column: c, function: sum, window: 1h}]}
            on_demand_feature_views:
              - name: o
                sources: [v, o, req]
                features: [{name: g, dtype: int64, expression: v__f}]
            feature_services:
              - {name: svc, features: [vw, v:g, w:c_sum_1h, w:c_sum_1d, o:g]}
            "#,
            &[
                "4:26: feature_views[0].entities[0]: unknown entity `usr`; the entities defined are: user; did you mean `user`?",
                "4:40: feature_views[0].source: unknown source `user_scr`; the sources defined are: user_src; did you mean `user_src`?",
                "6:23: stream_feature_views[0].source: unknown source `nothing_like_it`; the sources defined are: user_src",
                "9:18: on_demand_feature_views[0].sources[1]: an on-demand feature view cannot read itself",
                "9:21: on_demand_feature_views[0].sources[2]: unknown source `req`; the feature views, stream feature views and request sources defined are: v, w",
                "12:28: feature_services[0].features[0]: unknown view `vw`; the views defined are: v, o, w",
                "12:32: feature_services[0].features[1]: feature view `v` has no feature `g`; its features are: f",
                "12:49: feature_services[0].features[3]: stream feature view `w` has no feature `c_sum_1d`; its features are: c_sum_1h; did you mean `c_sum_1h`?",
            ],
        );
    }

    #[test]
    fn no_entities_defined() {
        expect(
            r#"
            sources: [{name: s, path: p, timestamp_field: ts}]
            feature_views: [{name: v, entities: [user], source: s, features: [{name: f, dtype: int64}]}]
            "#,
            &[
                "2:38: feature_views[0].entities[0]: unknown entity `user`: the repo defines no entities; define it under `entities:` in any file of the repo",
            ],
        );
    }

    #[test]
    fn on_demand_sources_are_views_or_requests() {
        ok(r#"
            sources: [{name: s, path: p, timestamp_field: ts}]
            request_sources: [{name: req, schema: [{name: x, dtype: int64}]}]
            feature_views: [{name: v, source: s, features: [{name: f, dtype: int64}]}]
            stream_feature_views:
              - {name: w, source: s, aggregations: [{column: c, function: sum, window: 1h}]}
            on_demand_feature_views:
              - {name: o, sources: [v, w, req], features: [{name: g, dtype: int64, expression: v__f}]}
            "#);
        expect(
            r#"
            sources: [{name: s, path: p, timestamp_field: ts}]
            feature_views: [{name: v, source: s, features: [{name: f, dtype: int64}]}]
            on_demand_feature_views:
              - {name: o, sources: [v], features: [{name: g, dtype: int64, expression: v__f}]}
              - {name: p, sources: [o], features: [{name: h, dtype: int64, expression: o__g}]}
            "#,
            &[
                "5:25: on_demand_feature_views[1].sources[0]: `o` is an on-demand feature view; on-demand views read feature views, stream feature views and request sources: list the views `o` reads instead",
            ],
        );
    }

    #[test]
    fn features_must_not_shadow_keys_or_timestamps() {
        expect(
            r#"
            entities:
              - {name: user, join_keys: [user_id]}
              - {name: account, join_keys: [user_id]}
            sources: [{name: s, path: p, timestamp_field: ts, created_timestamp_field: created}]
            feature_views:
              - name: v
                entities: [user, account]
                source: s
                features:
                  - {name: user_id, dtype: int64}
                  - {name: ts, dtype: timestamp}
                  - {name: created, dtype: timestamp}
            stream_feature_views:
              - name: w
                entities: [user]
                source: s
                timestamp_field: event_time
                aggregations:
                  - {column: c, function: last, window: 1h, name: user_id}
                  - {column: c, function: last, window: 1h, name: event_time}
                  - {column: c, function: last, window: 1h, name: ts}
            "#,
            &[
                "7:22: feature_views[0].entities[1]: entities `user` and `account` both have the join key `user_id`; the entities of a view need distinct join keys: drop one entity or give it its own key",
                "10:16: feature_views[0].features[0].name: feature `user_id` has the name of the join key of entity `user`; rename the feature, since both are columns of the same rows",
                "11:16: feature_views[0].features[1].name: feature `ts` has the name of the timestamp field of source `s`; rename the feature, since both are columns of the same rows",
                "12:16: feature_views[0].features[2].name: feature `created` has the name of the created timestamp field of source `s`; rename the feature, since both are columns of the same rows",
                "19:55: stream_feature_views[0].aggregations[0].name: feature `user_id` has the name of the join key of entity `user`; rename the feature, since both are columns of the same rows",
                "20:55: stream_feature_views[0].aggregations[1].name: feature `event_time` has the name of this view's timestamp field; rename the feature, since both are columns of the same rows",
            ],
        );
    }

    #[test]
    fn broken_definitions_do_not_cascade() {
        // The view's features and the service's entries could not be read:
        // only those problems are reported, not unknown references.
        expect(
            r#"
            sources: [{name: s}]
            feature_views:
              - {name: v, source: s, features: 7}
            feature_services:
              - {name: svc, features: [v:anything]}
              - {name: svc2, features: [42]}
            "#,
            &[
                "1:11: sources[0].path: missing `path`: say where the data is: a path relative to the repo folder (`data/clicks.parquet`), a URL (`s3://bucket/clicks.parquet`) or a catalog dataset (`dataset:clicks`)",
                "1:11: sources[0].timestamp_field: missing `timestamp_field`: name the column with each row's event time, e.g. `timestamp_field: event_timestamp`",
                "3:36: feature_views[0].features: expected a list, found an integer; write a list of features, e.g. `- {name: clicks, dtype: int64}`",
                "6:29: feature_services[1].features[0]: expected a string, found an integer; write a view name or `VIEW:FEATURE` as a string",
            ],
        );
    }

    fn schema_repo() -> Repo {
        ok(r#"
            entities: [{name: user, join_keys: [user_id]}]
            sources: [{name: s, path: p, timestamp_field: ts, created_timestamp_field: created}]
            feature_views:
              - name: v
                entities: [user]
                source: s
                features:
                  - {name: clicks, dtype: int64}
                  - {name: spend, dtype: float64}
                  - {name: tags, dtype: list<string>}
            "#)
    }

    fn columns(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn schema_that_fits() {
        let repo = schema_repo();
        let view = &repo.feature_views[0];
        let data = columns(&[
            ("user_id", "Int64"),
            ("ts", "Timestamp(Microsecond, None)"),
            ("created", "timestamp"),
            ("clicks", "Int32"),
            ("spend", "float64"),
            ("tags", "List(Utf8)"),
            ("extra", "Decimal128(10, 2)"),
        ]);
        assert_eq!(check_against_schema(&repo, view, &data), vec![]);
    }

    #[test]
    fn schema_that_does_not_fit() {
        let repo = schema_repo();
        let view = &repo.feature_views[0];
        let data = columns(&[
            ("user", "Int64"),
            ("ts", "Int64"),
            ("clicks", "Float64"),
            ("spend", "Decimal128(10, 2)"),
            ("tags", "List(Int64)"),
        ]);
        let found: Vec<String> = check_against_schema(&repo, view, &data)
            .iter()
            .map(Problem::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "repo.yaml:2:11: sources[0].timestamp_field: column `ts` of the source's data holds int64 values, but the timestamp field of source `s` must be a timestamp; name a timestamp column, or convert it in the view's `sql`",
                "repo.yaml:2:11: sources[0].created_timestamp_field: the source's data has no column `created` for the created timestamp field of source `s`; its columns are: user, ts, clicks, spend, tags",
                "repo.yaml:4:5: feature_views[0].entities[0]: the source's data has no column `user_id` for the join key of entity `user`; its columns are: user, ts, clicks, spend, tags",
                "repo.yaml:4:5: feature_views[0].features[0]: column `clicks` of the source's data holds float64 values, but feature `clicks` is declared int64; change the dtype, or cast the column in the view's `sql`",
                "repo.yaml:4:5: feature_views[0].features[1]: column `spend` of the source's data has type `Decimal128(10, 2)`, which Keel cannot read as float64; cast it in the view's `sql`",
                "repo.yaml:4:5: feature_views[0].features[2]: column `tags` of the source's data holds list<int64> values, but feature `tags` is declared list<string>; change the dtype, or cast the column in the view's `sql`",
            ]
        );
    }
}
