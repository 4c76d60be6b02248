-- The coordinator's durable transaction log.

CREATE TABLE transactions (
    txid            text PRIMARY KEY,
    protocol        text NOT NULL CHECK (protocol IN ('2pc', 'saga', 'lease')),
    state           text NOT NULL CHECK (state IN
                        ('RUNNING', 'COMMITTING', 'ABORTING', 'COMMITTED', 'ABORTED',
                         'NEEDS_ATTENTION')),
    -- The 2PC decision, logged before phase two (the commit point); for saga the pivot
    -- (COMMIT once the payment is captured), for lease COMMIT once every write is done.
    decision        text CHECK (decision IN ('COMMIT', 'ABORT')),
    user_id         text NOT NULL,
    event_id        text NOT NULL,
    seat_ids        text[] NOT NULL DEFAULT '{}',
    quantity        integer NOT NULL DEFAULT 0,
    card_token      text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    order_id        text NOT NULL,
    -- What the participants answered, once known: the priced seats, the money, the payment.
    seats           jsonb,
    amount_cents    bigint,
    currency        text,
    payment_id      text,
    -- Lease protocol intent: the fencing token the writes carry.
    fencing_token   bigint,
    -- The answer: an encoded PurchaseResponse when COMMITTED, or the refusal
    -- (gRPC code, message, encoded google.rpc.Status details) when ABORTED.
    response        bytea,
    error_code      integer,
    error           text,
    error_details   bytea,
    -- Automatic recovery of a parked purchase: how often it was tried, and when next.
    recovery_attempts integer NOT NULL DEFAULT 0,
    next_recovery_at  timestamptz,
    started_at      timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transactions_by_start ON transactions (started_at DESC, txid);
CREATE INDEX transactions_unfinished ON transactions (updated_at)
    WHERE state IN ('RUNNING', 'COMMITTING', 'ABORTING', 'NEEDS_ATTENTION');
CREATE INDEX transactions_by_event ON transactions (event_id, started_at DESC);

-- One row per attempt of one operation, written when the attempt ends.
CREATE TABLE steps (
    txid         text NOT NULL REFERENCES transactions ON DELETE CASCADE,
    sequence     integer NOT NULL,
    participant  text NOT NULL,
    operation    text NOT NULL,
    attempt      integer NOT NULL CHECK (attempt >= 1),
    compensation boolean NOT NULL DEFAULT false,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    outcome      text NOT NULL CHECK (outcome IN ('IN_FLIGHT', 'OK', 'FAILED', 'UNKNOWN')),
    error        text,
    PRIMARY KEY (txid, sequence)
);
CREATE INDEX steps_failures ON steps (started_at) WHERE outcome IN ('FAILED', 'UNKNOWN');
