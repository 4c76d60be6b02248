-- Several coordinator logs (clusters) may share this participant: every 2PC branch and
-- tombstone records the log that made it. ListInDoubtSales returns it, reconciliation
-- touches only its own log's branches, and a Commit or Abort from another log is
-- refused. NULL: a branch from before log ids.
ALTER TABLE txn_participants ADD COLUMN log_id text;
ALTER TABLE txn_prepared ADD COLUMN log_id text;
