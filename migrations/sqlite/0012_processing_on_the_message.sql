-- A stored message is its own processing work: the lease, tries and back-off live on the
-- message row, and a message waits for processing while its state is `stored`. Intake then
-- writes one row per message instead of a message, a job and their four index entries,
-- and recording a decision is one conditional UPDATE instead of a DELETE and an UPDATE.
-- `jobs` keeps the `deliver` work.

ALTER TABLE messages ADD COLUMN lease_owner TEXT;
ALTER TABLE messages ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN run_after BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN last_error TEXT;

UPDATE messages SET lease_owner = j.lease_owner, lease_until = j.lease_until,
    attempts = j.attempts, run_after = j.run_after, last_error = j.last_error
FROM jobs AS j WHERE j.message_id = messages.id AND j.kind = 'process';
DELETE FROM jobs WHERE kind = 'process';

DROP TRIGGER messages_process_job;
ALTER TABLE messages DROP COLUMN job_lease;

-- Only the messages still to process: small however long the history grows.
CREATE INDEX messages_to_process ON messages (id) WHERE state = 'stored';
