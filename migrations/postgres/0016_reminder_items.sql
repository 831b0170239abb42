-- A plan item's reminders (the chart's counts of check-ins and misses, and its first time)
-- read by the item, not by scanning every reminder.
CREATE INDEX reminders_item_idx ON reminders (plan_item_id, status);
