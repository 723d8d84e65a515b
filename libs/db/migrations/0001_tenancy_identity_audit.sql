-- 0001: organizations, users, roles, memberships, API tokens and the hash-chained audit log.
--
-- Run by the migration owner (the role that owns the schema), never by the application role.
-- Every tenant table has org_id leading its primary key and indexes (the distribution key if the
-- database is ever sharded by tenant), ROW LEVEL SECURITY with FORCE (so even the owner is
-- filtered), and one policy that admits only rows of the tenant set for the current transaction
-- with set_config('app.org_id', <uuid>, true). With no tenant set, current_setting(..., true) is
-- NULL or '' and no row is visible or writable.

-- The application role: no login (deployments grant it to their login role), no BYPASSRLS, no
-- superuser. Created here when the migration owner may create roles; otherwise a DBA creates it
-- beforehand (docs/control-plane.md). Roles are cluster-wide, so concurrent migrations of two
-- databases may race on the CREATE: the loser's duplicate error is ignored.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'arca_app') THEN
    CREATE ROLE arca_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END
$$;

-- The tenant of the current transaction, or NULL when none is set. STABLE so the planner
-- evaluates it once per statement, not once per row.
CREATE FUNCTION arca_current_org() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT nullif(current_setting('app.org_id', true), '')::uuid $$;

CREATE TABLE organizations (
  id          uuid        PRIMARY KEY,
  name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  org_id        uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  id            uuid        NOT NULL,
  email         text        NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
  display_name  text        NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
  -- SCIM externalId: the identity provider's stable ID for this person
  external_id   text        CHECK (length(external_id) <= 512),
  status        text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX users_org_email_key ON users (org_id, lower(email));
CREATE UNIQUE INDEX users_org_external_id_key ON users (org_id, external_id) WHERE external_id IS NOT NULL;

CREATE TABLE roles (
  org_id       uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  id           uuid        NOT NULL,
  name         text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9-]{1,62}$'),
  description  text        NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
  -- built-in roles (owner, admin, operator, auditor, viewer) take their rules from the code, so an
  -- upgrade can refine them; their permissions column stays empty
  builtin      boolean     NOT NULL DEFAULT false,
  -- custom roles: [{ "action": ..., "subject": ..., "labels": { "environment": [...], ... } }]
  permissions  jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(permissions) = 'array'),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX roles_org_name_key ON roles (org_id, name);

CREATE TABLE memberships (
  org_id      uuid        NOT NULL,
  user_id     uuid        NOT NULL,
  role_id     uuid        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, user_id),
  FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id) ON DELETE CASCADE,
  -- a role in use cannot be deleted: reassign its members first
  FOREIGN KEY (org_id, role_id) REFERENCES roles (org_id, id) ON DELETE RESTRICT
);
CREATE INDEX memberships_org_role_idx ON memberships (org_id, role_id);

CREATE TABLE api_tokens (
  org_id        uuid        NOT NULL,
  id            uuid        NOT NULL,
  user_id       uuid        NOT NULL,
  name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  -- SHA-256 of the token's secret part; the token itself is shown once and never stored
  secret_hash   bytea       NOT NULL CHECK (length(secret_hash) = 32),
  -- permissions the token is limited to ("action:Subject"), intersected with its user's role
  scopes        text[]      NOT NULL,
  expires_at    timestamptz NOT NULL,
  revoked_at    timestamptz,
  last_used_at  timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id) ON DELETE CASCADE
);
CREATE INDEX api_tokens_org_user_idx ON api_tokens (org_id, user_id);

CREATE TABLE audit_events (
  org_id      uuid        NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
  seq         bigint      NOT NULL CHECK (seq > 0),
  time        timestamptz NOT NULL,
  -- "user:<id>", "token:<id>", "key-proxy:<proxy id>", "system"
  actor       text        NOT NULL,
  action      text        NOT NULL,
  -- "<type>:<id>" or '' when the event has no single target
  target      text        NOT NULL,
  payload     jsonb       NOT NULL,
  request_id  text,
  -- idempotency key of an ingested event ("key-proxy:<proxy>:<seq>"), NULL for local events
  source      text,
  prev_hash   text        NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash        text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  PRIMARY KEY (org_id, seq)
);
CREATE INDEX audit_events_org_time_idx ON audit_events (org_id, time, seq);
CREATE INDEX audit_events_org_action_idx ON audit_events (org_id, action, seq);
CREATE UNIQUE INDEX audit_events_org_source_key ON audit_events (org_id, source) WHERE source IS NOT NULL;

-- The head of each organization's chain. Appending locks this row (SELECT ... FOR UPDATE), which
-- serializes writers per organization, and verification compares the last entry with it, so a
-- truncated tail is detected too.
CREATE TABLE audit_chain_heads (
  org_id  uuid   PRIMARY KEY REFERENCES organizations (id) ON DELETE RESTRICT,
  seq     bigint NOT NULL,
  hash    text   NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
);

-- Row-level security on every tenant table.
ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organizations
  USING (id = arca_current_org()) WITH CHECK (id = arca_current_org());

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

ALTER TABLE roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE roles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON roles
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memberships
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

ALTER TABLE api_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_tokens
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

ALTER TABLE audit_chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_chain_heads
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

-- Privileges of the application role: the audit log is append-only (no UPDATE or DELETE), and
-- organizations are never deleted by the application.
GRANT USAGE ON SCHEMA public TO arca_app;
GRANT EXECUTE ON FUNCTION arca_current_org() TO arca_app;
GRANT SELECT, INSERT, UPDATE ON organizations TO arca_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON users, roles, memberships, api_tokens TO arca_app;
GRANT SELECT, INSERT ON audit_events TO arca_app;
GRANT SELECT, INSERT, UPDATE ON audit_chain_heads TO arca_app;
