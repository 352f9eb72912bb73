-- Intake commits a group of messages in one statement on SQLite: each statement is a round
-- trip to sqlx's connection thread, and on a small machine those hops, not the disk, were
-- what capped intake. The message row carries its `process` job's lease in `job_lease`
-- (0: not leased; NULL: no job, as for notices turned into messages) and this trigger
-- writes the job in the same statement, so the INSERT commits both or neither.
-- PostgreSQL writes the job in the same transaction instead (its writers overlap).

ALTER TABLE messages ADD COLUMN job_lease BIGINT;

CREATE TRIGGER messages_process_job AFTER INSERT ON messages
WHEN NEW.job_lease IS NOT NULL
BEGIN
    INSERT INTO jobs (message_id, run_after, created_at, lease_owner, lease_until, kind)
    VALUES (NEW.id, NEW.received_at, NEW.received_at,
            CASE WHEN NEW.job_lease > 0 THEN NEW.node END, NEW.job_lease, 'process');
END;
