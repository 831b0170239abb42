-- The booking agent: waitlist entries, chat sessions for replicas, orchestration records.

CREATE TABLE waitlist (
    id           UUID PRIMARY KEY,
    patient_id   UUID NOT NULL REFERENCES users (id),
    specialty_id UUID REFERENCES specialties (id),
    doctor_id    UUID REFERENCES doctors (id),
    note         TEXT NOT NULL DEFAULT '',
    -- Higher first; equal priorities in the order they joined.
    priority     BIGINT NOT NULL DEFAULT 0,
    status       TEXT NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'offered', 'booked', 'left')),
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    CHECK (specialty_id IS NOT NULL OR doctor_id IS NOT NULL)
);
CREATE INDEX waitlist_doctor_idx ON waitlist (doctor_id, status, priority, created_at);
CREATE INDEX waitlist_specialty_idx ON waitlist (specialty_id, status, priority, created_at);
CREATE UNIQUE INDEX waitlist_patient_doctor_key ON waitlist (patient_id, doctor_id) WHERE status = 'waiting' AND doctor_id IS NOT NULL;
CREATE UNIQUE INDEX waitlist_patient_specialty_key ON waitlist (patient_id, specialty_id) WHERE status = 'waiting' AND doctor_id IS NULL;

-- Encrypted chat contexts, when sessions live in the database (several replicas).
CREATE TABLE chat_sessions (
    id          UUID PRIMARY KEY,
    sealed      BYTEA NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- One row per LLM attempt, for the admin console's figures.
CREATE TABLE orchestration_calls (
    id              UUID PRIMARY KEY,
    session_id      UUID,
    pipeline        TEXT NOT NULL,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    attempt         BIGINT NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    error_class     TEXT,
    latency_ms      BIGINT NOT NULL,
    tokens_in       BIGINT NOT NULL,
    tokens_out      BIGINT NOT NULL,
    prompt_version  TEXT NOT NULL,
    at              TIMESTAMPTZ NOT NULL
);
CREATE INDEX orchestration_calls_at_idx ON orchestration_calls (at);
