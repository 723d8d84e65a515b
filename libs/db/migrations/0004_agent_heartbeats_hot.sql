-- 0004: agent heartbeats as heap-only (HOT) updates (issue 5, bench:fleet).
--
-- The control plane writes every agent's heartbeat (last_seen_at, load, free space) once a second
-- in batches. agents_org_status_idx included last_seen_at, so each of those updates had to write a
-- new entry into every index of the table; without an indexed column changing, and with free space
-- left on each page (fillfactor), Postgres updates the row in place on its page instead. The
-- online/offline filter over a fleet of an organization reads its rows by (org_id, status) and
-- checks last_seen_at on them, which is cheap at fleet sizes.
DROP INDEX agents_org_status_idx;
CREATE INDEX agents_org_status_idx ON agents (org_id, status);
ALTER TABLE agents SET (fillfactor = 70);
