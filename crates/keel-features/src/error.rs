use crate::definition::Problem;

/// What reading a feature repo can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// The definitions have problems; every one found is listed, sorted by
    /// file and position. A client mistake (400 at an HTTP edge).
    #[error("{}", lines(.0))]
    Definitions(Vec<Problem>),
    /// A file or folder of the repo could not be read.
    #[error("feature repo {path}: {source}; check that it exists and is readable")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// One `file:line:column: path: message` line per problem.
fn lines(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}
