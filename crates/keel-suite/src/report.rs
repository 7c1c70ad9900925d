//! A suite result as JUnit XML, so CI systems list each check.

use std::fmt::Write;

use crate::run::{Status, SuiteResult};

/// One `<testsuite>` with a `<testcase>` per check: a failed check is a
/// `<failure>` (a `<skipped>` note for warnings), a check that could not
/// run an `<error>`.
pub fn junit(result: &SuiteResult) -> String {
    let failures = result
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    let errors = result
        .checks
        .iter()
        .filter(|c| c.status == Status::Error)
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        r#"<testsuite name="{}" tests="{}" failures="{failures}" errors="{errors}" time="{:.3}">"#,
        escape(&result.suite),
        result.checks.len(),
        result.seconds
    );
    for c in &result.checks {
        let kind = serde_json::to_value(c.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = write!(
            out,
            r#"  <testcase classname="{}.{kind}" name="{}""#,
            escape(&result.suite),
            escape(&c.name)
        );
        let detail = format!(
            "value {} threshold {} severity {:?}",
            c.value.map_or("-".to_string(), |v| format!("{v}")),
            c.threshold,
            c.severity
        );
        match c.status {
            Status::Pass => out.push_str("/>\n"),
            Status::Fail => {
                let _ = writeln!(
                    out,
                    ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>",
                    escape(&detail),
                    escape(&c.evidence.to_string())
                );
            }
            Status::Error => {
                let _ = writeln!(
                    out,
                    ">\n    <error message=\"{}\"/>\n  </testcase>",
                    escape(c.evidence["error"].as_str().unwrap_or(&detail))
                );
            }
        }
    }
    out.push_str("</testsuite>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
