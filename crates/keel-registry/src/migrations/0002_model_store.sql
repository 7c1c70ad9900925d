-- The model store beyond MLflow's registry: what each version's artifacts
-- were at registration, its signature and dependencies, checkpoints, model
-- cards, who moved which alias when, and retraining cadence.
ALTER TABLE model_versions ADD COLUMN artifact_root TEXT;
ALTER TABLE model_versions ADD COLUMN signature TEXT;
ALTER TABLE model_versions ADD COLUMN dependencies TEXT;
CREATE INDEX model_versions_artifact_root ON model_versions (artifact_root);
-- Version search's orders, so a filtered search walks an index and stops
-- at the page instead of sorting every match: MLflow's default (newest
-- change first) and by name. Each also carries `source`, so a filter on it
-- is read from the index alone.
CREATE INDEX model_versions_changed ON model_versions (last_updated_timestamp DESC, name ASC, version DESC, source);
CREATE INDEX model_versions_newest ON model_versions (name ASC, version DESC, source);
-- The newest version per stage of a page of registered models.
CREATE INDEX model_versions_stage ON model_versions (name, current_stage, version);
CREATE INDEX registered_models_updated ON registered_models (last_updated_timestamp);
-- One row per artifact file of a version; store_path is where the artifact
-- store keeps it, so a download can find the digest to check.
CREATE TABLE model_version_files (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    path TEXT NOT NULL,
    store_path TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (name, version, path)
);
CREATE INDEX model_version_files_store_path ON model_version_files (store_path);
CREATE TABLE model_checkpoints (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    step BIGINT NOT NULL,
    metrics TEXT NOT NULL,
    artifact_uri TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version, step)
);
CREATE TABLE model_cards (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    fields TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
-- Moves of aliases (kind 'alias') and stage transitions (kind 'stage',
-- `alias` holding the stage) with who made them.
CREATE TABLE model_alias_history (
    name TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    alias TEXT NOT NULL,
    note TEXT NOT NULL,
    version BIGINT,
    previous_version BIGINT,
    actor TEXT NOT NULL,
    time BIGINT NOT NULL,
    PRIMARY KEY (name, seq)
);
CREATE TABLE retraining_policies (
    name TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    next_due BIGINT,
    last_fired BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX retraining_policies_due ON retraining_policies (next_due);
