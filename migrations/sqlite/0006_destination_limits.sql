-- Per-destination limits for the whole cluster, not per node.

-- Copies sent to a domain in one second: nodes take tokens in chunks by a conditional
-- increment, so the sum of all nodes stays within the domain's rate.
CREATE TABLE rate_windows (
    domain TEXT   NOT NULL,
    second BIGINT NOT NULL,
    taken  BIGINT NOT NULL,
    PRIMARY KEY (domain, second)
);

-- Open sessions to a domain: one leased slot per session, at most `connections` slots.
CREATE TABLE session_slots (
    domain      TEXT    NOT NULL,
    slot        INTEGER NOT NULL,
    node        TEXT    NOT NULL,
    lease_until BIGINT  NOT NULL,
    PRIMARY KEY (domain, slot)
);
