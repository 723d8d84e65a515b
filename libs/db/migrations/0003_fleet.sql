-- 0003: the fleet (issue 5, docs/fleet.md §6): enrollment tokens, agents, stores, resources,
-- policies (SLA domains), the job queue with its events, and the snapshot catalog.
--
-- Same rules as 0001/0002: org_id leads every key, foreign keys stay inside the tenant,
-- ENABLE + FORCE ROW LEVEL SECURITY with the one tenant policy, and the application role gets
-- only what it needs. Cross-tenant housekeeping (the scheduler's due policies, the sweeper's
-- expired leases) goes through SECURITY DEFINER functions at the end that return IDs and times
-- only: everything else about a tenant's rows is read inside that tenant.

CREATE TABLE enrollment_tokens (
  org_id       uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  id           uuid        NOT NULL,
  name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  -- SHA-256 of the token's secret part; the token is shown once
  secret_hash  bytea       NOT NULL CHECK (length(secret_hash) = 32),
  -- labels given to every agent enrolled with this token
  labels       jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
  max_uses     integer     NOT NULL CHECK (max_uses BETWEEN 1 AND 1000000),
  uses         integer     NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
  expires_at   timestamptz NOT NULL,
  revoked_at   timestamptz,
  -- the audit actor who created it ("user:<id>", "token:<id>")
  created_by   text        NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id)
);

CREATE TABLE agents (
  org_id          uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  id              uuid        NOT NULL,
  name            text        NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
  -- the agent's Ed25519 public key (JWK "x", base64url) and its RFC 7638 thumbprint: the
  -- agent's identity; no agent secret is stored anywhere
  public_key_x    text        NOT NULL CHECK (public_key_x ~ '^[A-Za-z0-9_-]{43}$'),
  key_thumbprint  text        NOT NULL CHECK (key_thumbprint ~ '^[A-Za-z0-9_-]{43}$'),
  status          text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'removed')),
  labels          jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
  hostname        text        NOT NULL DEFAULT '' CHECK (length(hostname) <= 255),
  os              text        NOT NULL DEFAULT '' CHECK (length(os) <= 100),
  arch            text        NOT NULL DEFAULT '' CHECK (length(arch) <= 50),
  version         text        NOT NULL DEFAULT '' CHECK (length(version) <= 100),
  uptime_seconds  bigint,
  load            jsonb,
  free_bytes      bigint,
  -- what the agent reports it can protect (paths, databases): PUT /agent/v1/inventory
  inventory       jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(inventory) = 'array'),
  enrolled_with   uuid,
  last_seen_at    timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, enrolled_with) REFERENCES enrollment_tokens (org_id, id) ON DELETE SET NULL (enrolled_with)
);
CREATE UNIQUE INDEX agents_org_thumbprint_key ON agents (org_id, key_thumbprint);
CREATE INDEX agents_org_status_idx ON agents (org_id, status, last_seen_at);

CREATE TABLE stores (
  org_id              uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  id                  uuid        NOT NULL,
  name                text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  -- the Arca store ID (config.id, the "store" claim of job tokens)
  store_id            text        NOT NULL CHECK (store_id ~ '^[0-9a-f]{64}$'),
  kind                text        NOT NULL CHECK (kind IN ('fs', 's3')),
  url                 text        NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
  -- backend credentials sealed by the control plane's secrets key (AES-256-GCM, AAD = org ‖ id);
  -- NULL when the backend needs none
  credentials_sealed  bytea,
  key_proxy_url       text        NOT NULL CHECK (length(key_proxy_url) BETWEEN 1 AND 2048),
  immutable           boolean     NOT NULL DEFAULT false,
  labels              jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
  status              text        NOT NULL DEFAULT 'initializing' CHECK (status IN ('initializing', 'ready', 'failed')),
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX stores_org_name_key ON stores (org_id, name);
CREATE UNIQUE INDEX stores_org_store_id_key ON stores (org_id, store_id);

CREATE TABLE resources (
  org_id      uuid        NOT NULL,
  id          uuid        NOT NULL,
  agent_id    uuid        NOT NULL,
  name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  kind        text        NOT NULL CHECK (kind IN ('path', 'postgres')),
  -- path: { paths, excludes }; postgres: { database, host?, port? }
  spec        jsonb       NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
  labels      jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, agent_id) REFERENCES agents (org_id, id) ON DELETE RESTRICT
);
CREATE UNIQUE INDEX resources_org_name_key ON resources (org_id, name);
CREATE INDEX resources_org_agent_idx ON resources (org_id, agent_id);

