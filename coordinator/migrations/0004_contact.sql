-- Where the buyer asked to be confirmed, logged with BEGIN so the outbox relay (and a
-- recovery that finishes the purchase) knows it whatever happens in between.
ALTER TABLE transactions ADD COLUMN contact_email text, ADD COLUMN contact_phone text;
