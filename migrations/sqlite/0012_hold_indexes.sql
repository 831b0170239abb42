-- Holds are few among many slots: counting a patient's live holds (inside the booking
-- transaction) and releasing lapsed ones (every 30 s) read only these, not the whole table.
CREATE INDEX slots_holder_idx ON slots (held_by, hold_expires_at) WHERE status = 'held';
CREATE INDEX slots_hold_expiry_idx ON slots (hold_expires_at) WHERE status = 'held';
