//! How a version's schema differs from the previous version's, and whether
//! readers of the old schema keep working.
//!
//! Columns are matched by name (readers select columns by name, so a new
//! order is no change). **Compatible**: a column added, a column that
//! becomes nullable, a numeric type widened without loss (`Int32` →
//! `Int64`, `Float32` → `Float64`, an integer of up to 32 bits →
//! `Float64`, `Utf8` ↔ `LargeUtf8`, a timestamp to a finer unit).
//! **Breaking**: a column removed, a column that becomes non-nullable, any
//! other type change.

use serde::{Deserialize, Serialize};

use crate::Column;

/// The verdict over a whole schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The first version: nothing to compare with.
    Initial,
    /// The same columns and types.
    None,
    Compatible,
    Breaking,
}

/// One column's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnChange {
    pub column: String,
    /// `added`, `removed`, `type_changed`, `nullability_changed`.
    pub change: String,
    pub kind: ChangeKind,
    pub detail: String,
}

/// A version's schema change from the previous version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaChange {
    pub kind: ChangeKind,
    /// The previous version compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ColumnChange>,
}

impl SchemaChange {
    pub fn initial() -> Self {
        SchemaChange {
            kind: ChangeKind::Initial,
            from_version: None,
            changes: Vec::new(),
        }
    }
}

/// Compares `new` with `old` (version `from_version`).
pub fn classify(old: &[Column], new: &[Column], from_version: i64) -> SchemaChange {
    let mut changes = Vec::new();
    for o in old {
        match new.iter().find(|n| n.name == o.name) {
            None => changes.push(ColumnChange {
                column: o.name.clone(),
                change: "removed".into(),
                kind: ChangeKind::Breaking,
                detail: format!("{} ({}) was removed", o.name, o.data_type),
            }),
            Some(n) => {
                if n.data_type != o.data_type {
                    let kind = if widens(&o.data_type, &n.data_type) {
                        ChangeKind::Compatible
                    } else {
                        ChangeKind::Breaking
                    };
                    changes.push(ColumnChange {
                        column: o.name.clone(),
                        change: "type_changed".into(),
                        kind,
                        detail: format!("{} → {}", o.data_type, n.data_type),
                    });
                }
                if n.nullable != o.nullable {
                    let (kind, detail) = if n.nullable {
                        (ChangeKind::Compatible, "now nullable")
                    } else {
                        (ChangeKind::Breaking, "no longer nullable")
                    };
                    changes.push(ColumnChange {
                        column: o.name.clone(),
                        change: "nullability_changed".into(),
                        kind,
                        detail: detail.into(),
                    });
                }
            }
        }
    }
    for n in new {
        if !old.iter().any(|o| o.name == n.name) {
            changes.push(ColumnChange {
                column: n.name.clone(),
                change: "added".into(),
                kind: ChangeKind::Compatible,
                detail: format!("{} ({}) was added", n.name, n.data_type),
            });
        }
    }
    let kind = changes
        .iter()
        .map(|c| c.kind)
        .max()
        .unwrap_or(ChangeKind::None);
    SchemaChange {
        kind,
        from_version: Some(from_version),
        changes,
    }
}

/// Whether every value of type `from` is exactly a value of type `to`.
fn widens(from: &str, to: &str) -> bool {
    const SIGNED: [&str; 4] = ["Int8", "Int16", "Int32", "Int64"];
    const UNSIGNED: [&str; 4] = ["UInt8", "UInt16", "UInt32", "UInt64"];
    let rank = |list: &[&str], t: &str| list.iter().position(|x| *x == t);
    if let (Some(a), Some(b)) = (rank(&SIGNED, from), rank(&SIGNED, to)) {
        return a < b;
    }
    if let (Some(a), Some(b)) = (rank(&UNSIGNED, from), rank(&UNSIGNED, to)) {
        return a < b;
    }
    // An unsigned integer fits a signed one of twice the width.
    if let (Some(a), Some(b)) = (rank(&UNSIGNED, from), rank(&SIGNED, to)) {
        return a < b;
    }
    let small_int = matches!(
        from,
        "Int8" | "Int16" | "Int32" | "UInt8" | "UInt16" | "UInt32"
    );
    match (from, to) {
        ("Float16", "Float32" | "Float64") | ("Float32", "Float64") => true,
        (_, "Float64") if small_int => true,
        ("Utf8", "LargeUtf8" | "Utf8View") | ("LargeUtf8" | "Utf8View", "Utf8") => true,
        ("Binary", "LargeBinary") => true,
        _ => finer_timestamp(from, to),
    }
}

