-- The model registry: registered models and their versions, tags, aliases.
CREATE TABLE registered_models (
    name TEXT PRIMARY KEY,
    creation_timestamp BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL,
    description TEXT,
    -- Version numbers are never reused, even after a delete.
    last_version BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE registered_model_tags (
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (name, key)
);
CREATE TABLE registered_model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE model_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    creation_timestamp BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL,
    description TEXT,
    current_stage TEXT NOT NULL,
    source TEXT NOT NULL,
    run_id TEXT,
    run_link TEXT,
    status TEXT NOT NULL,
    storage_location TEXT,
    model_id TEXT,
    PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_run ON model_versions (run_id);
CREATE TABLE model_version_tags (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (name, version, key)
);
