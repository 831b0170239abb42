-- Tax rates a clinic bills with, in basis points (2300 = 23 %).
CREATE TABLE tax_rates (
    id          BLOB PRIMARY KEY NOT NULL,
    clinic_id   BLOB NOT NULL REFERENCES clinics (id),
    name        TEXT NOT NULL,
    rate_bp     INTEGER NOT NULL CHECK (rate_bp BETWEEN 0 AND 10000),
    created_at  TEXT NOT NULL,
    CONSTRAINT tax_rates_name_key UNIQUE (clinic_id, name)
);

-- The last number issued per clinic and year: taken and bumped in the issuing transaction,
-- so numbers have no gaps and no repeats however many issue at once.
CREATE TABLE invoice_counters (
    clinic_id   BLOB NOT NULL REFERENCES clinics (id),
    year        INTEGER NOT NULL,
    last_number INTEGER NOT NULL CHECK (last_number > 0),
    PRIMARY KEY (clinic_id, year)
);

-- Invoices and credit notes. A draft has no number; issuing gives it the next one and
-- freezes it; a credit note names the invoice it voids. Money in minor units.
CREATE TABLE invoices (
    id               BLOB PRIMARY KEY NOT NULL,
    clinic_id        BLOB NOT NULL REFERENCES clinics (id),
    kind             TEXT NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
    status           TEXT NOT NULL CHECK (status IN ('draft', 'issued', 'paid', 'void')),
    number           TEXT,
    year             INTEGER,
    sequence         INTEGER,
    credits          BLOB REFERENCES invoices (id),
    patient_id       BLOB REFERENCES users (id),
    appointment_id   BLOB REFERENCES appointments (id),
    bill_to          TEXT NOT NULL DEFAULT '',
    currency         TEXT NOT NULL,
    subtotal_cents   INTEGER NOT NULL DEFAULT 0,
    discount_cents   INTEGER NOT NULL DEFAULT 0,
    tax_cents        INTEGER NOT NULL DEFAULT 0,
    total_cents      INTEGER NOT NULL DEFAULT 0,
    paid_cents       INTEGER NOT NULL DEFAULT 0 CHECK (paid_cents >= 0),
    note             TEXT NOT NULL DEFAULT '',
    issued_at        TEXT,
    created_by       BLOB REFERENCES users (id),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    CONSTRAINT invoices_number_key UNIQUE (clinic_id, number),
    CONSTRAINT invoices_sequence_key UNIQUE (clinic_id, year, sequence),
    CHECK ((status = 'draft') = (number IS NULL)),
    CHECK (paid_cents <= total_cents OR kind = 'credit_note')
);
CREATE INDEX invoices_patient_idx ON invoices (patient_id, created_at);
CREATE INDEX invoices_clinic_idx ON invoices (clinic_id, issued_at);
CREATE UNIQUE INDEX invoices_one_credit_key ON invoices (credits) WHERE credits IS NOT NULL;

CREATE TABLE invoice_lines (
    id              BLOB PRIMARY KEY NOT NULL,
    invoice_id      BLOB NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('consultation', 'medicine', 'lab_test', 'other')),
    description     TEXT NOT NULL,
    quantity        INTEGER NOT NULL CHECK (quantity > 0),
    unit_cents      INTEGER NOT NULL,
    discount_cents  INTEGER NOT NULL DEFAULT 0 CHECK (discount_cents >= 0),
    tax_rate_bp     INTEGER NOT NULL DEFAULT 0 CHECK (tax_rate_bp BETWEEN 0 AND 10000),
    net_cents       INTEGER NOT NULL,
    tax_cents       INTEGER NOT NULL,
    total_cents     INTEGER NOT NULL,
    dispensing_id   BLOB REFERENCES dispensings (id),
    CONSTRAINT invoice_lines_position_key UNIQUE (invoice_id, position)
);

CREATE TABLE payments (
    id           BLOB PRIMARY KEY NOT NULL,
    invoice_id   BLOB NOT NULL REFERENCES invoices (id),
    method       TEXT NOT NULL CHECK (method IN ('cash', 'card', 'transfer', 'insurance', 'other')),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    paid_on      TEXT NOT NULL,
    reference    TEXT NOT NULL DEFAULT '',
    recorded_by  BLOB REFERENCES users (id),
    created_at   TEXT NOT NULL
);
CREATE INDEX payments_invoice_idx ON payments (invoice_id);
