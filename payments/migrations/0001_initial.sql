-- Payments, a double-entry ledger, Stripe-style idempotency keys and the 2PC log.

CREATE TABLE payments (
    payment_id     text PRIMARY KEY,
    order_id       text NOT NULL,
    state          text NOT NULL CHECK (state IN
                       ('AUTHORIZED', 'CAPTURED', 'VOIDED', 'REFUNDED', 'DECLINED', 'EXPIRED')),
    amount_cents   bigint NOT NULL CHECK (amount_cents > 0),
    captured_cents bigint NOT NULL DEFAULT 0 CHECK (captured_cents >= 0),
    refunded_cents bigint NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0),
    currency       text NOT NULL,
    card_brand     text NOT NULL,
    card_last4     text NOT NULL,
    decline_code   text,
    txid           text UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (captured_cents <= amount_cents),
    CHECK (refunded_cents <= captured_cents)
);
CREATE INDEX payments_by_order ON payments (order_id, created_at);
-- The expiry sweeper.
CREATE INDEX payments_expiring ON payments (expires_at) WHERE state = 'AUTHORIZED';

-- Double-entry ledger: every movement is two rows of opposite sign that sum to zero.
CREATE TABLE ledger_entries (
    entry_id     bigserial PRIMARY KEY,
    movement_id  text NOT NULL,
    payment_id   text NOT NULL REFERENCES payments,
    account      text NOT NULL,
    amount_cents bigint NOT NULL CHECK (amount_cents <> 0),
    currency     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_by_payment ON ledger_entries (payment_id);
CREATE INDEX ledger_by_movement ON ledger_entries (movement_id);

-- Idempotency keys: the first response is stored and replayed; kept >= 24 hours.
CREATE TABLE idempotency_keys (
    idempotency_key text PRIMARY KEY,
    operation       text NOT NULL,
    request_hash    bytea NOT NULL,
    -- gRPC code of the stored answer (0 = OK) and the answer: the encoded response, or
    -- for an error its message and encoded google.rpc.Status details.
    status_code     integer NOT NULL,
    message         text NOT NULL DEFAULT '',
    response        bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- One row per 2PC txid: PREPARED (authorized), COMMITTED (captured), ABORTED (voided or
-- tombstone).
CREATE TABLE txn_participants (
    txid       text PRIMARY KEY,
    state      text NOT NULL CHECK (state IN ('PREPARED', 'COMMITTED', 'ABORTED')),
    payment_id text REFERENCES payments,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
