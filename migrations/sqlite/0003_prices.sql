-- Clinic price lists: one price per visit type, for the whole clinic (doctor_id NULL)
-- or for one doctor. The clinic's list is replaced as a whole in one transaction.
CREATE TABLE prices (
    id           BLOB PRIMARY KEY NOT NULL,
    clinic_id    BLOB NOT NULL REFERENCES clinics (id),
    doctor_id    BLOB REFERENCES doctors (id),
    visit_type   TEXT NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
    currency     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX prices_clinic_visit_key ON prices (clinic_id, visit_type) WHERE doctor_id IS NULL;
CREATE UNIQUE INDEX prices_doctor_visit_key ON prices (clinic_id, doctor_id, visit_type) WHERE doctor_id IS NOT NULL;
