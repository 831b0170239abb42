-- Front-desk commands made offline and synced: one row per command id (the desk's
-- UUIDv7), taken before the command is applied, so a batch sent twice applies nothing
-- twice; the body's digest tells a resend from a different command under the same id.
CREATE TABLE sync_commands (
    id          UUID PRIMARY KEY,
    clinic_id   UUID NOT NULL REFERENCES clinics (id),
    actor_id    UUID NOT NULL REFERENCES users (id),
    kind        TEXT NOT NULL,
    body_digest TEXT NOT NULL,
    made_at     TIMESTAMPTZ NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL,
    answer      TEXT NOT NULL
);
CREATE INDEX sync_commands_clinic_idx ON sync_commands (clinic_id, applied_at);
