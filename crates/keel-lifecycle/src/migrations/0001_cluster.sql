-- The lifecycle engine's cluster store (PostgreSQL): definitions, partition
-- leases, the inbox every node writes events to, instance rows and history.
CREATE TABLE lifecycle_definitions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE lifecycle_nodes (
    node TEXT PRIMARY KEY,
    heartbeat BIGINT NOT NULL
);
CREATE TABLE lifecycle_partitions (
    partition_id BIGINT PRIMARY KEY,
    owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    epoch BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE lifecycle_inbox (
    id BIGSERIAL PRIMARY KEY,
    partition_id BIGINT NOT NULL,
    lifecycle TEXT NOT NULL,
    instance_key TEXT NOT NULL,
    op BIGINT NOT NULL,
    event TEXT NOT NULL,
    data TEXT,
    idempotency_key TEXT,
    created_at BIGINT NOT NULL,
    done BIGINT NOT NULL DEFAULT 0,
    result TEXT
);
CREATE INDEX lifecycle_inbox_pending ON lifecycle_inbox (partition_id, id) WHERE done = 0;
CREATE TABLE lifecycle_instances (
    lifecycle TEXT NOT NULL,
    instance_key TEXT NOT NULL,
    partition_id BIGINT NOT NULL,
    version BIGINT NOT NULL,
    state TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (lifecycle, instance_key)
);
CREATE INDEX lifecycle_instances_partition ON lifecycle_instances (partition_id);
CREATE INDEX lifecycle_instances_state ON lifecycle_instances (lifecycle, state, instance_key);
CREATE TABLE lifecycle_history (
    id BIGSERIAL PRIMARY KEY,
    lifecycle TEXT NOT NULL,
    instance_key TEXT NOT NULL,
    time BIGINT NOT NULL,
    kind TEXT NOT NULL,
    event TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    data TEXT,
    note TEXT NOT NULL
);
CREATE INDEX lifecycle_history_instance ON lifecycle_history (lifecycle, instance_key, id);
CREATE TABLE lifecycle_idempotency (
    lifecycle TEXT NOT NULL,
    instance_key TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    partition_id BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (lifecycle, instance_key, idempotency_key)
);
CREATE INDEX lifecycle_idempotency_partition ON lifecycle_idempotency (partition_id);
