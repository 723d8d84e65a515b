-- 0002: OIDC identities on users, dashboard sessions and invitations (issue 4, milestone 2).
--
-- Same rules as 0001: org_id leads every key, ROW LEVEL SECURITY with FORCE and the one tenant
-- policy, and the application role gets only what it needs. Session and invitation secrets are
-- stored as SHA-256 digests (32 random bytes each: nothing to brute-force, so no slow hash).

-- A user signs in with the identity provider's (issuer, subject): the stable pair OpenID Connect
-- guarantees (an email address can change or be reassigned). NULL until the first sign-in.
ALTER TABLE users
  ADD COLUMN oidc_issuer     text        CHECK (length(oidc_issuer) <= 2048),
  ADD COLUMN oidc_subject    text        CHECK (length(oidc_subject) <= 255),
  ADD COLUMN last_sign_in_at timestamptz,
  ADD CONSTRAINT users_oidc_pair_check CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL));
CREATE UNIQUE INDEX users_org_oidc_identity_key ON users (org_id, oidc_issuer, oidc_subject) WHERE oidc_subject IS NOT NULL;

CREATE TABLE sessions (
  org_id          uuid        NOT NULL,
  id              uuid        NOT NULL,
  user_id         uuid        NOT NULL,
  secret_hash     bytea       NOT NULL CHECK (length(secret_hash) = 32),
  created_at      timestamptz NOT NULL DEFAULT now(),
  -- absolute end, whatever the activity
  expires_at      timestamptz NOT NULL,
  -- refreshed at most once a minute; the idle timeout counts from it
  last_seen_at    timestamptz NOT NULL DEFAULT now(),
  revoked_at      timestamptz,
  -- 'logout', 'user-suspended', ...
  revoked_reason  text        CHECK (length(revoked_reason) <= 100),
  ip              text        CHECK (length(ip) <= 64),
  user_agent      text        CHECK (length(user_agent) <= 512),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_org_user_idx ON sessions (org_id, user_id);

CREATE TABLE invitations (
  org_id            uuid        NOT NULL,
  id                uuid        NOT NULL,
  email             text        NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
  role_id           uuid        NOT NULL,
  secret_hash       bytea       NOT NULL CHECK (length(secret_hash) = 32),
  -- the audit actor who invited ("user:<id>", or "system" for the bootstrap link)
  created_by        text        NOT NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  expires_at        timestamptz NOT NULL,
  accepted_at       timestamptz,
  accepted_user_id  uuid,
  revoked_at        timestamptz,
  PRIMARY KEY (org_id, id),
  -- a role with pending invitations cannot be deleted (revoke them first)
  FOREIGN KEY (org_id, role_id) REFERENCES roles (org_id, id) ON DELETE RESTRICT,
  FOREIGN KEY (org_id, accepted_user_id) REFERENCES users (org_id, id) ON DELETE SET NULL (accepted_user_id)
);
CREATE INDEX invitations_org_email_idx ON invitations (org_id, lower(email));

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sessions
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations
  USING (org_id = arca_current_org()) WITH CHECK (org_id = arca_current_org());

GRANT SELECT, INSERT, UPDATE, DELETE ON sessions, invitations TO arca_app;
