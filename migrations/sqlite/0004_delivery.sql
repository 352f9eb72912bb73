-- Delivery: every recipient of every post, grouped in batches per destination domain.

-- One row per recipient of a post: its whole delivery history is here.
CREATE TABLE recipients (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  TEXT    NOT NULL,
    member_id   BIGINT,                        -- NULL for mail to a non-member (notices)
    address     TEXT    NOT NULL,
    domain      TEXT    NOT NULL,              -- lower-cased: the destination
    seq         INTEGER NOT NULL,              -- batch number within (message, domain)
    state       TEXT    NOT NULL DEFAULT 'queued', -- queued | sent | failed | expired
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_reply  TEXT,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX recipients_by_batch ON recipients (message_id, domain, seq, state);

-- The unit of delivery work: up to `batch_size` recipients of one post at one domain,
-- claimed with a lease like every job.
CREATE TABLE batches (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  TEXT    NOT NULL,
    domain      TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    run_after   BIGINT  NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT  NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_reply  TEXT,
    created_at  BIGINT  NOT NULL,
    UNIQUE (message_id, domain, seq)
);
CREATE INDEX batches_ready ON batches (run_after, lease_until);

-- Failures that count against a member: permanent replies and expiry at delivery now,
-- parsed DSNs later. The bounce handling reads them.
CREATE TABLE bounces (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    list        TEXT    NOT NULL,
    member_id   BIGINT,
    address     TEXT    NOT NULL,
    message_id  TEXT,
    source      TEXT    NOT NULL,              -- delivery | expiry | dsn
    status      TEXT    NOT NULL,              -- enhanced status code, e.g. 5.1.1
    diagnostic  TEXT    NOT NULL,
    temporary   INTEGER NOT NULL,
    at          BIGINT  NOT NULL
);
CREATE INDEX bounces_by_member ON bounces (list, member_id, at);

-- Cluster-wide settings the nodes share, such as the key that signs tokens.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
