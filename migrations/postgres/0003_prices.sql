-- Clinic price lists: one price per visit type, for the whole clinic (doctor_id NULL)
-- or for one doctor. The clinic's list is replaced as a whole in one transaction.
CREATE TABLE prices (
    id           UUID PRIMARY KEY,
    clinic_id    UUID NOT NULL REFERENCES clinics (id),
    doctor_id    UUID REFERENCES doctors (id),
    visit_type   TEXT NOT NULL,
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    currency     TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX prices_clinic_visit_key ON prices (clinic_id, visit_type) WHERE doctor_id IS NULL;
CREATE UNIQUE INDEX prices_doctor_visit_key ON prices (clinic_id, doctor_id, visit_type) WHERE doctor_id IS NOT NULL;
