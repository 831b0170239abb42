-- The audit chain's append in one round trip: the chain's lock, then the record as `seq`
-- after `prev` only if `prev` is still the tail (the caller computed the record's hash from
-- it). False when another writer moved the tail meanwhile: the caller, now holding the
-- lock, reads the tail and appends after it. Each statement of the function sees what was
-- committed before it ran, so the check after the lock sees the latest tail.
CREATE FUNCTION audit_append(p_seq BIGINT, p_id UUID, p_at TIMESTAMPTZ, p_actor UUID, p_action TEXT,
    p_subject TEXT, p_clinic UUID, p_details TEXT, p_prev TEXT, p_hash TEXT)
RETURNS BOOLEAN LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7203551);
    INSERT INTO audit (seq, id, at, actor_id, action, subject, clinic_id, details, prev_hash, hash)
    SELECT p_seq, p_id, p_at, p_actor, p_action, p_subject, p_clinic, p_details, p_prev, p_hash
    WHERE NOT EXISTS (SELECT 1 FROM audit WHERE seq >= p_seq)
    AND EXISTS (SELECT 1 FROM audit WHERE seq = p_seq - 1 AND hash = p_prev);
    RETURN FOUND;
END
$$;
