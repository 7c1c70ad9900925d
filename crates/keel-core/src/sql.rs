//! Dialect-aware SQL text building shared by every domain that queries the
//! metadata store. It only builds text and bind lists; it never talks to a
//! database, so domain query compilers stay pure and testable.

/// The SQL dialect of the metadata store behind a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    Text(String),
}

/// SQL text with numbered placeholders (`$1`, `$2`, …) and their values in
/// order. Both SQLite and PostgreSQL accept `$n` placeholders.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryBuilder {
    sql: String,
    binds: Vec<SqlValue>,
}

impl QueryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends literal SQL text; never pass user input here.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder and records the value it stands for.
    pub fn push_bind(&mut self, value: impl Into<SqlValue>) -> &mut Self {
        self.binds.push(value.into());
        self.sql.push('$');
        self.sql.push_str(&self.binds.len().to_string());
        self
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn binds(&self) -> &[SqlValue] {
        &self.binds
    }

    pub fn into_parts(self) -> (String, Vec<SqlValue>) {
        (self.sql, self.binds)
    }

    /// The text in the dialect's cheapest placeholder form, and the binds.
    /// SQLite gets anonymous `?`s: with numbered ones, binding each value
    /// looks its name up in a linked list, which made a 900-value insert
    /// spend most of its time binding.
    pub fn into_parts_for(self, dialect: Dialect) -> (String, Vec<SqlValue>) {
        match dialect {
            Dialect::Postgres => (self.sql, self.binds),
            Dialect::Sqlite => (anonymous_placeholders(&self.sql), self.binds),
        }
    }
}

/// Rewrites `$1`, `$2`, … as `?`. Valid because [`QueryBuilder`] numbers
/// placeholders in the order their values are bound, and its text holds no
/// other `$`.
fn anonymous_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Int(v)
    }
}
impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        SqlValue::Real(v)
    }
}
impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Bool(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_bind_order() {
        let mut q = QueryBuilder::new();
        q.push("SELECT * FROM runs WHERE a = ")
            .push_bind("x")
            .push(" AND b > ")
            .push_bind(2.5);
        assert_eq!(q.sql(), "SELECT * FROM runs WHERE a = $1 AND b > $2");
        assert_eq!(
            q.binds(),
            &[SqlValue::Text("x".into()), SqlValue::Real(2.5)]
        );
    }
}
