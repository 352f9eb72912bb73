-- PostgreSQL twin of migrations/sqlite/0003_nodes.sql (the same types work on both).
-- Nodes of the cluster: each registers at start and heartbeats while it runs.
CREATE TABLE nodes (
    name         TEXT   PRIMARY KEY,
    instance     TEXT   NOT NULL,          -- random per process: who holds the name now
    hostname     TEXT   NOT NULL,
    version      TEXT   NOT NULL,
    pid          BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    state        TEXT   NOT NULL           -- running | stopped
);
