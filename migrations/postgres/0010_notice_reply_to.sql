-- A notice may name where replies go (a confirmation address), so that answering the mail
-- is the confirmation; none: replies go to the list's owners.
ALTER TABLE notices ADD COLUMN reply_to TEXT;
