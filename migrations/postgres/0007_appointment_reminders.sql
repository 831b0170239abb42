-- When the next reminder of a booked appointment is due; the reminder job sends it and
-- moves this to the next one (24 h, then 2 h before, by default), or clears it.
ALTER TABLE appointments ADD COLUMN next_reminder_at TIMESTAMPTZ;
CREATE INDEX appointments_next_reminder_idx ON appointments (next_reminder_at) WHERE next_reminder_at IS NOT NULL;
