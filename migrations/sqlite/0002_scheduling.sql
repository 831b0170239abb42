-- Scheduling: clinic onboarding, specialties, doctors, weekly schedules, slots,
-- appointments, idempotency keys and the audit trail.

ALTER TABLE clinics ADD COLUMN address TEXT NOT NULL DEFAULT '';
ALTER TABLE clinics ADD COLUMN contact_email TEXT NOT NULL DEFAULT '';
ALTER TABLE clinics ADD COLUMN contact_phone TEXT NOT NULL DEFAULT '';
ALTER TABLE clinics ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE clinics ADD COLUMN logo_path TEXT;
-- Patients may cancel or reschedule up to this many minutes before the start.
ALTER TABLE clinics ADD COLUMN cancellation_cutoff_minutes INTEGER NOT NULL DEFAULT 120;

CREATE TABLE clinic_requests (
    id              BLOB PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    address         TEXT NOT NULL,
    time_zone       TEXT NOT NULL,
    contact_name    TEXT NOT NULL,
    contact_email   TEXT NOT NULL,
    contact_phone   TEXT NOT NULL,
    specialties     TEXT NOT NULL DEFAULT '[]',
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    reason          TEXT,
    decided_by      BLOB REFERENCES users (id),
    decided_at      TEXT,
    clinic_id       BLOB REFERENCES clinics (id),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX clinic_requests_status_idx ON clinic_requests (status, created_at);

CREATE TABLE specialties (
    id          BLOB PRIMARY KEY NOT NULL,
    slug        TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    -- Lower-case search text: synonyms and symptom keywords, one per line.
    synonyms    TEXT NOT NULL DEFAULT '',
    symptoms    TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT specialties_slug_key UNIQUE (slug)
);

CREATE TABLE clinic_specialties (
    clinic_id    BLOB NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    specialty_id BLOB NOT NULL REFERENCES specialties (id),
    PRIMARY KEY (clinic_id, specialty_id)
);

CREATE TABLE doctors (
    id              BLOB PRIMARY KEY NOT NULL,
    user_id         BLOB REFERENCES users (id),
    clinic_id       BLOB NOT NULL REFERENCES clinics (id),
    display_name    TEXT NOT NULL,
    bio             TEXT NOT NULL DEFAULT '',
    -- ISO 639-1 codes, comma-separated with leading and trailing commas: ',en,pt,'.
    languages       TEXT NOT NULL DEFAULT ',en,',
    fee_cents       INTEGER NOT NULL DEFAULT 0 CHECK (fee_cents >= 0),
    currency        TEXT NOT NULL DEFAULT 'EUR',
    active          INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    deleted_at      TEXT
);
CREATE INDEX doctors_clinic_idx ON doctors (clinic_id);
CREATE UNIQUE INDEX doctors_user_clinic_key ON doctors (user_id, clinic_id) WHERE user_id IS NOT NULL;

CREATE TABLE doctor_specialties (
    doctor_id    BLOB NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
    specialty_id BLOB NOT NULL REFERENCES specialties (id),
    PRIMARY KEY (doctor_id, specialty_id)
);
CREATE INDEX doctor_specialties_specialty_idx ON doctor_specialties (specialty_id, doctor_id);

-- A doctor's weekly working hours at their clinic, in the clinic's local time.
CREATE TABLE schedules (
    id                  BLOB PRIMARY KEY NOT NULL,
    doctor_id           BLOB NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
    -- The rules, as JSON: [{"weekday":"mon","start":"09:00","end":"17:00","breaks":[["12:00","13:00"]]}]
    rules               TEXT NOT NULL,
    slot_minutes        INTEGER NOT NULL CHECK (slot_minutes BETWEEN 5 AND 480),
    buffer_minutes      INTEGER NOT NULL DEFAULT 0 CHECK (buffer_minutes BETWEEN 0 AND 240),
    min_notice_minutes  INTEGER NOT NULL DEFAULT 60 CHECK (min_notice_minutes >= 0),
    horizon_days        INTEGER NOT NULL DEFAULT 60 CHECK (horizon_days BETWEEN 1 AND 366),
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    CONSTRAINT schedules_doctor_key UNIQUE (doctor_id)
);

-- Date exceptions: a closed day, or different hours on one local date.
CREATE TABLE schedule_overrides (
    id          BLOB PRIMARY KEY NOT NULL,
    doctor_id   BLOB NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
    local_date  TEXT NOT NULL,
    start_local TEXT,
    end_local   TEXT,
    reason      TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    CONSTRAINT schedule_overrides_day_key UNIQUE (doctor_id, local_date)
);

CREATE TABLE time_off (
    id          BLOB PRIMARY KEY NOT NULL,
    doctor_id   BLOB NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
    starts_at   TEXT NOT NULL,
    ends_at     TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX time_off_doctor_idx ON time_off (doctor_id, starts_at);

-- Bookable intervals. A slot is claimed only by a conditional UPDATE on its status.
CREATE TABLE slots (
    id              BLOB PRIMARY KEY NOT NULL,
    doctor_id       BLOB NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
    clinic_id       BLOB NOT NULL REFERENCES clinics (id),
    starts_at       TEXT NOT NULL,
    ends_at         TEXT NOT NULL,
    -- The start in the clinic's local time, for filters by day and part of day.
    local_date      TEXT NOT NULL,
    local_minute    INTEGER NOT NULL CHECK (local_minute BETWEEN 0 AND 1439),
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'held', 'booked', 'blocked')),
    held_by         BLOB REFERENCES users (id),
    hold_expires_at TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CONSTRAINT slots_doctor_start_key UNIQUE (doctor_id, starts_at),
    CHECK (ends_at > starts_at),
    CHECK ((status = 'held') = (hold_expires_at IS NOT NULL AND held_by IS NOT NULL))
);
CREATE INDEX slots_doctor_time_idx ON slots (doctor_id, starts_at, status);
CREATE INDEX slots_time_idx ON slots (starts_at, status);
CREATE INDEX slots_local_idx ON slots (local_date, local_minute);

