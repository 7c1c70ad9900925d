-- The dataset catalog: named datasets and their immutable versions, each a
-- content-addressed copy of the registered files in the artifact store.
CREATE TABLE catalog_datasets (
    name TEXT PRIMARY KEY,
    description TEXT,
    latest_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE catalog_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    digest TEXT NOT NULL,
    format TEXT NOT NULL,
    source TEXT NOT NULL,
    location TEXT NOT NULL,
    columns TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL,
    files TEXT NOT NULL,
    profile TEXT NOT NULL,
    schema_change TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    actor TEXT,
    PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX catalog_versions_digest ON catalog_versions (name, digest);
