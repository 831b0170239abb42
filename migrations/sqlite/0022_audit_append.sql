-- PostgreSQL's migration of this number adds the audit chain's one-round-trip append (a
-- function); SQLite's single writer needs none.
SELECT 1;
