-- Applied feature repos: every apply that changed something is a new
-- version holding the whole validated repo as JSON.
CREATE TABLE feature_repos (
    version BIGINT PRIMARY KEY,
    repo TEXT NOT NULL,
    repo_dir TEXT NOT NULL,
    digest TEXT NOT NULL,
    plan TEXT NOT NULL,
    applied_at BIGINT NOT NULL,
    actor TEXT
);
