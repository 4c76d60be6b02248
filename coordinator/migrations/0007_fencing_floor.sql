-- The fencing floor: the highest token this log issued for an event, read before every
-- lease acquisition (no token is handed out again after Redis lost the counter's last
-- increments).
CREATE INDEX transactions_fencing_by_event ON transactions (event_id, fencing_token)
    WHERE fencing_token IS NOT NULL;
