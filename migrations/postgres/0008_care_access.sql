-- An existing account joins a clinic role only when it accepts: the invitation waits here
-- until that account, signed in, accepts it; then the role (and, for a doctor, the link to
-- the profile) is granted.
CREATE TABLE clinic_invitations (
    id           UUID PRIMARY KEY,
    clinic_id    UUID NOT NULL REFERENCES clinics (id),
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email        TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('clinic_admin', 'clinic_staff', 'doctor')),
    doctor_id    UUID REFERENCES doctors (id) ON DELETE CASCADE,
    invited_by   UUID,
    expires_at   TIMESTAMPTZ NOT NULL,
    accepted_at  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    CHECK ((role = 'doctor') = (doctor_id IS NOT NULL))
);
CREATE INDEX clinic_invitations_user_idx ON clinic_invitations (user_id);
CREATE INDEX clinic_invitations_clinic_idx ON clinic_invitations (clinic_id);

-- A patient's share of their whole record with a clinic: its treating doctors then read
-- what other clinics wrote. Granted and revoked by the patient only.
CREATE TABLE record_shares (
    patient_id  UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    clinic_id   UUID NOT NULL REFERENCES clinics (id),
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (patient_id, clinic_id)
);
