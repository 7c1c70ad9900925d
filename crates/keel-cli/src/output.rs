//! Tables for people and JSON for scripts.

use serde_json::Value;

/// Bad input from the command line: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Renders rows as an aligned text table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count().min(60));
            }
        }
    }
    let fmt_row = |cells: Vec<String>| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let c: String = if c.chars().count() > 60 {
                    c.chars().take(59).chain(std::iter::once('…')).collect()
                } else {
                    c.clone()
                };
                format!("{c:<w$}", w = widths[i])
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = fmt_row(headers.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    for row in rows {
        out.push_str(&fmt_row(row.clone()));
        out.push('\n');
    }
    out
}

/// A JSON value as a table cell: strings bare, null empty.
pub fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time(ms: Option<i64>) -> String {
    ms.map(keel_core::time::display_utc).unwrap_or_default()
}

/// A one-line progress bar on stderr, drawn only when stderr is a
/// terminal, at most ten times a second.
pub struct ProgressBar {
    tty: bool,
    unit: &'static str,
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl ProgressBar {
    /// A bar counting rows.
    pub fn new() -> Self {
        Self::counting("rows")
    }

    /// A bar counting `unit`s (`rows`, `steps`).
    pub fn counting(unit: &'static str) -> Self {
        use std::io::IsTerminal;
        ProgressBar {
            tty: std::io::stderr().is_terminal(),
            unit,
            last: std::sync::Mutex::new(None),
        }
    }

    pub fn update(&self, label: &str, done: u64, total: u64) {
        if !self.tty {
            return;
        }
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_millis(100)) && done < total
        {
            return;
        }
        *last = Some(std::time::Instant::now());
        let width = 30usize;
        let filled = if total == 0 {
            width
        } else {
            ((done as f64 / total as f64) * width as f64) as usize
        }
        .min(width);
        eprint!(
            "\r\x1b[2K{label} [{}{}] {done}/{total} {}",
            "#".repeat(filled),
            "-".repeat(width - filled),
            self.unit
        );
    }

    pub fn finish(&self) {
        if self.tty && self.last.lock().is_ok_and(|l| l.is_some()) {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_in_utc() {
        assert_eq!(time(Some(0)), "1970-01-01 00:00:00");
        assert_eq!(time(Some(1_700_000_000_000)), "2023-11-14 22:13:20");
        assert_eq!(time(None), "");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["id", "name"],
            &[
                vec!["1".into(), "alpha".into()],
                vec!["22".into(), "b".into()],
            ],
        );
        assert_eq!(t, "id  name\n1   alpha\n22  b\n");
    }
}
