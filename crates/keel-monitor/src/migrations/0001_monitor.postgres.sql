-- Alert rules with where each stands, and the metric time series that
-- monitoring evaluations leave behind.
CREATE TABLE monitor_alerts (
    name TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    state TEXT NOT NULL,
    streak BIGINT NOT NULL,
    since BIGINT NOT NULL,
    last_value DOUBLE PRECISION,
    last_evaluated BIGINT,
    message TEXT
);
CREATE TABLE monitor_series (
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    at BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL
);
CREATE INDEX monitor_series_key ON monitor_series (name, labels, at);
CREATE INDEX monitor_series_at ON monitor_series (at);
