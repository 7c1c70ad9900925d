-- Training jobs: the durable queue and each job's state, the billing
-- ledger of measured usage per attempt, and tenants' policies.
CREATE TABLE train_jobs (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    parent BIGINT,
    spec TEXT NOT NULL,
    trainer TEXT NOT NULL,
    executor TEXT NOT NULL,
    state TEXT NOT NULL,
    priority BIGINT NOT NULL,
    cpus DOUBLE PRECISION NOT NULL,
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
    id BIGSERIAL PRIMARY KEY,
    job_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    executor TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    wall_seconds DOUBLE PRECISION NOT NULL,
    cpu_seconds DOUBLE PRECISION NOT NULL,
    memory_gb_seconds DOUBLE PRECISION NOT NULL,
    max_rss_bytes BIGINT NOT NULL,
    cpu_hour_price DOUBLE PRECISION NOT NULL,
    gb_hour_price DOUBLE PRECISION NOT NULL,
    cost DOUBLE PRECISION NOT NULL,
    UNIQUE (job_id, attempt)
);
CREATE INDEX train_ledger_tenant ON train_ledger (tenant, finished_at);
CREATE TABLE train_tenants (
    name TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
