-- What a lab test costs at a clinic (by the test's code, as ordered), and the lab order
-- an invoice line bills, so each order is billed once.
CREATE TABLE lab_prices (
    id           UUID PRIMARY KEY,
    clinic_id    UUID NOT NULL REFERENCES clinics (id),
    test_code    TEXT NOT NULL,
    test_name    TEXT NOT NULL,
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    currency     TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT lab_prices_test_key UNIQUE (clinic_id, test_code)
);

ALTER TABLE invoice_lines ADD COLUMN lab_order_id UUID REFERENCES lab_orders (id);
CREATE INDEX invoice_lines_lab_order_idx ON invoice_lines (lab_order_id) WHERE lab_order_id IS NOT NULL;
CREATE INDEX invoice_lines_dispensing_idx ON invoice_lines (dispensing_id) WHERE dispensing_id IS NOT NULL;
