-- Seats, events and venues, plus the 2PC participant log and the saga barrier.

CREATE TABLE venues (
    venue_id   bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
    event_id    text PRIMARY KEY,
    name        text NOT NULL,
    venue_id    bigint NOT NULL REFERENCES venues,
    starts_at   timestamptz NOT NULL,
    description text NOT NULL DEFAULT '',
    currency    text NOT NULL,
    capacity    integer NOT NULL CHECK (capacity > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Name weighs more than description in the ranking.
    search      tsvector GENERATED ALWAYS AS (
                    setweight(to_tsvector('english', name), 'A') ||
                    setweight(to_tsvector('english', description), 'B')) STORED
);
CREATE INDEX events_search ON events USING gin (search);
CREATE INDEX events_by_start ON events (starts_at, event_id);

CREATE TABLE seats (
    event_id        text NOT NULL REFERENCES events ON DELETE CASCADE,
    seat_id         text NOT NULL,
    section         text NOT NULL,
    row_no          integer NOT NULL,
    seat_no         integer NOT NULL,
    price_tier      text NOT NULL,
    price_cents     bigint NOT NULL CHECK (price_cents >= 0),
    status          text NOT NULL DEFAULT 'AVAILABLE'
                    CHECK (status IN ('AVAILABLE', 'HELD', 'SOLD')),
    holder          text,
    hold_expires_at timestamptz,
    order_id        text,
    version         bigint NOT NULL DEFAULT 0,
    fencing_token   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, seat_id),
    CHECK (status <> 'HELD' OR (holder IS NOT NULL AND hold_expires_at IS NOT NULL)),
    CHECK (status <> 'SOLD' OR order_id IS NOT NULL),
    CHECK (status <> 'AVAILABLE' OR (order_id IS NULL AND hold_expires_at IS NULL))
);
-- "Best available": cheapest first, then position.
CREATE INDEX seats_available ON seats (event_id, price_cents, section, row_no, seat_no)
    WHERE status = 'AVAILABLE';
-- The hold-expiry sweeper.
CREATE INDEX seats_hold_expiry ON seats (hold_expires_at) WHERE status = 'HELD';
CREATE INDEX seats_by_holder ON seats (holder) WHERE holder IS NOT NULL;

-- One row per 2PC txid: written as COMMITTED inside the prepared transaction (so it
-- appears only if the branch commits) or as an ABORTED tombstone.
CREATE TABLE txn_participants (
    txid       text PRIMARY KEY,
    state      text NOT NULL CHECK (state IN ('COMMITTED', 'ABORTED')),
    event_id   text,
    order_id   text,
    seat_ids   text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- What each prepared branch holds, written right after PREPARE TRANSACTION succeeds
-- (outside it), so that a repeated Prepare and ListInDoubtSales can answer with the
-- seats even though the prepared changes themselves are invisible until commit.
CREATE TABLE txn_prepared (
    txid        text PRIMARY KEY,
    event_id    text NOT NULL,
    order_id    text NOT NULL,
    seat_ids    text[] NOT NULL,
    prices      bigint[] NOT NULL,
    currency    text NOT NULL,
    prepared_at timestamptz NOT NULL DEFAULT now()
);

-- Saga barrier: one row per (saga id, step, operation), with the first answer.
CREATE TABLE saga_barrier (
    gid        text NOT NULL,
    step       text NOT NULL,
    operation  text NOT NULL CHECK (operation IN ('action', 'compensation')),
    outcome    text NOT NULL,
    response   bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gid, step, operation)
);
