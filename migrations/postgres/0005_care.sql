-- Doctors' notes (sealed), the care plans extracted from them, reminders and check-ins,
-- the notification outbox, and waitlist offers.

-- Where a patient wants reminders, and in which time zone.
ALTER TABLE users ADD COLUMN phone TEXT;
ALTER TABLE users ADD COLUMN notify_channel TEXT NOT NULL DEFAULT 'email'
    CHECK (notify_channel IN ('email', 'sms', 'whatsapp'));
ALTER TABLE users ADD COLUMN time_zone TEXT;

-- The note text never lies here in the clear: `sealed` is AES-256-GCM, its key id inside.
CREATE TABLE notes (
    id          UUID PRIMARY KEY,
    patient_id  UUID NOT NULL REFERENCES users (id),
    doctor_id   UUID NOT NULL REFERENCES doctors (id),
    clinic_id   UUID NOT NULL REFERENCES clinics (id),
    author_id   UUID NOT NULL REFERENCES users (id),
    sealed      BYTEA NOT NULL,
    key_id      BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    deleted_at  TIMESTAMPTZ
);
CREATE INDEX notes_patient_idx ON notes (patient_id, created_at);

-- One plan per note; a newer note of the same doctor for the same patient supersedes it.
CREATE TABLE care_plans (
    id             UUID PRIMARY KEY,
    note_id        UUID NOT NULL REFERENCES notes (id),
    patient_id     UUID NOT NULL REFERENCES users (id),
    doctor_id      UUID NOT NULL REFERENCES doctors (id),
    -- The extraction (checklist and plan texts), sealed like the note.
    sealed         BYTEA NOT NULL,
    time_zone      TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('active', 'superseded')),
    superseded_by  UUID,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX care_plans_patient_idx ON care_plans (patient_id, status);
CREATE UNIQUE INDEX care_plans_active_key ON care_plans (patient_id, doctor_id) WHERE status = 'active';

-- Scheduled plan actions; their texts are in the plan's sealed extraction, by position.
CREATE TABLE plan_items (
    id             UUID PRIMARY KEY,
    plan_id        UUID NOT NULL REFERENCES care_plans (id),
    position       BIGINT NOT NULL,
    times_per_day  BIGINT,
    every_hours    BIGINT,
    first_day      DATE NOT NULL,
    starts_at      TIMESTAMPTZ NOT NULL,
    occurrences    BIGINT NOT NULL,
    extensions     BIGINT NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT plan_items_position_key UNIQUE (plan_id, position)
);

CREATE TABLE checklist_items (
    id          UUID PRIMARY KEY,
    plan_id     UUID NOT NULL REFERENCES care_plans (id),
    position    BIGINT NOT NULL,
    due_at      TIMESTAMPTZ,
    done_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT checklist_items_position_key UNIQUE (plan_id, position)
);

CREATE TABLE reminders (
    id             UUID PRIMARY KEY,
    plan_item_id   UUID NOT NULL REFERENCES plan_items (id),
    plan_id        UUID NOT NULL REFERENCES care_plans (id),
    patient_id     UUID NOT NULL REFERENCES users (id),
    seq            BIGINT NOT NULL,
    due_at         TIMESTAMPTZ NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('scheduled', 'done', 'missed', 'cancelled')),
    -- Added because an earlier one was missed.
    extension      BOOLEAN NOT NULL DEFAULT FALSE,
    checked_in_at  TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT reminders_item_seq_key UNIQUE (plan_item_id, seq)
);
CREATE INDEX reminders_patient_idx ON reminders (patient_id, due_at);
CREATE INDEX reminders_due_idx ON reminders (status, due_at);

-- Every notification leaves through here. One row is one message on one channel; the
-- body is sealed. Dispatchers lease due rows (FOR UPDATE SKIP LOCKED on PostgreSQL).
CREATE TABLE outbox (
    id            UUID PRIMARY KEY,
    kind          TEXT NOT NULL,
    channel       TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'whatsapp', 'webhook')),
    recipient     TEXT NOT NULL,
    user_id       UUID REFERENCES users (id),
    -- What it is about ('appointment:<id>', 'plan:<id>', 'offer:<id>'), to cancel by.
    about         TEXT NOT NULL,
    sealed        BYTEA NOT NULL,
    due_at        TIMESTAMPTZ NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'dead', 'cancelled')),
    attempts      BIGINT NOT NULL DEFAULT 0,
    lease_until   TIMESTAMPTZ,
    last_error    TEXT,
    sent_at       TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX outbox_due_idx ON outbox (status, due_at);
CREATE INDEX outbox_about_idx ON outbox (about, status);

-- A freed slot held for a waitlisted patient until `expires_at`.
CREATE TABLE waitlist_offers (
    id           UUID PRIMARY KEY,
    waitlist_id  UUID NOT NULL REFERENCES waitlist (id),
    patient_id   UUID NOT NULL REFERENCES users (id),
    slot_id      UUID NOT NULL REFERENCES slots (id),
    status       TEXT NOT NULL CHECK (status IN ('offered', 'accepted', 'expired', 'declined')),
    expires_at   TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX waitlist_offers_due_idx ON waitlist_offers (status, expires_at);
CREATE INDEX waitlist_offers_slot_idx ON waitlist_offers (slot_id);
