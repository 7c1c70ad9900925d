//! "Did you mean" hints for misspelt keys, types and names.

/// How much edit-distance work (in table cells) hints may take for a whole
/// repo, so that a huge repo full of typos stays cheap to check.
pub(super) const BUDGET: usize = 5_000_000;

/// The candidate closest to `word`, if one is close enough to be a likely
/// typo, spending at most `budget` table cells.
pub(super) fn closest<'c>(
    word: &str,
    candidates: &[&'c str],
    budget: &mut usize,
) -> Option<&'c str> {
    let len = word.chars().count();
    let limit = match len {
        0..=3 => 1,
        4..=8 => 2,
        _ => 3,
    };
    let mut best: Option<(usize, &str)> = None;
    for &candidate in candidates {
        let c_len = candidate.chars().count();
        if candidate == word || c_len.abs_diff(len) > limit {
            continue;
        }
        let cost = (len + 1) * (c_len + 1);
        if cost > *budget {
            break;
        }
        *budget -= cost;
        let d = distance(word, candidate);
        if d <= limit && d < len && d < c_len && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `; did you mean `x`?` for the closest candidate, or nothing.
pub(super) fn hint(word: &str, candidates: &[&str], budget: &mut usize) -> String {
    closest(word, candidates, budget)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// Edits (insert, delete, replace, swap two neighbours) that turn `a` into
/// `b`, counted in characters.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the table: two back (for swaps), previous, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let replace = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut d = replace.min(prev[j] + 1).min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
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
    fn distances() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("ttl", "ttl"), 0);
        assert_eq!(distance("tll", "ttl"), 1);
        assert_eq!(distance("entites", "entities"), 1);
        assert_eq!(distance("flaot64", "float64"), 1, "a swap is one edit");
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_candidates() {
        let mut budget = BUDGET;
        let kinds = ["entities", "sources", "feature_views"];
        assert_eq!(closest("entites", &kinds, &mut budget), Some("entities"));
        assert_eq!(
            closest("featureviews", &kinds, &mut budget),
            Some("feature_views")
        );
        assert_eq!(closest("views", &kinds, &mut budget), None);
        assert_eq!(
            closest("x", &["y"], &mut budget),
            None,
            "no guesses for tiny words"
        );
        assert_eq!(hint("int", &["int32", "int64"], &mut budget), "");
        assert_eq!(
            hint("flaot64", &["float32", "float64"], &mut budget),
            "; did you mean `float64`?"
        );
        let mut spent = 0;
        assert_eq!(closest("entites", &kinds, &mut spent), None, "budget spent");
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
