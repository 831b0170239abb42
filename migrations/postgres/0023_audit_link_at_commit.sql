-- The audit chain linked at commit. A transaction writes its records to `audit_pending`
-- (no lock, no hash); when it commits, a deferred trigger takes the chain's lock, reads the
-- tail, computes each record's hash here (the same SHA-256 over the same fields, each
-- followed by 0x1f, that `audit::chain_hash` computes) and moves the record into `audit`.
-- The lock is held from that trigger to the end of the commit only: no round trip to the
-- service, and no other statement of the transaction, waits inside it. The table is
-- unlogged because it is always empty once a transaction ends: its rows are moved in the
-- transaction that wrote them, and `audit` is written to the WAL as before.
-- `audit_append` (0022) stays: during a rolling upgrade, replicas of the previous version
-- still append through it, under the same lock, to the same chain.

CREATE UNLOGGED TABLE audit_pending (
    id          UUID PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    actor_id    UUID,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    clinic_id   UUID,
    details     TEXT NOT NULL
);

-- The service reads its records' place in the chain back by id after the commit.
CREATE UNIQUE INDEX audit_id_idx ON audit (id);

CREATE FUNCTION audit_link() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    tail_seq  BIGINT;
    tail_hash TEXT;
    link      TEXT;
BEGIN
    PERFORM pg_advisory_xact_lock(7203551);
    -- A statement after the lock: it sees every record committed before it was taken.
    SELECT seq, hash INTO tail_seq, tail_hash FROM audit ORDER BY seq DESC LIMIT 1;
    IF NOT FOUND THEN
        tail_seq := 0;
        tail_hash := 'genesis';
    END IF;
    link := encode(sha256(convert_to(concat_ws(E'\x1f',
        tail_hash,
        (tail_seq + 1)::TEXT,
        NEW.id::TEXT,
        to_char(NEW.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        COALESCE(NEW.actor_id::TEXT, ''),
        NEW.action,
        NEW.subject,
        COALESCE(NEW.clinic_id::TEXT, ''),
        NEW.details) || E'\x1f', 'UTF8')), 'hex');
    INSERT INTO audit (seq, id, at, actor_id, action, subject, clinic_id, details, prev_hash, hash)
    VALUES (tail_seq + 1, NEW.id, NEW.at, NEW.actor_id, NEW.action, NEW.subject, NEW.clinic_id,
        NEW.details, tail_hash, link);
    DELETE FROM audit_pending WHERE id = NEW.id;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER audit_pending_link AFTER INSERT ON audit_pending
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_link();
