-- The language a person reads their mail and notifications in (ISO 639-1).
ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT 'en'
    CHECK (language IN ('en', 'pt', 'es'));
