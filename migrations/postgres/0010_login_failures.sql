-- Failed password sign-ins counted per address (a keyed digest of it), whether or not an
-- account has that address, so a lockout says nothing about which addresses exist.
CREATE TABLE login_failures (
    email_digest TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    locked_until TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL
);
