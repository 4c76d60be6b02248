-- Several coordinators share one log. Each purchase has an owner (a coordinator
-- instance) and an ownership that lapses unless renewed, with an epoch that grows at
-- every takeover; every write of the purchase's rows is conditional on the writer's
-- (owner, epoch), in the same statement.

-- The log's identity: set once, here, when the log is created (never a flag that can
-- drift). Every branch a participant holds for a purchase of this log carries it, and
-- reconciliation touches only branches of its own log.
CREATE TABLE log_identity (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    log_id     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO log_identity (log_id)
VALUES ('log-' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 12));

-- The coordinator instances that served this log (for people: who served what).
CREATE TABLE coordinators (
    instance_id  text PRIMARY KEY,
    listen       text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE transactions
    ADD COLUMN began_by    text,
    ADD COLUMN owner       text,
    ADD COLUMN owner_epoch bigint NOT NULL DEFAULT 0,
    ADD COLUMN owned_until timestamptz;

-- Takeover: unfinished purchases whose ownership lapsed.
CREATE INDEX transactions_by_ownership ON transactions (owned_until)
    WHERE state IN ('RUNNING', 'COMMITTING', 'ABORTING', 'NEEDS_ATTENTION');

-- What happened to purchases' ownership: takeovers, and writes the log refused to a
-- coordinator that had lost a purchase.
CREATE TABLE ownership_events (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    txid        text NOT NULL,
    instance_id text NOT NULL,
    epoch       bigint NOT NULL,
    event       text NOT NULL CHECK (event IN ('takeover', 'refused')),
    detail      text
);
CREATE INDEX ownership_events_by_txid ON ownership_events (txid, at);
