//! "Did you mean" hints and name lists, as messages write them.

pub(crate) use keel_core::suggest::BUDGET;

/// `; did you mean `x`?` for the closest candidate, or nothing.
pub(super) fn hint(word: &str, candidates: &[&str], budget: &mut usize) -> String {
    keel_core::suggest::closest(word, candidates, budget)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// `FIELD: there is no KIND `NAME`` with a "did you mean" hint, or the
/// names the applied repo does define.
pub(crate) fn not_defined(
    field: &str,
    kind: &str,
    name: &str,
    names: &[&str],
) -> crate::FeatureError {
    let mut budget = BUDGET;
    let hint = match keel_core::suggest::closest(name, names, &mut budget) {
        Some(c) => format!("; did you mean `{c}`?"),
        None if names.is_empty() => "; the applied repo defines none".into(),
        None => format!("; the applied repo defines {}", list(names)),
    };
    crate::FeatureError::NotFound(format!("{field}: there is no {kind} `{name}`{hint}"))
}

/// Names for a message, each once: the first few, then how many more.
pub(super) fn list(names: &[&str]) -> String {
    const MAX: usize = 20;
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<&str> = names.iter().copied().filter(|n| seen.insert(*n)).collect();
    if unique.is_empty() {
        return "(none)".to_string();
    }
    let shown = unique[..unique.len().min(MAX)].join(", ");
    if unique.len() <= MAX {
        shown
    } else {
        format!("{shown}, … ({} more)", unique.len() - MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints() {
        let mut budget = BUDGET;
        assert_eq!(hint("int", &["int32", "int64"], &mut budget), "");
        assert_eq!(
            hint("flaot64", &["float32", "float64"], &mut budget),
            "; did you mean `float64`?"
        );
    }

    #[test]
    fn lists() {
        assert_eq!(list(&[]), "(none)");
        assert_eq!(list(&["a", "b"]), "a, b");
        assert_eq!(list(&["a", "b", "a"]), "a, b");
        let many: Vec<String> = (0..25).map(|i| format!("n{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(list(&many).ends_with("n19, … (5 more)"));
    }
}
