-- Nodes look for scheduled runs whose node died mid-run (state running, lease lapsed);
-- without an index that is a scan of every run ever recorded.
CREATE INDEX schedule_runs_running ON schedule_runs (lease_until) WHERE state = 'running';
