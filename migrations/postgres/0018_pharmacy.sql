-- A clinic's medicine catalogue. Money in minor units.
CREATE TABLE medicines (
    id                  UUID PRIMARY KEY,
    clinic_id           UUID NOT NULL REFERENCES clinics (id),
    name                TEXT NOT NULL,
    generic_name        TEXT NOT NULL DEFAULT '',
    form                TEXT NOT NULL,
    strength            TEXT NOT NULL DEFAULT '',
    dosage_guidance     TEXT NOT NULL DEFAULT '',
    unit                TEXT NOT NULL,
    unit_cost_cents     BIGINT NOT NULL CHECK (unit_cost_cents >= 0),
    unit_price_cents    BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    currency            TEXT NOT NULL,
    prescription_only   BOOLEAN NOT NULL DEFAULT TRUE,
    low_stock_threshold BIGINT NOT NULL DEFAULT 0 CHECK (low_stock_threshold >= 0),
    active              BOOLEAN NOT NULL DEFAULT TRUE,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    CONSTRAINT medicines_name_key UNIQUE (clinic_id, name, form, strength)
);

-- A batch on the shelf. Its stock on hand is the sum of its ledger rows, kept by the
-- trigger below in the same statement, and never negative (the CHECK refuses the row
-- that would make it so).
CREATE TABLE stock_batches (
    id           UUID PRIMARY KEY,
    medicine_id  UUID NOT NULL REFERENCES medicines (id),
    clinic_id    UUID NOT NULL REFERENCES clinics (id),
    batch_number TEXT NOT NULL,
    expiry_date  DATE NOT NULL,
    location     TEXT NOT NULL DEFAULT '',
    on_hand      BIGINT NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    created_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT stock_batches_number_key UNIQUE (medicine_id, batch_number)
);
CREATE INDEX stock_batches_medicine_idx ON stock_batches (medicine_id, expiry_date);

-- What the pharmacy gave: against a prescription, or sold over the counter.
CREATE TABLE dispensings (
    id              UUID PRIMARY KEY,
    clinic_id       UUID NOT NULL REFERENCES clinics (id),
    medicine_id     UUID NOT NULL REFERENCES medicines (id),
    prescription_id UUID REFERENCES prescriptions (id),
    patient_id      UUID REFERENCES users (id),
    quantity        BIGINT NOT NULL CHECK (quantity > 0),
    pharmacist_id   UUID NOT NULL REFERENCES users (id),
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX dispensings_prescription_idx ON dispensings (prescription_id);
CREATE INDEX dispensings_clinic_idx ON dispensings (clinic_id, created_at);

-- Every change of stock, append-only: received, dispensed, adjusted (with a reason),
-- expired (written off), returned.
CREATE TABLE stock_ledger (
    id            UUID PRIMARY KEY,
    clinic_id     UUID NOT NULL REFERENCES clinics (id),
    medicine_id   UUID NOT NULL REFERENCES medicines (id),
    batch_id      UUID NOT NULL REFERENCES stock_batches (id),
    kind          TEXT NOT NULL CHECK (kind IN ('received', 'dispensed', 'adjusted', 'expired', 'returned')),
    quantity      BIGINT NOT NULL CHECK (quantity <> 0),
    reason        TEXT NOT NULL DEFAULT '',
    dispensing_id UUID REFERENCES dispensings (id),
    actor_id      UUID REFERENCES users (id),
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX stock_ledger_batch_idx ON stock_ledger (batch_id);
CREATE INDEX stock_ledger_clinic_idx ON stock_ledger (clinic_id, created_at);

CREATE FUNCTION stock_ledger_applies() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE stock_batches SET on_hand = on_hand + NEW.quantity WHERE id = NEW.batch_id;
    RETURN NEW;
END;
$$;
CREATE TRIGGER stock_ledger_applies AFTER INSERT ON stock_ledger
    FOR EACH ROW EXECUTE FUNCTION stock_ledger_applies();

CREATE FUNCTION stock_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the stock ledger is append-only';
END;
$$;
CREATE TRIGGER stock_ledger_no_change BEFORE UPDATE OR DELETE ON stock_ledger
    FOR EACH ROW EXECUTE FUNCTION stock_ledger_append_only();
