-- PostgreSQL twin of migrations/sqlite/0001_foundation.sql (same meaning, native types).
-- Foundation: what the plugin imports read and write.
-- Times are milliseconds since the Unix epoch; flags are 0/1 integers (the same on PostgreSQL).

CREATE TABLE members (
    id           BIGSERIAL PRIMARY KEY,
    list         TEXT    NOT NULL,
    address      TEXT    NOT NULL,
    address_key  TEXT    NOT NULL,              -- lower-cased address, unique per list
    name         TEXT,
    status       TEXT    NOT NULL DEFAULT 'enabled',
    moderated    BIGINT NOT NULL DEFAULT 0,
    bounce_score DOUBLE PRECISION NOT NULL DEFAULT 0,
    joined_at    BIGINT  NOT NULL,
    UNIQUE (list, address_key)
);

-- Plugin key-value store, private to (list, plugin). Keys are bytes so that ordering and
-- prefix ranges are byte-wise on both databases.
CREATE TABLE plugin_kv (
    list       TEXT   NOT NULL,
    plugin     TEXT   NOT NULL,
    key        BYTEA  NOT NULL,
    value      BYTEA  NOT NULL,
    version    BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (list, plugin, key)
);

CREATE TABLE events (
    id      BIGSERIAL PRIMARY KEY,
    list    TEXT   NOT NULL,
    plugin  TEXT   NOT NULL,
    kind    TEXT   NOT NULL,
    post_id TEXT,
    member  TEXT,
    key     TEXT,
    at      BIGINT NOT NULL
);
CREATE INDEX events_by_kind ON events (list, kind, post_id, key);

-- Mail queued by plugins (and later by the host) for delivery.
CREATE TABLE notices (
    id         BIGSERIAL PRIMARY KEY,
    list       TEXT   NOT NULL,
    plugin     TEXT   NOT NULL,
    to_owners  BIGINT NOT NULL,
    to_address TEXT,
    subject    TEXT   NOT NULL,
    body       TEXT   NOT NULL,
    state      TEXT   NOT NULL DEFAULT 'queued',
    created_at BIGINT NOT NULL
);

-- Delivery counts per hour and node (written by delivery, read by reports).
CREATE TABLE delivery_stats (
    hour      BIGINT NOT NULL,
    node      TEXT   NOT NULL,
    attempted BIGINT NOT NULL DEFAULT 0,
    succeeded BIGINT NOT NULL DEFAULT 0,
    failed    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, node)
);
