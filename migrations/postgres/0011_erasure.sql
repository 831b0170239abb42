-- When an account was erased: its clinical record is kept sealed until the retention
-- period after this has passed, then purged.
ALTER TABLE users ADD COLUMN erased_at TIMESTAMPTZ;
