-- The booking agent: waitlist entries, chat sessions for replicas, orchestration records.

CREATE TABLE waitlist (
    id           BLOB PRIMARY KEY NOT NULL,
    patient_id   BLOB NOT NULL REFERENCES users (id),
    specialty_id BLOB REFERENCES specialties (id),
    doctor_id    BLOB REFERENCES doctors (id),
    note         TEXT NOT NULL DEFAULT '',
    -- Higher first; equal priorities in the order they joined.
    priority     INTEGER NOT NULL DEFAULT 0,
    status       TEXT NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'offered', 'booked', 'left')),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    CHECK (specialty_id IS NOT NULL OR doctor_id IS NOT NULL)
);
CREATE INDEX waitlist_doctor_idx ON waitlist (doctor_id, status, priority, created_at);
CREATE INDEX waitlist_specialty_idx ON waitlist (specialty_id, status, priority, created_at);
CREATE UNIQUE INDEX waitlist_patient_doctor_key ON waitlist (patient_id, doctor_id) WHERE status = 'waiting' AND doctor_id IS NOT NULL;
CREATE UNIQUE INDEX waitlist_patient_specialty_key ON waitlist (patient_id, specialty_id) WHERE status = 'waiting' AND doctor_id IS NULL;

-- Encrypted chat contexts, when sessions live in the database (several replicas).
CREATE TABLE chat_sessions (
    id          BLOB PRIMARY KEY NOT NULL,
    sealed      BLOB NOT NULL,
    updated_at  TEXT NOT NULL
);

-- One row per LLM attempt, for the admin console's figures.
CREATE TABLE orchestration_calls (
    id              BLOB PRIMARY KEY NOT NULL,
    session_id      BLOB,
    pipeline        TEXT NOT NULL,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    error_class     TEXT,
    latency_ms      INTEGER NOT NULL,
    tokens_in       INTEGER NOT NULL,
    tokens_out      INTEGER NOT NULL,
    prompt_version  TEXT NOT NULL,
    at              TEXT NOT NULL
);
CREATE INDEX orchestration_calls_at_idx ON orchestration_calls (at);
