-- Purchases of events with a waiting room: the admission each one claimed, and when the
-- room was told it ended. Recovery re-sends the release of any finished purchase whose
-- admission was not released yet (a crash between the two).
ALTER TABLE transactions ADD COLUMN admission_id text;
ALTER TABLE transactions ADD COLUMN admission_released_at timestamptz;
CREATE INDEX transactions_unreleased_admissions ON transactions (finished_at)
    WHERE admission_id IS NOT NULL AND admission_released_at IS NULL
      AND state IN ('COMMITTED', 'ABORTED');

-- Honest sold-out: is any other purchase of the event unfinished, or aborted (and so
-- possibly giving a seat back) since a given time?
CREATE INDEX transactions_unfinished_by_event ON transactions (event_id)
    WHERE state IN ('RUNNING', 'COMMITTING', 'ABORTING', 'NEEDS_ATTENTION');
CREATE INDEX transactions_aborted_by_event ON transactions (event_id, finished_at)
    WHERE state = 'ABORTED';

-- The lease protocol's intent names the seats it leased in their own column: seat_ids
-- stays what the buyer asked for (empty for best available), so a retried key compares
-- equal to its first request.
ALTER TABLE transactions ADD COLUMN leased_seats text[];

-- Lookups by buyer (`txn list --user`); by idempotency key the UNIQUE index serves.
CREATE INDEX transactions_by_user ON transactions (user_id, started_at DESC);