/// `Timestamp(unit, tz)` → the same zone at a finer unit.
fn finer_timestamp(from: &str, to: &str) -> bool {
    let parse = |t: &str| -> Option<(usize, String)> {
        let inner = t.strip_prefix("Timestamp(")?.strip_suffix(')')?;
        let (unit, tz) = match inner.split_once(',') {
            Some((u, z)) => (u.trim(), z.trim().to_owned()),
            None => (inner.trim(), String::new()),
        };
        let rank = match unit {
            "s" | "Second" => 0,
            "ms" | "Millisecond" => 1,
            "µs" | "us" | "Microsecond" => 2,
            "ns" | "Nanosecond" => 3,
            _ => return None,
        };
        Some((rank, tz))
    };
    match (parse(from), parse(to)) {
        (Some((a, za)), Some((b, zb))) => za == zb && a < b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, t: &str, nullable: bool) -> Column {
        Column {
            name: name.into(),
            data_type: t.into(),
            nullable,
        }
    }

    #[test]
    fn same_schema_in_another_order_is_no_change() {
        let a = [col("a", "Int64", true), col("b", "Utf8", true)];
        let b = [col("b", "Utf8", true), col("a", "Int64", true)];
        let c = classify(&a, &b, 1);
        assert_eq!(c.kind, ChangeKind::None);
        assert!(c.changes.is_empty());
    }

    #[test]
    fn additions_and_widenings_are_compatible() {
        let a = [
            col("a", "Int32", false),
            col("t", "Timestamp(s, \"UTC\")", true),
        ];
        let b = [
            col("a", "Int64", true),
            col("t", "Timestamp(µs, \"UTC\")", true),
            col("n", "Utf8", true),
        ];
        let c = classify(&a, &b, 3);
        assert_eq!(c.kind, ChangeKind::Compatible, "{c:?}");
        assert_eq!(c.changes.len(), 4);
        assert_eq!(c.from_version, Some(3));
    }

    #[test]
    fn removals_narrowings_and_new_not_nulls_break() {
        let a = [
            col("a", "Int64", true),
            col("b", "Float64", true),
            col("c", "Utf8", true),
        ];
        let b = [col("a", "Int32", true), col("c", "Utf8", false)];
        let c = classify(&a, &b, 1);
        assert_eq!(c.kind, ChangeKind::Breaking);
        let kinds: Vec<(&str, &str, ChangeKind)> = c
            .changes
            .iter()
            .map(|x| (x.column.as_str(), x.change.as_str(), x.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("a", "type_changed", ChangeKind::Breaking),
                ("b", "removed", ChangeKind::Breaking),
                ("c", "nullability_changed", ChangeKind::Breaking)
            ]
        );
    }

    #[test]
    fn widening_table() {
        assert!(widens("Int32", "Float64"));
        assert!(!widens("Int64", "Float64"));
        assert!(widens("UInt32", "Int64"));
        assert!(!widens("UInt64", "Int64"));
        assert!(!widens("Float64", "Float32"));
        assert!(!widens("Utf8", "Int64"));
        assert!(!widens("Timestamp(ms, \"UTC\")", "Timestamp(ns, None)"));
    }
}
