-- The confirmation outbox. A purchase's confirmation is recorded by the same statement
-- that logs its COMMIT decision, so no crash can lose it: there is no moment at which the
-- purchase is committed and its confirmation not yet recorded. A relay hands each row on
-- to the notifier (idempotently, keyed by txid) once the purchase has finished
-- committing, and marks it relayed. An aborted purchase never gets a row.
CREATE TABLE outbox (
    txid            text PRIMARY KEY REFERENCES transactions (txid),
    created_at      timestamptz NOT NULL DEFAULT now(),
    relayed_at      timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text
);
CREATE INDEX outbox_unrelayed ON outbox (next_attempt_at) WHERE relayed_at IS NULL;
