-- PostgreSQL twin of migrations/sqlite/0005_confirmations.sql.
-- Pending confirmations (double opt-in, confirmed unsubscribes, owner approval of a
-- subscription). Confirming is a conditional update of `state`, so it acts once.
CREATE TABLE confirmations (
    id          BIGSERIAL PRIMARY KEY,
    list        TEXT    NOT NULL,
    action      TEXT    NOT NULL,            -- subscribe | unsubscribe
    address     TEXT    NOT NULL,
    name        TEXT,
    done_to     TEXT,                        -- notice queued once confirmed: `owners` or an address
    done_subject TEXT,
    done_body   TEXT,
    state       TEXT    NOT NULL DEFAULT 'pending',   -- pending | done
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    decided_at  BIGINT
);

-- Each occurrence of a plugin's schedule runs once in the cluster: the node that inserts
-- the row runs it; one that lapses its lease is taken over.
CREATE TABLE schedule_runs (
    list        TEXT    NOT NULL,
    plugin      TEXT    NOT NULL,
    task        TEXT    NOT NULL,
    occurrence  TEXT    NOT NULL,
    node        TEXT    NOT NULL,
    state       TEXT    NOT NULL,            -- running | done | failed
    lease_until BIGINT  NOT NULL,
    started_at  BIGINT  NOT NULL,
    finished_at BIGINT,
    error       TEXT,
    PRIMARY KEY (list, plugin, task, occurrence)
);
