-- Counting an event's seats inside live prepared branches (GetSeatCounts, which the
-- waiting room asks every admission round) read every prepared branch ever recorded,
-- of every event: 48 ms per call once 27,000 purchases had gone through 2PC.
CREATE INDEX txn_prepared_by_event ON txn_prepared (event_id);
