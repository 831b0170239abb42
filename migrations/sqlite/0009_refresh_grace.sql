-- The refresh token that replaced this one, sealed with the data key: for a short grace
-- window a second use (two tabs refreshing at once) gets the same new token back.
ALTER TABLE refresh_tokens ADD COLUMN successor_sealed BLOB;
