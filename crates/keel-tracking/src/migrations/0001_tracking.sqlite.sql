-- Tables keyed by a composite primary key are WITHOUT ROWID: the key is the
-- table, so each write updates one b-tree instead of two.
CREATE TABLE experiments (
    experiment_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    last_update_time BIGINT NOT NULL
);
CREATE INDEX experiments_by_creation ON experiments (creation_time DESC, experiment_id);
CREATE TABLE experiment_tags (
    experiment_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
) WITHOUT ROWID;
CREATE TABLE runs (
    run_uuid TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL,
    run_name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    start_time BIGINT NOT NULL,
    end_time BIGINT,
    lifecycle_stage TEXT NOT NULL,
    artifact_uri TEXT NOT NULL,
    deleted_time BIGINT
);
CREATE INDEX runs_by_experiment ON runs (experiment_id, start_time DESC, run_uuid);
CREATE INDEX runs_by_start ON runs (start_time DESC, run_uuid);
CREATE TABLE params (
    run_uuid TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;
CREATE INDEX params_by_key ON params (key, value, run_uuid);
CREATE TABLE tags (
    run_uuid TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;
CREATE INDEX tags_by_key ON tags (key, value, run_uuid);
CREATE TABLE metrics (
    run_uuid TEXT NOT NULL,
    key TEXT NOT NULL,
    step BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    value REAL NOT NULL,
    is_nan BOOLEAN NOT NULL,
    model_id TEXT,
    dataset_name TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (run_uuid, key, step, timestamp, value, is_nan)
) WITHOUT ROWID;
CREATE INDEX metrics_by_model ON metrics (model_id) WHERE model_id IS NOT NULL;
CREATE TABLE latest_metrics (
    run_uuid TEXT NOT NULL,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    is_nan BOOLEAN NOT NULL,
    timestamp BIGINT NOT NULL,
    step BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;
CREATE INDEX latest_metrics_by_key ON latest_metrics (key, value, is_nan, run_uuid);
CREATE TABLE datasets (
    dataset_uuid TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source TEXT NOT NULL,
    schema TEXT,
    profile TEXT,
    UNIQUE (experiment_id, name, digest)
);
CREATE TABLE run_inputs (
    run_uuid TEXT NOT NULL,
    dataset_uuid TEXT NOT NULL,
    context TEXT,
    tags TEXT NOT NULL,
    PRIMARY KEY (run_uuid, dataset_uuid)
) WITHOUT ROWID;
CREATE INDEX run_inputs_by_dataset ON run_inputs (dataset_uuid);
CREATE TABLE logged_models (
    model_id TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    artifact_location TEXT NOT NULL,
    creation_timestamp_ms BIGINT NOT NULL,
    last_updated_timestamp_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    model_type TEXT,
    source_run_id TEXT,
    status_message TEXT
);
CREATE INDEX logged_models_by_experiment ON logged_models (experiment_id, creation_timestamp_ms DESC, model_id);
CREATE INDEX logged_models_by_run ON logged_models (source_run_id);
CREATE TABLE logged_model_params (
    model_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
) WITHOUT ROWID;
CREATE TABLE logged_model_tags (
    model_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
) WITHOUT ROWID;
CREATE TABLE run_outputs (
    run_uuid TEXT NOT NULL,
    model_id TEXT NOT NULL,
    step BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, model_id)
) WITHOUT ROWID;
INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active',
        CAST(strftime('%s', 'now') AS INTEGER) * 1000, CAST(strftime('%s', 'now') AS INTEGER) * 1000);