CREATE TABLE policies (
  org_id                   uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  id                       uuid        NOT NULL,
  name                     text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  -- 5-field cron, evaluated in the IANA zone below
  schedule                 text        NOT NULL CHECK (length(schedule) BETWEEN 9 AND 200),
  timezone                 text        NOT NULL CHECK (length(timezone) BETWEEN 1 AND 64),
  rpo_minutes              integer     NOT NULL CHECK (rpo_minutes BETWEEN 1 AND 527040),
  -- { keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly }; {} keeps everything
  retention                jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(retention) = 'object'),
  store_id                 uuid        NOT NULL,
  copy_store_id            uuid,
  restore_test_every_days  integer     CHECK (restore_test_every_days BETWEEN 1 AND 3660),
  -- { "<label>": ["<value>", ...] }: every key must match one of its values
  selector                 jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(selector) = 'object'),
  priority                 integer     NOT NULL DEFAULT 100 CHECK (priority BETWEEN 0 AND 1000000),
  enabled                  boolean     NOT NULL DEFAULT true,
  next_run_at              timestamptz,
  created_at               timestamptz NOT NULL DEFAULT now(),
  updated_at               timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  CHECK (copy_store_id IS NULL OR copy_store_id <> store_id),
  FOREIGN KEY (org_id, store_id) REFERENCES stores (org_id, id) ON DELETE RESTRICT,
  FOREIGN KEY (org_id, copy_store_id) REFERENCES stores (org_id, id) ON DELETE RESTRICT
);
CREATE UNIQUE INDEX policies_org_name_key ON policies (org_id, name);
-- the scheduler's cross-tenant scan (arca_due_policies)
CREATE INDEX policies_due_idx ON policies (next_run_at) WHERE enabled;

CREATE TABLE jobs (
  org_id            uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  id                uuid        NOT NULL,
  kind              text        NOT NULL CHECK (kind IN ('init', 'backup', 'restore', 'check', 'replicate', 'forget', 'restore-test')),
  status            text        NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'leased', 'running', 'succeeded', 'partial', 'failed', 'cancelled')),
  -- the agent that runs it
  agent_id          uuid        NOT NULL,
  store_id          uuid,
  copy_store_id     uuid,
  resource_id       uuid,
  policy_id         uuid,
  -- the schedule slot of a scheduled job (NULL for jobs started by hand or as follow-ups)
  scheduled_for     timestamptz,
  spec              jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(spec) = 'object'),
  priority          integer     NOT NULL DEFAULT 100,
  attempt           integer     NOT NULL DEFAULT 1 CHECK (attempt >= 1),
  max_attempts      integer     NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
  run_after         timestamptz NOT NULL DEFAULT now(),
  lease_expires_at  timestamptz,
  cancel_requested  boolean     NOT NULL DEFAULT false,
  progress          jsonb,
  result            jsonb,
  -- { code, message, retryable }
  error             jsonb,
  -- the audit actor who asked for it, or "scheduler" / "system"
  requested_by      text        NOT NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  started_at        timestamptz,
  finished_at       timestamptz,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, agent_id) REFERENCES agents (org_id, id) ON DELETE RESTRICT,
  FOREIGN KEY (org_id, store_id) REFERENCES stores (org_id, id) ON DELETE RESTRICT,
  FOREIGN KEY (org_id, copy_store_id) REFERENCES stores (org_id, id) ON DELETE RESTRICT,
  FOREIGN KEY (org_id, resource_id) REFERENCES resources (org_id, id) ON DELETE SET NULL (resource_id),
  FOREIGN KEY (org_id, policy_id) REFERENCES policies (org_id, id) ON DELETE SET NULL (policy_id)
);
-- two control-plane processes never create the same scheduled job twice (ON CONFLICT DO NOTHING)
CREATE UNIQUE INDEX jobs_org_schedule_slot_key ON jobs (org_id, policy_id, resource_id, scheduled_for) WHERE scheduled_for IS NOT NULL;
-- leasing: an agent's queued jobs in order
CREATE INDEX jobs_org_agent_queue_idx ON jobs (org_id, agent_id, status, run_after);
CREATE INDEX jobs_org_created_idx ON jobs (org_id, created_at DESC, id);
CREATE INDEX jobs_org_resource_idx ON jobs (org_id, resource_id, created_at DESC);
-- the sweeper's cross-tenant scan (arca_expired_leases)
CREATE INDEX jobs_lease_expiry_idx ON jobs (lease_expires_at) WHERE status IN ('leased', 'running');

CREATE TABLE job_events (
  org_id   uuid        NOT NULL,
  job_id   uuid        NOT NULL,
  seq      integer     NOT NULL CHECK (seq > 0),
  time     timestamptz NOT NULL DEFAULT now(),
  -- queued, leased, running, requeued, log, completed, cancel-requested, skipped, ...
  kind     text        NOT NULL CHECK (kind ~ '^[a-z][a-z-]{0,39}$'),
  level    text        NOT NULL DEFAULT 'info' CHECK (level IN ('debug', 'info', 'warn', 'error')),
  message  text        NOT NULL CHECK (length(message) <= 4000),
  data     jsonb,
  PRIMARY KEY (org_id, job_id, seq),
  FOREIGN KEY (org_id, job_id) REFERENCES jobs (org_id, id) ON DELETE CASCADE
);

