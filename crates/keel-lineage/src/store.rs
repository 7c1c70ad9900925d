//! The lineage graph over the metadata store.

use std::collections::{BTreeSet, HashSet};

use keel_core::time::now_millis;
use keel_store::{Db, Row};
use serde_json::Value;

use crate::{
    Direction, Edge, Graph, LineageError, MAX_WALK_NODES, NewNode, Node, check_node, split_key,
};

type Result<T> = std::result::Result<T, LineageError>;

/// Keys per `IN (…)` list.
const CHUNK: usize = 500;

/// The lineage service. Cheap to clone.
#[derive(Clone)]
pub struct Lineage {
    db: Db,
}

fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Lineage {
    pub fn new(db: Db) -> Self {
        Lineage { db }
    }

    /// Records nodes and edges in one write. A node already there keeps
    /// its creation time; its name is replaced when one is given and its
    /// attributes are merged.
    /// Each edge's ends must be among `nodes` or already recorded.
    pub async fn record(&self, nodes: Vec<NewNode>, edges: Vec<Edge>) -> Result<()> {
        for (i, n) in nodes.iter().enumerate() {
            check_node(&format!("nodes[{i}]"), &n.kind, &n.id)?;
            if let Some(a) = &n.attrs
                && !a.is_object()
            {
                return Err(LineageError::Invalid(format!(
                    "nodes[{i}].attrs: must be an object"
                )));
            }
        }
        let given: HashSet<String> = nodes.iter().map(NewNode::key).collect();
        let mut unknown = Vec::new();
        for (i, e) in edges.iter().enumerate() {
            for (end, k) in [("from", &e.from), ("to", &e.to)] {
                split_key(k)
                    .map_err(|err| LineageError::Invalid(format!("edges[{i}].{end}: {err}")))?;
                if !given.contains(k.as_str()) {
                    unknown.push((i, end, k.clone()));
                }
            }
            if e.relation.is_empty() {
                return Err(LineageError::Invalid(format!(
                    "edges[{i}].relation: must not be empty"
                )));
            }
            if e.from == e.to {
                return Err(LineageError::Invalid(format!(
                    "edges[{i}]: a node cannot derive from itself"
                )));
            }
        }
        if !unknown.is_empty() {
            let keys: Vec<String> = unknown.iter().map(|u| u.2.clone()).collect();
            let found = self.existing(&keys).await?;
            if let Some((i, end, k)) = unknown.iter().find(|u| !found.contains(&u.2)) {
                return Err(LineageError::Invalid(format!(
                    "edges[{i}].{end}: node `{k}` is not recorded; include it in `nodes`"
                )));
            }
        }
        self.db
            .write::<_, LineageError, _>(move |conn| {
                Box::pin(async move {
                    let now = now_millis();
                    for n in nodes {
                        let key = n.key();
                        let name = n.name.clone().unwrap_or_else(|| n.id.clone());
                        let old = sqlx::query("SELECT attrs FROM lineage_nodes WHERE node = $1")
                            .bind(key.as_str())
                            .fetch_optional(&mut *conn)
                            .await?;
                        match old {
                            Some(row) => {
                                let text: String = row.try_get(0)?;
                                let mut attrs: Value =
                                    serde_json::from_str(&text).unwrap_or(Value::Object(Default::default()));
                                if let (Some(into), Some(Value::Object(new))) = (attrs.as_object_mut(), n.attrs) {
                                    into.extend(new);
                                }
                                // A name given replaces the old one; none keeps it.
                                sqlx::query("UPDATE lineage_nodes SET name = COALESCE($1, name), attrs = $2, updated_at = $3 WHERE node = $4")
                                    .bind(n.name.clone())
                                    .bind(attrs.to_string())
                                    .bind(now)
                                    .bind(key)
                                    .execute(&mut *conn)
                                    .await?;
                            }
                            None => {
                                let attrs = n.attrs.unwrap_or(Value::Object(Default::default()));
                                sqlx::query("INSERT INTO lineage_nodes (node, kind, name, attrs, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
                                    .bind(key)
                                    .bind(n.kind)
                                    .bind(name)
                                    .bind(attrs.to_string())
                                    .bind(now)
                                    .execute(&mut *conn)
                                    .await?;
                            }
                        }
                    }
                    for e in edges {
                        let there = sqlx::query("SELECT 1 FROM lineage_edges WHERE src = $1 AND dst = $2")
                            .bind(e.from.as_str())
                            .bind(e.to.as_str())
                            .fetch_optional(&mut *conn)
                            .await?;
                        if there.is_none() {
                            sqlx::query("INSERT INTO lineage_edges (src, dst, relation, created_at) VALUES ($1, $2, $3, $4)")
                                .bind(e.from)
                                .bind(e.to)
                                .bind(e.relation)
                                .bind(now)
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn existing(&self, keys: &[String]) -> Result<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in keys.chunks(CHUNK) {
            let sql = format!(
                "SELECT node FROM lineage_nodes WHERE node IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for k in chunk {
                q = q.bind(k.clone());
            }
            for row in q.fetch_all(self.db.reader()).await? {
                found.insert(row.try_get(0)?);
            }
        }
        Ok(found)
    }

    async fn nodes(&self, keys: &[String]) -> Result<Vec<Node>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let sql = format!(
                "SELECT node, kind, name, attrs, created_at FROM lineage_nodes WHERE node IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for k in chunk {
                q = q.bind(k.clone());
            }
            for row in q.fetch_all(self.db.reader()).await? {
                let attrs: String = row.try_get(3)?;
                out.push(Node {
                    key: row.try_get(0)?,
                    kind: row.try_get(1)?,
                    name: row.try_get(2)?,
                    attrs: serde_json::from_str(&attrs).unwrap_or(Value::Null),
                    created_at: row.try_get(4)?,
                });
            }
        }
        Ok(out)
    }

    /// One node by key.
    pub async fn node(&self, key: &str) -> Result<Option<Node>> {
        split_key(key)?;
        Ok(self.nodes(&[key.to_owned()]).await?.into_iter().next())
    }

    /// Everything reachable from `start` in `direction`, at most `depth`
    /// edges away and [`MAX_WALK_NODES`] nodes in all.
    pub async fn walk(&self, start: &str, direction: Direction, depth: u32) -> Result<Graph> {
        split_key(start)?;
        if self.node(start).await?.is_none() {
            return Err(LineageError::NotFound(start.to_owned()));
        }
        let mut seen: Vec<String> = vec![start.to_owned()];
        let mut seen_set: HashSet<String> = seen.iter().cloned().collect();
        let mut edges: BTreeSet<Edge> = BTreeSet::new();
        let mut truncated = false;
        let ways: &[bool] = match direction {
            Direction::Upstream => &[true],
            Direction::Downstream => &[false],
            Direction::Both => &[true, false],
        };
        for &up in ways {
            let mut frontier = vec![start.to_owned()];
            let mut level = 0;
            while !frontier.is_empty() {
                if level == depth {
                    truncated = true;
                    break;
                }
                level += 1;
                let mut next = Vec::new();
                for chunk in frontier.chunks(CHUNK) {
                    let sql = format!(
                        "SELECT src, dst, relation FROM lineage_edges WHERE {} IN ({}) ORDER BY src, dst",
                        if up { "dst" } else { "src" },
                        placeholders(chunk.len())
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for k in chunk {
                        q = q.bind(k.clone());
                    }
                    for row in q.fetch_all(self.db.reader()).await? {
                        let e = Edge {
                            from: row.try_get(0)?,
                            to: row.try_get(1)?,
                            relation: row.try_get(2)?,
                        };
                        let other = if up { e.from.clone() } else { e.to.clone() };
                        if !seen_set.contains(&other) {
                            if seen.len() >= MAX_WALK_NODES {
                                truncated = true;
                                continue;
                            }
                            seen_set.insert(other.clone());
                            seen.push(other.clone());
                            next.push(other);
                        }
                        edges.insert(e);
                    }
                }
                frontier = next;
            }
        }
        let mut nodes = self.nodes(&seen).await?;
        // The start first, then in the order the walk reached them.
        let order: std::collections::HashMap<&str, usize> = seen
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        nodes.sort_by_key(|n| order.get(n.key.as_str()).copied().unwrap_or(usize::MAX));
        Ok(Graph {
            start: start.to_owned(),
            direction,
            nodes,
            edges: edges.into_iter().collect(),
            truncated,
        })
    }

    /// Renames the nodes of `kind` whose id starts with `old_prefix` (a
    /// registered model renamed: `churn/` → `attrition/`), edges included.
    pub async fn rename(&self, kind: &str, old_prefix: &str, new_prefix: &str) -> Result<()> {
        let old = format!("{kind}:{old_prefix}");
        let new = format!("{kind}:{new_prefix}");
        let like = |p: &str| {
            format!(
                "{}%",
                p.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        };
        let (old_like, new_like, old_name_like) = (like(&old), like(&new), like(old_prefix));
        let (kind, new_name) = (kind.to_owned(), new_prefix.to_owned());
        let name_cut = old_prefix.chars().count() as i64 + 1;
        self.db
            .write::<_, LineageError, _>(move |conn| {
                Box::pin(async move {
                    let cut = old.chars().count() as i64 + 1;
                    for (table, col) in [("lineage_nodes", "node"), ("lineage_edges", "src"), ("lineage_edges", "dst")] {
                        let sql = format!(
                            "UPDATE {table} SET {col} = $1 || substr({col}, CAST($2 AS INTEGER)) WHERE {col} LIKE $3 ESCAPE '\\'"
                        );
                        sqlx::query(sqlx::AssertSqlSafe(sql))
                            .bind(new.as_str())
                            .bind(cut)
                            .bind(old_like.as_str())
                            .execute(&mut *conn)
                            .await?;
                    }
                    sqlx::query(
                        "UPDATE lineage_nodes SET name = $1 || substr(name, CAST($2 AS INTEGER)) WHERE kind = $3 AND node LIKE $4 ESCAPE '\\' AND name LIKE $5 ESCAPE '\\'",
                    )
                    .bind(new_name)
                    .bind(name_cut)
                    .bind(kind)
                    .bind(new_like)
                    .bind(old_name_like)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }
}
