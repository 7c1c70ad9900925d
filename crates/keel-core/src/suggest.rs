//! "Did you mean" hints: the known word closest to a misspelt one, for
//! messages about keys, names and types that every spec reader writes.

/// How much edit-distance work (in table cells) the hints for one document
/// may take, so that a huge document full of typos stays cheap to check.
pub const BUDGET: usize = 5_000_000;

/// The candidate closest to `word`, if one is close enough to be a likely
/// typo (one edit for words of up to 3 characters, two up to 8, three
/// beyond), spending at most `budget` table cells.
pub fn closest<'c>(word: &str, candidates: &[&'c str], budget: &mut usize) -> Option<&'c str> {
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

/// Edits (insert, delete, replace, swap two neighbours) that turn `a` into
/// `b`, counted in characters.
pub fn distance(a: &str, b: &str) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("ttl", "ttl"), 0);
        assert_eq!(distance("staging", "stagin"), 1);
        assert_eq!(distance("strat", "start"), 1, "a swap is one edit");
        assert_eq!(distance("flaot64", "float64"), 1);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("é", "e"), 1, "characters, not bytes");
    }

    #[test]
    fn closest_candidates() {
        let mut budget = BUDGET;
        assert_eq!(
            closest("stagin", &["training", "staging"], &mut budget),
            Some("staging")
        );
        let kinds = ["entities", "sources", "feature_views"];
        assert_eq!(
            closest("featureviews", &kinds, &mut budget),
            Some("feature_views")
        );
        assert_eq!(
            closest("z", &["c"], &mut budget),
            None,
            "no guesses for tiny words"
        );
        assert_eq!(closest("deploy", &["training"], &mut budget), None);
        let mut spent = 0;
        assert_eq!(
            closest("stagin", &["staging"], &mut spent),
            None,
            "budget spent"
        );
    }
}