CREATE TABLE snapshots (
  org_id        uuid        NOT NULL,
  store_id      uuid        NOT NULL,
  snapshot_id   text        NOT NULL CHECK (snapshot_id ~ '^[0-9a-f]{64}$'),
  resource_id   uuid,
  agent_id      uuid,
  job_id        uuid,
  time          timestamptz NOT NULL,
  hostname      text        NOT NULL DEFAULT '' CHECK (length(hostname) <= 255),
  tags          text[]      NOT NULL DEFAULT '{}',
  parent        text        CHECK (parent ~ '^[0-9a-f]{64}$'),
  -- sizes and counts only: never file names or contents
  total_bytes   bigint      NOT NULL DEFAULT 0 CHECK (total_bytes >= 0),
  file_count    bigint      NOT NULL DEFAULT 0 CHECK (file_count >= 0),
  dir_count     bigint      NOT NULL DEFAULT 0 CHECK (dir_count >= 0),
  new_bytes     bigint      NOT NULL DEFAULT 0 CHECK (new_bytes >= 0),
  stored_bytes  bigint      NOT NULL DEFAULT 0 CHECK (stored_bytes >= 0),
  duration_ms   bigint      NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
  -- set when a forget job removed it from the store
  removed_at    timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, store_id, snapshot_id),
  FOREIGN KEY (org_id, store_id) REFERENCES stores (org_id, id) ON DELETE RESTRICT,
  FOREIGN KEY (org_id, resource_id) REFERENCES resources (org_id, id) ON DELETE SET NULL (resource_id),
  FOREIGN KEY (org_id, agent_id) REFERENCES agents (org_id, id) ON DELETE SET NULL (agent_id),
  FOREIGN KEY (org_id, job_id) REFERENCES jobs (org_id, id) ON DELETE SET NULL (job_id)
);
CREATE INDEX snapshots_org_time_idx ON snapshots (org_id, time DESC);
CREATE INDEX snapshots_org_resource_idx ON snapshots (org_id, resource_id, time DESC);

-- Row-level security on every tenant table.
ALTER TABLE enrollment_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE enrollment_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON enrollment_tokens
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE agents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON agents
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

ALTER TABLE stores ENABLE ROW LEVEL SECURITY;
ALTER TABLE stores FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON stores
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

ALTER TABLE resources ENABLE ROW LEVEL SECURITY;
ALTER TABLE resources FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON resources
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

ALTER TABLE policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE policies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON policies
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON jobs
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

ALTER TABLE job_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON job_events
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

ALTER TABLE snapshots ENABLE ROW LEVEL SECURITY;
ALTER TABLE snapshots FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON snapshots
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

-- Cross-tenant housekeeping. SECURITY DEFINER (run with the migration owner's rights, so RLS does
-- not filter them), a fixed search_path, and results limited to IDs and times: a caller learns
-- which tenant has work due, never what the work is. The application then handles each row inside
-- that tenant's transaction, as the non-bypass role, re-checking the condition under a row lock.

-- Policies whose next slot has come (the scheduler, every replica).
CREATE FUNCTION arca_due_policies(max_rows integer)
  RETURNS TABLE (org_id uuid, policy_id uuid, next_run_at timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
    SELECT p.org_id, p.id, p.next_run_at FROM public.policies p
    WHERE p.enabled AND p.next_run_at <= now()
    ORDER BY p.next_run_at
    LIMIT greatest(1, least(max_rows, 10000))
  $$;

-- Jobs whose lease has expired (the sweeper, every replica).
CREATE FUNCTION arca_expired_leases(max_rows integer)
  RETURNS TABLE (org_id uuid, job_id uuid, lease_expires_at timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
    SELECT j.org_id, j.id, j.lease_expires_at FROM public.jobs j
    WHERE j.status IN ('leased', 'running') AND j.lease_expires_at < now()
    ORDER BY j.lease_expires_at
    LIMIT greatest(1, least(max_rows, 10000))
  $$;

REVOKE ALL ON FUNCTION arca_due_policies(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION arca_expired_leases(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION arca_due_policies(integer) TO arca_app;
GRANT EXECUTE ON FUNCTION arca_expired_leases(integer) TO arca_app;

-- Privileges of the application role. Agents are never deleted (status 'removed' keeps their
-- jobs' and snapshots' history attributable); jobs and the catalog are history, not deleted by the
-- app; job events are trimmed (the newest log lines are kept per job).
GRANT SELECT, INSERT, UPDATE ON enrollment_tokens, agents, jobs, snapshots TO arca_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON stores, resources, policies, job_events TO arca_app;
