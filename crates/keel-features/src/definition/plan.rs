//! What applying a repo over the applied one would change, like
//! `terraform plan` or `feast plan`.
//!
//! Definitions are matched by kind and name; a definition that only moved
//! to another file or line is unchanged.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::{
    Definition, Entity, FeatureService, FeatureView, Field, ObjectKind, OnDemandFeatureView, Repo,
    RequestSource, Source, StreamFeatureView,
};

/// What happens to one definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
    Unchanged,
}

/// One definition in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: ObjectKind,
    pub name: String,
    pub action: Action,
    /// For an update, what changed, field by field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// How one field of a definition changes: `ttl: 1d → 2d`,
/// `features: +spend_7d -clicks_1d ~spend_1d (int64 → float64)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub summary: String,
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.summary)
    }
}

/// Every definition of the two repos, sorted by kind and name. Displays as
/// one line per definition created (`+`), updated (`~`) or deleted (`-`),
/// then a summary line.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::Unchanged)
    }

    /// How many definitions get `action`.
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unchanged = self.count(Action::Unchanged);
        if !self.has_changes() {
            return match unchanged {
                0 => writeln!(f, "No changes: both repos are empty."),
                1 => writeln!(f, "No changes: 1 definition is up to date."),
                n => writeln!(f, "No changes: {n} definitions are up to date."),
            };
        }
        for c in &self.changes {
            let sign = match c.action {
                Action::Create => '+',
                Action::Update => '~',
                Action::Delete => '-',
                Action::Unchanged => continue,
            };
            write!(f, "{sign} {} {}", c.kind, c.name)?;
            if !c.fields.is_empty() {
                let fields: Vec<String> = c.fields.iter().map(FieldChange::to_string).collect();
                write!(f, " ({})", fields.join("; "))?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "Plan: {} to create, {} to update, {} to delete, {unchanged} unchanged.",
            self.count(Action::Create),
            self.count(Action::Update),
            self.count(Action::Delete),
        )
    }
}

/// What applying `next` over `current` would do.
pub fn plan(current: &Repo, next: &Repo) -> Plan {
    let mut changes = Vec::new();
    compare(&current.entities, &next.entities, &mut changes);
    compare(&current.sources, &next.sources, &mut changes);
    compare(
        &current.request_sources,
        &next.request_sources,
        &mut changes,
    );
    compare(&current.feature_views, &next.feature_views, &mut changes);
    compare(
        &current.on_demand_feature_views,
        &next.on_demand_feature_views,
        &mut changes,
    );
    compare(
        &current.stream_feature_views,
        &next.stream_feature_views,
        &mut changes,
    );
    compare(
        &current.feature_services,
        &next.feature_services,
        &mut changes,
    );
    Plan { changes }
}

fn compare<T: Planned>(current: &[T], next: &[T], out: &mut Vec<Change>) {
    let old: BTreeMap<&str, &T> = current.iter().map(|d| (d.name(), d)).collect();
    let new: BTreeMap<&str, &T> = next.iter().map(|d| (d.name(), d)).collect();
    let mut names: Vec<&str> = old.keys().chain(new.keys()).copied().collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let (action, fields) = match (old.get(name), new.get(name)) {
            (None, _) => (Action::Create, Vec::new()),
            (_, None) => (Action::Delete, Vec::new()),
            (Some(a), Some(b)) => {
                let fields: Vec<FieldChange> = a
                    .fields()
                    .into_iter()
                    .zip(b.fields())
                    .filter_map(|((field, a), (_, b))| diff(field, &a, &b))
                    .collect();
                let action = if fields.is_empty() {
                    Action::Unchanged
                } else {
                    Action::Update
                };
                (action, fields)
            }
        };
        out.push(Change {
            kind: T::KIND,
            name: name.to_string(),
            action,
            fields,
        });
    }
}

/// A field's value, as a plan compares it.
#[derive(PartialEq)]
enum Value {
    Text(Option<String>),
    /// Keyed items (features, tags) with a detail each (a dtype, a value):
    /// compared item by item.
    Items(Vec<(String, String)>),
}

