-- Training jobs: the durable queue and each job's state, the billing
-- ledger of measured usage per attempt, and tenants' policies.
CREATE TABLE train_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    parent BIGINT,
    spec TEXT NOT NULL,
    trainer TEXT NOT NULL,
    executor TEXT NOT NULL,
    state TEXT NOT NULL,
    priority BIGINT NOT NULL,
    cpus REAL NOT NULL,
    memory_bytes BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    not_before BIGINT NOT NULL,
    submitted_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    run_id TEXT,
    handle TEXT,
    cancel_requested BIGINT NOT NULL,
    message TEXT,
    result TEXT
);
CREATE INDEX train_jobs_tenant ON train_jobs (tenant, id);
CREATE INDEX train_jobs_state ON train_jobs (state);
CREATE INDEX train_jobs_parent ON train_jobs (parent);
CREATE TABLE train_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    executor TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    wall_seconds REAL NOT NULL,
    cpu_seconds REAL NOT NULL,
    memory_gb_seconds REAL NOT NULL,
    max_rss_bytes BIGINT NOT NULL,
    cpu_hour_price REAL NOT NULL,
    gb_hour_price REAL NOT NULL,
    cost REAL NOT NULL,
    UNIQUE (job_id, attempt)
);
CREATE INDEX train_ledger_tenant ON train_ledger (tenant, finished_at);
CREATE TABLE train_tenants (
    name TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
