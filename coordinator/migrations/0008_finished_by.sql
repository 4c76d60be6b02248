-- Which coordinator ended each purchase (the owner when it committed or aborted; the
-- owner may change afterwards, when another coordinator re-sends its decision or its
-- admission's release).
ALTER TABLE transactions ADD COLUMN finished_by text;
