-- The lineage graph: typed nodes (`kind:id`) and the edges between them,
-- recorded by each domain as it acts.
CREATE TABLE lineage_nodes (
    node TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    attrs TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE lineage_edges (
    src TEXT NOT NULL,
    dst TEXT NOT NULL,
    relation TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (src, dst)
);
CREATE INDEX lineage_edges_dst ON lineage_edges (dst);
