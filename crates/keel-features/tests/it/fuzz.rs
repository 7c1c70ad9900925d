//! Random and mutated YAML never panics the reader, and whatever it
//! accepts stores and plans consistently.

use keel_features::definition::{Repo, RepoFile, parse_repo, plan};
use proptest::prelude::*;

const ENTITIES: &str = include_str!("../fixtures/repo/entities.yaml");
const VIEWS: &str = include_str!("../fixtures/repo/views/features.yml");
const BROKEN: &str = include_str!("../fixtures/broken/b_views.yaml");

/// Bits of YAML that change a document's shape or meaning.
const TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "  ",
    "    ",
    "&a ",
    "*a",
    "!!str ",
    "!!int ",
    "~",
    "null",
    "''",
    "\"",
    "#",
    "|\n",
    "name: x",
    "name",
    "ttl: ",
    "0",
    "1d",
    "0s",
    "-1",
    "list<",
    ">",
    "int64",
    "user",
    "user_activity",
    "user_activity:",
    "dataset:",
    "@",
    "é",
    "\t",
    "---\n",
    "?",
    "%",
    "99999999999999999999",
    "1e309",
    ".nan",
];

/// One edit of a text: delete a range, insert a token, or repeat a line.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, usize),
    RepeatLine(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..20).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Edit::Insert(at, t)),
        any::<usize>().prop_map(Edit::RepeatLine),
    ]
}

/// The character boundary at or before `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_string();
    for e in edits {
        match *e {
            Edit::Delete(at, n) => {
                let start = boundary(&text, at);
                let end = boundary(&text, start.saturating_add(n).min(text.len()));
                text.replace_range(start..end.max(start), "");
            }
            Edit::Insert(at, t) => {
                let at = boundary(&text, at);
                text.insert_str(at, TOKENS[t]);
            }
            Edit::RepeatLine(n) => {
                let mut lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    let i = n % lines.len();
                    lines.insert(i, lines[i]);
                }
                text = lines.join("\n");
            }
        }
    }
    text
}

/// Reads the files and checks what comes back: problems point into the
/// files, an accepted repo survives JSON and plans as unchanged.
fn check(files: Vec<RepoFile>) -> Result<(), TestCaseError> {
    match parse_repo(&files) {
        Ok(repo) => {
            let json =
                serde_json::to_string(&repo).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back: Repo =
                serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back, &repo);
            prop_assert!(!plan(&repo, &back).has_changes());
        }
        Err(problems) => {
            prop_assert!(!problems.is_empty());
            for p in &problems {
                prop_assert!(files.iter().any(|f| f.path == p.file), "{}", p);
                prop_assert!(p.line >= 1 && p.column >= 1, "{}", p);
                let lines = files
                    .iter()
                    .find(|f| f.path == p.file)
                    .map_or(0, |f| f.text.lines().count());
                prop_assert!(p.line <= lines + 1, "{} (file has {} lines)", p, lines);
                prop_assert!(!p.message.is_empty());
            }
        }
    }
    Ok(())
}

fn files(entities: String, views: String) -> Vec<RepoFile> {
    vec![
        RepoFile {
            path: "entities.yaml".into(),
            text: entities,
        },
        RepoFile {
            path: "views/features.yml".into(),
            text: views,
        },
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_sample_repos(
        a in proptest::collection::vec(edit(), 0..6),
        b in proptest::collection::vec(edit(), 0..6),
    ) {
        check(files(apply(ENTITIES, &a), apply(VIEWS, &b)))?;
    }

    #[test]
    fn mutated_broken_repos(edits in proptest::collection::vec(edit(), 0..8)) {
        check(files(ENTITIES.to_string(), apply(BROKEN, &edits)))?;
    }

    #[test]
    fn random_text(text in "\\PC{0,300}") {
        check(files(text, String::new()))?;
    }

    #[test]
    fn random_yaml_like_text(tokens in proptest::collection::vec(0..TOKENS.len(), 0..80)) {
        let text: String = tokens.iter().map(|&t| TOKENS[t]).collect();
        check(files(ENTITIES.to_string(), text))?;
    }
}
