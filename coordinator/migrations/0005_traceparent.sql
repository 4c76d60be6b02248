-- The W3C trace context of the call that began the purchase: `txn show` prints its trace
-- id, and the outbox relay continues that trace when it hands the confirmation over.
ALTER TABLE transactions ADD COLUMN traceparent text;
