-- Bounce handling: every bounce row (a 5xx or expiry at delivery, a parsed DSN, an ARF
-- complaint) is work for the list's `on-bounce` plugins, claimed with a lease like any job.

ALTER TABLE bounces ADD COLUMN action TEXT NOT NULL DEFAULT 'failed';
ALTER TABLE bounces ADD COLUMN reason TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE bounces ADD COLUMN format TEXT NOT NULL DEFAULT '';
ALTER TABLE bounces ADD COLUMN state TEXT NOT NULL DEFAULT 'new';   -- new | handled | failed
ALTER TABLE bounces ADD COLUMN lease_owner TEXT;
ALTER TABLE bounces ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
CREATE INDEX bounces_new ON bounces (state, lease_until);

-- The last bounce decision about a member (by the bounce plugin), shown with the member.
ALTER TABLE members ADD COLUMN bounce_note TEXT;
ALTER TABLE members ADD COLUMN bounce_at BIGINT;