CREATE TABLE appointments (
    id              BLOB PRIMARY KEY NOT NULL,
    slot_id         BLOB NOT NULL REFERENCES slots (id),
    patient_id      BLOB NOT NULL REFERENCES users (id),
    doctor_id       BLOB NOT NULL REFERENCES doctors (id),
    clinic_id       BLOB NOT NULL REFERENCES clinics (id),
    starts_at       TEXT NOT NULL,
    ends_at         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('booked', 'checked_in', 'completed', 'no_show', 'cancelled')),
    reason          TEXT NOT NULL DEFAULT '',
    booked_by       BLOB NOT NULL REFERENCES users (id),
    cancelled_by    BLOB REFERENCES users (id),
    cancel_reason   TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
-- The database itself refuses a second live appointment on one slot.
CREATE UNIQUE INDEX appointments_live_slot_key ON appointments (slot_id) WHERE status <> 'cancelled';
CREATE INDEX appointments_patient_idx ON appointments (patient_id, starts_at);
CREATE INDEX appointments_doctor_idx ON appointments (doctor_id, starts_at);
CREATE INDEX appointments_clinic_idx ON appointments (clinic_id, starts_at);

-- A patient's chosen doctor ("select-doctor").
CREATE TABLE patient_doctors (
    patient_id  BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    doctor_id   BLOB NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (patient_id, doctor_id)
);

-- Stored answers of booking writes, so a retried request gets the first answer.
CREATE TABLE idempotency_keys (
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    operation       TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    response_status INTEGER NOT NULL,
    response_body   TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- Append-only record of decisions and changes; each row carries the hash of the one
-- before it, so an edited or deleted row breaks the chain.
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY NOT NULL,
    id          BLOB NOT NULL,
    at          TEXT NOT NULL,
    actor_id    BLOB,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    clinic_id   BLOB,
    details     TEXT NOT NULL DEFAULT '{}',
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_actor_idx ON audit (actor_id, at);
CREATE INDEX audit_action_idx ON audit (action, at);
