-- When a clinic is open, per weekday in its local time (several spans a day allowed):
-- the yardstick for shift coverage gaps.
CREATE TABLE clinic_hours (
    clinic_id   UUID NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    weekday     BIGINT NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    start_local TEXT NOT NULL,
    end_local   TEXT NOT NULL,
    PRIMARY KEY (clinic_id, weekday, start_local)
);

-- Staff shifts: one person's weekly working span at a clinic, in the clinic's local time,
-- from a first date (and until a last one). A span whose end is not after its start runs
-- overnight into the next day. Doctors are named by their profile (which may have no
-- account yet); everyone else by their account.
CREATE TABLE shifts (
    id          UUID PRIMARY KEY,
    clinic_id   UUID NOT NULL REFERENCES clinics (id),
    role        TEXT NOT NULL CHECK (role IN ('doctor', 'clinic_staff', 'clinic_admin', 'pharmacist')),
    doctor_id   UUID REFERENCES doctors (id) ON DELETE CASCADE,
    user_id     UUID REFERENCES users (id) ON DELETE CASCADE,
    weekday     BIGINT NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    start_local TEXT NOT NULL,
    end_local   TEXT NOT NULL,
    valid_from  DATE NOT NULL,
    valid_until DATE,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CHECK ((role = 'doctor') = (doctor_id IS NOT NULL)),
    CHECK (role = 'doctor' OR user_id IS NOT NULL),
    CHECK (valid_until IS NULL OR valid_until >= valid_from)
);
CREATE INDEX shifts_clinic_idx ON shifts (clinic_id, weekday);
CREATE INDEX shifts_user_idx ON shifts (user_id);
CREATE INDEX shifts_doctor_idx ON shifts (doctor_id);

-- One occurrence of a shift changed: not worked that day (no times) or other hours.
CREATE TABLE shift_exceptions (
    id          UUID PRIMARY KEY,
    shift_id    UUID NOT NULL REFERENCES shifts (id) ON DELETE CASCADE,
    local_date  DATE NOT NULL,
    start_local TEXT,
    end_local   TEXT,
    reason      TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT shift_exceptions_day_key UNIQUE (shift_id, local_date)
);
