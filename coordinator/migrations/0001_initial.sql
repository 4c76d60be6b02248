-- The coordinator's durable transaction log.

CREATE TABLE transactions (
    txid            text PRIMARY KEY,
    protocol        text NOT NULL CHECK (protocol IN ('2pc', 'saga', 'lease')),
    state           text NOT NULL CHECK (state IN
                        ('RUNNING', 'COMMITTING', 'ABORTING', 'COMMITTED', 'ABORTED',
                         'NEEDS_ATTENTION')),
    -- The 2PC decision, logged before phase two (the commit point); for saga and lease
    -- the equivalent (past the pivot, or undoing).
    decision        text CHECK (decision IN ('COMMIT', 'ABORT')),
    user_id         text NOT NULL,
    event_id        text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    order_id        text NOT NULL,
    payment_id      text,
    request         jsonb NOT NULL,
    -- What the purchase returned or will return, once known.
    result          jsonb,
    error           text,
    -- Lease protocol intent: the fencing token and the seats it covers.
    fencing_token   bigint,
    seat_ids        text[] NOT NULL DEFAULT '{}',
    deadline        timestamptz,
    started_at      timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transactions_by_start ON transactions (started_at DESC, txid);
CREATE INDEX transactions_unfinished ON transactions (state)
    WHERE state IN ('RUNNING', 'COMMITTING', 'ABORTING', 'NEEDS_ATTENTION');
CREATE INDEX transactions_by_event ON transactions (event_id, started_at DESC);

-- One row per attempt of one operation.
CREATE TABLE steps (
    txid         text NOT NULL REFERENCES transactions ON DELETE CASCADE,
    sequence     integer NOT NULL,
    participant  text NOT NULL,
    operation    text NOT NULL,
    attempt      integer NOT NULL CHECK (attempt >= 1),
    compensation boolean NOT NULL DEFAULT false,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    outcome      text NOT NULL CHECK (outcome IN ('IN_FLIGHT', 'OK', 'FAILED', 'UNKNOWN')),
    error        text,
    PRIMARY KEY (txid, sequence)
);
CREATE INDEX steps_failures ON steps (started_at) WHERE outcome IN ('FAILED', 'UNKNOWN');
