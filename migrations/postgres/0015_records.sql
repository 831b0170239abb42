-- Clinical records: patients' profiles and the clinics they registered at, visit records
-- with their addenda and prescriptions, and lab orders with their results. Narrative
-- clinical text is sealed (AES-256-GCM, key id inside) with the row id as context;
-- structured values a clinic queries (doses, lab values) are plain. Users never delete a
-- record: `deleted_at`, who and why hide it, and only the retention job purges it.

-- A patient registered at a clinic's front desk (by their QR code or by staff).
CREATE TABLE clinic_patients (
    clinic_id   UUID NOT NULL REFERENCES clinics (id),
    patient_id  UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (clinic_id, patient_id)
);
CREATE INDEX clinic_patients_patient_idx ON clinic_patients (patient_id);

-- Administrative fields in the clear (staff find patients by them); the clinical ones
-- (allergies, conditions, history, medication) sealed as one JSON document.
CREATE TABLE patient_profiles (
    patient_id          UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    date_of_birth       DATE,
    sex                 TEXT CHECK (sex IN ('female', 'male', 'intersex', 'unknown')),
    blood_group         TEXT CHECK (blood_group IN ('A+', 'A-', 'B+', 'B-', 'AB+', 'AB-', 'O+', 'O-')),
    national_id         TEXT,
    insurance_id        TEXT,
    -- JSON: [{"name", "relation", "phone"}]
    emergency_contacts  TEXT NOT NULL DEFAULT '[]',
    sealed              BYTEA,
    key_id              BIGINT,
    -- Raised by the patient to revoke every QR code shown before.
    qr_epoch            BIGINT NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX patient_profiles_birth_idx ON patient_profiles (date_of_birth);

-- One record per consultation: from an appointment (in person or remote) or a walk-in.
CREATE TABLE visit_records (
    id              UUID PRIMARY KEY,
    patient_id      UUID NOT NULL REFERENCES users (id),
    clinic_id       UUID NOT NULL REFERENCES clinics (id),
    doctor_id       UUID NOT NULL REFERENCES doctors (id),
    appointment_id  UUID REFERENCES appointments (id),
    kind            TEXT NOT NULL CHECK (kind IN ('in_person', 'remote', 'walk_in')),
    video_url       TEXT,
    status          TEXT NOT NULL CHECK (status IN ('draft', 'signed')),
    -- Complaint, vitals, findings, diagnoses and plan.
    sealed          BYTEA NOT NULL,
    key_id          BIGINT NOT NULL,
    follow_up_days  BIGINT,
    visited_at      TIMESTAMPTZ NOT NULL,
    signed_at       TIMESTAMPTZ,
    signed_by       UUID REFERENCES users (id),
    created_by      UUID NOT NULL REFERENCES users (id),
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ,
    deleted_by      UUID REFERENCES users (id),
    deleted_reason  TEXT,
    CHECK ((status = 'signed') = (signed_at IS NOT NULL))
);
CREATE INDEX visit_records_patient_idx ON visit_records (patient_id, visited_at);
CREATE UNIQUE INDEX visit_records_appointment_key ON visit_records (appointment_id) WHERE appointment_id IS NOT NULL AND deleted_at IS NULL;

-- What was added to a signed record, by whom and why (a signed record never changes).
CREATE TABLE record_addenda (
    id          UUID PRIMARY KEY,
    record_id   UUID NOT NULL REFERENCES visit_records (id),
    author_id   UUID NOT NULL REFERENCES users (id),
    -- Reason and text.
    sealed      BYTEA NOT NULL,
    key_id      BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX record_addenda_record_idx ON record_addenda (record_id, created_at);

-- Written with their record and signed with it.
CREATE TABLE prescriptions (
    id              UUID PRIMARY KEY,
    record_id       UUID NOT NULL REFERENCES visit_records (id),
    patient_id      UUID NOT NULL REFERENCES users (id),
    position        BIGINT NOT NULL,
    medicine        TEXT NOT NULL,
    dose            TEXT NOT NULL,
    route           TEXT NOT NULL CHECK (route IN ('oral', 'topical', 'inhaled', 'injection', 'sublingual', 'rectal', 'nasal', 'eye', 'ear', 'other')),
    times_per_day   BIGINT,
    every_hours     BIGINT,
    duration_days   BIGINT,
    quantity        BIGINT NOT NULL,
    refills         BIGINT NOT NULL DEFAULT 0,
    instructions    TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ,
    deleted_by      UUID REFERENCES users (id),
    deleted_reason  TEXT,
    CONSTRAINT prescriptions_position_key UNIQUE (record_id, position)
);
CREATE INDEX prescriptions_patient_idx ON prescriptions (patient_id);

CREATE TABLE lab_orders (
    id              UUID PRIMARY KEY,
    record_id       UUID NOT NULL REFERENCES visit_records (id),
    patient_id      UUID NOT NULL REFERENCES users (id),
    clinic_id       UUID NOT NULL REFERENCES clinics (id),
    doctor_id       UUID NOT NULL REFERENCES doctors (id),
    test_code       TEXT NOT NULL,
    test_name       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('ordered', 'collected', 'resulted', 'reviewed')),
    ordered_by      UUID NOT NULL REFERENCES users (id),
    collected_at    TIMESTAMPTZ,
    resulted_at     TIMESTAMPTZ,
    reviewed_at     TIMESTAMPTZ,
    reviewed_by     UUID REFERENCES users (id),
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ,
    deleted_by      UUID REFERENCES users (id),
    deleted_reason  TEXT
);
CREATE INDEX lab_orders_patient_idx ON lab_orders (patient_id, created_at);
CREATE INDEX lab_orders_record_idx ON lab_orders (record_id);

-- One measured value; `flag` is computed from the value and the reference range.
CREATE TABLE lab_results (
    id              UUID PRIMARY KEY,
    order_id        UUID NOT NULL REFERENCES lab_orders (id),
    patient_id      UUID NOT NULL REFERENCES users (id),
    code            TEXT NOT NULL,
    name            TEXT NOT NULL,
    value           DOUBLE PRECISION,
    value_text      TEXT,
    unit            TEXT NOT NULL DEFAULT '',
    ref_low         DOUBLE PRECISION,
    ref_high        DOUBLE PRECISION,
    flag            TEXT NOT NULL CHECK (flag IN ('normal', 'low', 'high', 'unflagged')),
    entered_by      UUID NOT NULL REFERENCES users (id),
    created_at      TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ,
    deleted_by      UUID REFERENCES users (id),
    deleted_reason  TEXT,
    CHECK (value IS NOT NULL OR value_text IS NOT NULL)
);
CREATE INDEX lab_results_order_idx ON lab_results (order_id);
CREATE INDEX lab_results_patient_idx ON lab_results (patient_id);

-- A file on a record or on one of its lab orders (a scan, a PDF report). Its bytes lie
-- sealed in the file store under `storage_key`; what it is was read from its content.
CREATE TABLE clinical_files (
    id              UUID PRIMARY KEY,
    record_id       UUID NOT NULL REFERENCES visit_records (id),
    lab_order_id    UUID REFERENCES lab_orders (id),
    patient_id      UUID NOT NULL REFERENCES users (id),
    clinic_id       UUID NOT NULL REFERENCES clinics (id),
    name            TEXT NOT NULL,
    media_type      TEXT NOT NULL CHECK (media_type IN ('application/pdf', 'image/jpeg', 'image/png')),
    size            BIGINT NOT NULL,
    sha256          TEXT NOT NULL,
    storage_key     TEXT NOT NULL,
    uploaded_by     UUID NOT NULL REFERENCES users (id),
    created_at      TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ,
    deleted_by      UUID REFERENCES users (id),
    deleted_reason  TEXT
);
CREATE INDEX clinical_files_patient_idx ON clinical_files (patient_id, created_at);
CREATE INDEX clinical_files_record_idx ON clinical_files (record_id);

-- A consultation's transcript (from its audio, which is not kept, or pasted), sealed.
CREATE TABLE transcripts (
    id              UUID PRIMARY KEY,
    record_id       UUID NOT NULL REFERENCES visit_records (id),
    patient_id      UUID NOT NULL REFERENCES users (id),
    clinic_id       UUID NOT NULL REFERENCES clinics (id),
    source          TEXT NOT NULL CHECK (source IN ('audio', 'pasted')),
    sealed          BYTEA NOT NULL,
    key_id          BIGINT NOT NULL,
    model           TEXT,
    created_by      UUID NOT NULL REFERENCES users (id),
    created_at      TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ,
    deleted_by      UUID REFERENCES users (id),
    deleted_reason  TEXT
);
CREATE INDEX transcripts_record_idx ON transcripts (record_id, created_at);
CREATE INDEX transcripts_patient_idx ON transcripts (patient_id);
