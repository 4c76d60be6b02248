-- The notifier's deliveries. One confirmation per committed purchase (its txid is the
-- key, so the relay's retries change nothing), one delivery per channel and target, and
-- one attempt row per attempt that ended.

CREATE TABLE confirmations (
    txid         text PRIMARY KEY,
    user_id      text NOT NULL,
    event_id     text NOT NULL,
    order_id     text NOT NULL,
    -- The encoded EnqueueRequest: tickets, seats, money, contact.
    request      bytea NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    -- Attempts ended so far; the next attempt's sequence. Taken under this row's lock,
    -- so the attempts a reader sees are always 1..n with no gap.
    attempts_ended integer NOT NULL DEFAULT 0
);

-- Where each user's webhooks go, and the secret that signs them.
CREATE TABLE webhook_endpoints (
    endpoint_id text PRIMARY KEY,
    user_id     text NOT NULL,
    url         text NOT NULL,
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, url)
);

CREATE TABLE deliveries (
    delivery_id     text PRIMARY KEY,
    txid            text NOT NULL REFERENCES confirmations,
    channel         text NOT NULL CHECK (channel IN ('email', 'sms', 'webhook')),
    target          text NOT NULL,
    endpoint_id     text REFERENCES webhook_endpoints,
    state           text NOT NULL DEFAULT 'PENDING'
                        CHECK (state IN ('PENDING', 'DELIVERED', 'DEAD_LETTERED')),
    -- Attempts started (a claim counts one), and the ceiling this round of them has:
    -- a re-drive raises the ceiling instead of forgetting the attempts.
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A worker that claimed the delivery owns it until then; after a crash it is due
    -- again once this passes.
    claimed_until   timestamptz,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (txid, channel, target)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'PENDING';
CREATE INDEX deliveries_by_created ON deliveries (created_at DESC, delivery_id);

CREATE TABLE attempts (
    delivery_id  text NOT NULL REFERENCES deliveries,
    attempt      integer NOT NULL,
    txid         text NOT NULL,
    sequence     integer NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    delivered    boolean NOT NULL,
    error        text,
    state_after  text NOT NULL,
    PRIMARY KEY (delivery_id, attempt),
    UNIQUE (txid, sequence)
);
CREATE INDEX attempts_failed ON attempts (finished_at) WHERE NOT delivered;
