-- Event counts kept as events are recorded, so reports read a few rows instead of scanning
-- every event of a post. Per (post, plugin, kind, key); key '' counts every event of the
-- kind whatever its key (all links of a post together; opens, which have no key).
CREATE TABLE event_counts (
    post_id TEXT   NOT NULL,
    plugin  TEXT   NOT NULL,
    kind    TEXT   NOT NULL,
    key     TEXT   NOT NULL,
    total   BIGINT NOT NULL DEFAULT 0,
    uniq    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (post_id, plugin, kind, key)
);

-- Who has been counted once for each of those, so `uniq` grows only with new members: one
-- 64-bit hash of (post, plugin, kind, key, member) per row (an integer key keeps the insert
-- cheap; the odds of any collision among a million rows are about 3 in 10^8, and one would
-- undercount one member).
CREATE TABLE event_members (
    h BIGINT PRIMARY KEY
);

-- The events recorded before this migration: each counts for its kind (key '') and, when it
-- has one, for its key. (Their members are not hashed here: one who clicked before and
-- clicks again after the upgrade counts as a new unique member once.)
INSERT INTO event_counts (post_id, plugin, kind, key, total, uniq)
SELECT post_id, plugin, kind, key, COUNT(*), COUNT(DISTINCT member) FROM events
WHERE post_id IS NOT NULL AND key IS NOT NULL AND key <> '' GROUP BY post_id, plugin, kind, key;
INSERT INTO event_counts (post_id, plugin, kind, key, total, uniq)
SELECT post_id, plugin, kind, '', COUNT(*), COUNT(DISTINCT member) FROM events
WHERE post_id IS NOT NULL GROUP BY post_id, plugin, kind;

-- How far the counts go: events up to this id are counted. Nodes fold newer events in,
-- moving it with a conditional update, so each event is counted once in the cluster.
CREATE TABLE events_counted (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    last_id BIGINT  NOT NULL
);
INSERT INTO events_counted (id, last_id) SELECT 1, COALESCE(MAX(id), 0) FROM events;
