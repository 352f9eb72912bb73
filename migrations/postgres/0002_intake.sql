-- PostgreSQL twin of migrations/sqlite/0002_intake.sql.
-- Intake: every accepted message, and the work that processes it.

CREATE TABLE messages (
    id           TEXT    PRIMARY KEY,        -- UUIDv7: sortable by arrival
    list         TEXT    NOT NULL,           -- list address
    kind         TEXT    NOT NULL,           -- post | request | owner | bounce | confirm
    token        TEXT,                       -- the +TOKEN of -bounces+ / -confirm+ addresses
    mail_from    TEXT    NOT NULL,
    rcpt_to      TEXT    NOT NULL,           -- accepted recipients for this list, one per line
    client_ip    TEXT    NOT NULL,
    helo         TEXT    NOT NULL,
    raw          BYTEA   NOT NULL,           -- as received, with our Received: (and Message-ID:)
    size         BIGINT  NOT NULL,
    received_at  BIGINT  NOT NULL,
    node         TEXT    NOT NULL,           -- node that accepted it
    state        TEXT    NOT NULL,           -- stored | accepted | held | approved | rejected | discarded
    reason       TEXT,                       -- why held / rejected / discarded
    decided_at   BIGINT,
    edits        TEXT                        -- the plugins' edits (JSON), applied once per post at delivery
);
CREATE INDEX messages_by_list_state ON messages (list, state, id);

-- Work rows, claimed with a lease (lease_owner, lease_until) by whichever node is free.
CREATE TABLE jobs (
    id          BIGSERIAL PRIMARY KEY,
    kind        TEXT    NOT NULL,            -- process | deliver
    message_id  TEXT    NOT NULL,
    run_after   BIGINT  NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT  NOT NULL DEFAULT 0,
    attempts    BIGINT  NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX jobs_ready ON jobs (kind, run_after, lease_until);
CREATE INDEX jobs_by_message ON jobs (message_id, kind);
