-- Sites that embed the chat widget: ",https://a.example,https://b.example," (CORS).
ALTER TABLE clinics ADD COLUMN widget_origins TEXT NOT NULL DEFAULT ',';
