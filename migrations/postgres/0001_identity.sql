-- Identity: users, roles, one-time codes, login sessions and refresh tokens, mail outbox.
-- Ids are UUIDv7; instants are TIMESTAMPTZ in UTC.

CREATE TABLE clinics (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    time_zone   TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id                  UUID PRIMARY KEY,
    email               TEXT NOT NULL CHECK (email = lower(email)),
    display_name        TEXT NOT NULL,
    password_hash       TEXT,
    email_verified_at   TIMESTAMPTZ,
    mfa_method          TEXT NOT NULL DEFAULT 'none' CHECK (mfa_method IN ('none', 'totp', 'email')),
    totp_secret         TEXT,
    totp_pending_secret TEXT,
    totp_last_step      BIGINT,
    failed_logins       BIGINT NOT NULL DEFAULT 0,
    locked_until        TIMESTAMPTZ,
    deactivated_at      TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE user_roles (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('system_admin', 'clinic_admin', 'clinic_staff', 'doctor', 'patient', 'pharmacist')),
    clinic_id   UUID REFERENCES clinics (id),
    created_at  TIMESTAMPTZ NOT NULL,
    CHECK ((role IN ('clinic_admin', 'clinic_staff', 'doctor')) = (clinic_id IS NOT NULL)
           OR role = 'pharmacist')
);
CREATE UNIQUE INDEX user_roles_grant_key ON user_roles (user_id, role, COALESCE(clinic_id, '00000000-0000-0000-0000-000000000000'));
CREATE INDEX user_roles_clinic_idx ON user_roles (clinic_id);

CREATE TABLE one_time_codes (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'login', 'mfa', 'password_reset')),
    code_hash   TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    expires_at  TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX one_time_codes_user_purpose_idx ON one_time_codes (user_id, purpose);

CREATE TABLE mfa_challenges (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL,
    method      TEXT NOT NULL CHECK (method IN ('totp', 'email')),
    attempts    BIGINT NOT NULL DEFAULT 0,
    expires_at  TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT mfa_challenges_token_key UNIQUE (token_hash)
);

CREATE TABLE recovery_codes (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    used_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX recovery_codes_user_idx ON recovery_codes (user_id);

-- One row per login: the refresh-token family. Revoking it ends the login everywhere,
-- access tokens included (they carry its id and are checked against it).
CREATE TABLE auth_sessions (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     TIMESTAMPTZ NOT NULL,
    last_used_at   TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT
);
CREATE INDEX auth_sessions_user_idx ON auth_sessions (user_id);

CREATE TABLE refresh_tokens (
    id          UUID PRIMARY KEY,
    session_id  UUID NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT refresh_tokens_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

CREATE TABLE mail_outbox (
    id          UUID PRIMARY KEY,
    recipient   TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('logged', 'sent', 'failed')),
    error       TEXT,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX mail_outbox_recipient_idx ON mail_outbox (recipient, created_at);