/// A definition's fields as a plan compares them, in a fixed order (the
/// location is left out: moving a definition changes nothing).
trait Planned: Definition {
    fn fields(&self) -> Vec<(&'static str, Value)>;
}

fn text(value: impl fmt::Display) -> Value {
    Value::Text(Some(value.to_string()))
}

fn optional(value: &Option<impl fmt::Display>) -> Value {
    Value::Text(value.as_ref().map(|v| v.to_string()))
}

fn names(names: &[String]) -> Value {
    text(format!("[{}]", names.join(", ")))
}

fn schema(fields: &[Field]) -> Value {
    Value::Items(
        fields
            .iter()
            .map(|f| (f.name.clone(), f.dtype.to_string()))
            .collect(),
    )
}

fn tags(tags: &BTreeMap<String, String>) -> Value {
    Value::Items(tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Longest value a plan line shows in full.
const SHORT: usize = 40;

fn short(s: &str) -> bool {
    s.chars().count() <= SHORT && !s.contains('\n')
}

fn diff(field: &str, old: &Value, new: &Value) -> Option<FieldChange> {
    if old == new {
        return None;
    }
    let summary = match (old, new) {
        (Value::Items(old), Value::Items(new)) => items_diff(old, new),
        (Value::Text(a), Value::Text(b)) => {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_string());
            let (a, b) = (show(a), show(b));
            if short(&a) && short(&b) {
                format!("{a} → {b}")
            } else {
                "changed".to_string()
            }
        }
        _ => "changed".to_string(),
    };
    Some(FieldChange {
        field: field.to_string(),
        summary,
    })
}

/// `+added -removed ~changed (old → new)`, or `reordered`.
fn items_diff(old: &[(String, String)], new: &[(String, String)]) -> String {
    let find = |items: &[(String, String)], key: &str| {
        items
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, detail)| detail.clone())
    };
    let mut parts = Vec::new();
    for (key, _) in new {
        if find(old, key).is_none() {
            parts.push(format!("+{key}"));
        }
    }
    for (key, _) in old {
        if find(new, key).is_none() {
            parts.push(format!("-{key}"));
        }
    }
    for (key, before) in old {
        match find(new, key) {
            Some(after) if after != *before && short(before) && short(&after) => {
                parts.push(format!("~{key} ({before} → {after})"));
            }
            Some(after) if after != *before => parts.push(format!("~{key}")),
            _ => {}
        }
    }
    if parts.is_empty() {
        "reordered".to_string()
    } else {
        parts.join(" ")
    }
}

impl Planned for Entity {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("join_keys", names(&self.join_keys)),
            ("description", optional(&self.description)),
        ]
    }
}

impl Planned for Source {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("path", text(&self.path)),
            ("timestamp_field", text(&self.timestamp_field)),
            (
                "created_timestamp_field",
                optional(&self.created_timestamp_field),
            ),
            ("description", optional(&self.description)),
        ]
    }
}

impl Planned for RequestSource {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("schema", schema(&self.schema)),
            ("description", optional(&self.description)),
        ]
    }
}

impl Planned for FeatureView {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("entities", names(&self.entities)),
            ("ttl", text(self.ttl)),
            ("source", text(&self.source)),
            ("features", schema(&self.features)),
            ("sql", optional(&self.sql)),
            ("online", text(self.online)),
            ("description", optional(&self.description)),
            ("tags", tags(&self.tags)),
        ]
    }
}

impl Planned for OnDemandFeatureView {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let features = self
            .features
            .iter()
            .map(|f| (f.name.clone(), format!("{} = {}", f.dtype, f.expression)))
            .collect();
        vec![
            ("sources", names(&self.sources)),
            ("request_schema", schema(&self.request_schema)),
            ("features", Value::Items(features)),
            ("description", optional(&self.description)),
            ("tags", tags(&self.tags)),
        ]
    }
}

impl Planned for StreamFeatureView {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let aggregations = self
            .aggregations
            .iter()
            .map(|a| {
                let mut detail = format!("{}({}) over {}", a.function, a.column, a.window);
                if let Some(slide) = a.slide {
                    detail.push_str(&format!(" every {slide}"));
                }
                (a.name.clone(), detail)
            })
            .collect();
        vec![
            ("entities", names(&self.entities)),
            ("source", text(&self.source)),
            ("timestamp_field", optional(&self.timestamp_field)),
            ("aggregations", Value::Items(aggregations)),
            ("ttl", text(self.ttl)),
            ("online", text(self.online)),
            ("description", optional(&self.description)),
            ("tags", tags(&self.tags)),
        ]
    }
}

