-- PostgreSQL's migration of this number links the audit chain at commit: records wait in
-- `audit_pending` until a deferred trigger moves them into `audit`. SQLite's single writer
-- links them in the service as before, so here the table stays empty; it exists so both
-- databases have one schema. Both look records up by id.
CREATE TABLE audit_pending (
    id          BLOB PRIMARY KEY NOT NULL,
    at          TEXT NOT NULL,
    actor_id    BLOB,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    clinic_id   BLOB,
    details     TEXT NOT NULL
);

CREATE UNIQUE INDEX audit_id_idx ON audit (id);
