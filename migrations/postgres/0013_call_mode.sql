-- Which way each model call used the model: understand (a JSON reading of the message,
-- the dialogue policy acts), tools (the model calls the tools) or text.
ALTER TABLE orchestration_calls ADD COLUMN mode TEXT NOT NULL DEFAULT 'tools';
