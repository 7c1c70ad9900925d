-- The latest result of each quality suite run against a model version
-- (`keel test run` with a registry model): the full JSON, and whether it
-- passed (0/1) for queries without parsing it.
CREATE TABLE model_suite_results (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    suite TEXT NOT NULL,
    passed BIGINT NOT NULL,
    result TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (name, version, suite)
);