impl Planned for FeatureService {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let features = self
            .features
            .iter()
            .map(|r| (r.to_string(), String::new()))
            .collect();
        vec![
            ("features", Value::Items(features)),
            ("description", optional(&self.description)),
            ("tags", tags(&self.tags)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::ok;
    use super::*;

    const BEFORE: &str = r#"
        entities:
          - {name: user, join_keys: [user_id]}
          - {name: old, join_keys: [old_id]}
        sources: [{name: s, path: a.parquet, timestamp_field: ts}]
        feature_views:
          - name: user_activity
            entities: [user]
            ttl: 1d
            source: s
            features:
              - {name: clicks_1d, dtype: int64}
              - {name: spend_1d, dtype: int64}
            tags: {team: growth}
        feature_services:
          - {name: svc, features: [user_activity]}
        "#;

    const AFTER: &str = r#"
        entities:
          - {name: user, join_keys: [user_id]}
          - {name: driver, join_keys: [driver_id]}
        sources: [{name: s, path: a.parquet, timestamp_field: ts}]
        feature_views:
          - name: user_activity
            entities: [user]
            ttl: 2d
            source: s
            features:
              - {name: spend_1d, dtype: float64}
              - {name: spend_7d, dtype: float64}
            tags: {team: ads, owner: kim}
        feature_services:
          - {name: svc, features: [user_activity]}
        "#;

    #[test]
    fn creates_updates_and_deletes() {
        let plan = plan(&ok(BEFORE), &ok(AFTER));
        assert_eq!(
            plan.to_string(),
            "+ entity driver\n\
             - entity old\n\
             ~ feature_view user_activity (ttl: 1d → 2d; features: +spend_7d -clicks_1d \
             ~spend_1d (int64 → float64); tags: +owner ~team (growth → ads))\n\
             Plan: 1 to create, 1 to update, 1 to delete, 3 unchanged.\n"
        );
        assert!(plan.has_changes());
        assert_eq!(plan.count(Action::Unchanged), 3);
        let update = &plan.changes[4];
        assert_eq!(
            (update.kind, update.name.as_str(), update.action),
            (ObjectKind::FeatureView, "user_activity", Action::Update)
        );
        assert_eq!(update.fields[0].to_string(), "ttl: 1d → 2d");
    }

    #[test]
    fn the_same_repo_has_no_changes() {
        let repo = ok(AFTER);
        let plan = plan(&repo, &repo);
        assert!(!plan.has_changes());
        assert_eq!(
            plan.to_string(),
            "No changes: 5 definitions are up to date.\n"
        );
        let empty = Repo::default();
        assert_eq!(
            super::plan(&empty, &empty).to_string(),
            "No changes: both repos are empty.\n"
        );
    }

    #[test]
    fn moving_a_definition_changes_nothing() {
        let mut moved = ok(AFTER);
        for e in &mut moved.entities {
            e.location.file = "elsewhere.yaml".into();
            e.location.line += 10;
        }
        assert!(!plan(&ok(AFTER), &moved).has_changes());
    }

    #[test]
    fn everything_from_nothing() {
        let plan = plan(&Repo::default(), &ok(AFTER));
        assert_eq!(
            plan.to_string(),
            "+ entity driver\n\
             + entity user\n\
             + source s\n\
             + feature_view user_activity\n\
             + feature_service svc\n\
             Plan: 5 to create, 0 to update, 0 to delete, 0 unchanged.\n"
        );
    }

    #[test]
    fn long_values_and_reordering() {
        let before = ok(r#"
            sources: [{name: s, path: a.parquet, timestamp_field: ts}]
            feature_views:
              - name: v
                source: s
                sql: SELECT a, b FROM s
                features: [{name: a, dtype: int64}, {name: b, dtype: int64}]
            stream_feature_views:
              - name: w
                source: s
                aggregations: [{column: c, function: sum, window: 1h, name: total}]
            "#);
        let after = ok(r#"
            sources: [{name: s, path: "dataset:s@2", timestamp_field: ts}]
            feature_views:
              - name: v
                source: s
                sql: SELECT a, b FROM s WHERE a IS NOT NULL AND b IS NOT NULL
                features: [{name: b, dtype: int64}, {name: a, dtype: int64}]
            stream_feature_views:
              - name: w
                source: s
                aggregations: [{column: c, function: sum, window: 1h, slide: 5m, name: total}]
            "#);
        assert_eq!(
            plan(&before, &after).to_string(),
            "~ source s (path: a.parquet → dataset:s@2)\n\
             ~ feature_view v (features: reordered; sql: changed)\n\
             ~ stream_feature_view w (aggregations: ~total (sum(c) over 1h → sum(c) over 1h every 5m))\n\
             Plan: 0 to create, 3 to update, 0 to delete, 0 unchanged.\n"
        );
    }
}
