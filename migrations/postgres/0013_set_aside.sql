-- Processing sets a message aside (state `failed`, its last error as the reason) after too
-- many failed tries, so one message that cannot be recorded never holds up the others.
-- `roost queue` lists them; this index keeps that cheap however long the history grows.
-- Bounce rows gain the state `unverified` (a report that proved no copy of ours; never
-- handed to plugins): no schema change, the column is free text.
CREATE INDEX messages_set_aside ON messages (id) WHERE state = 'failed';
