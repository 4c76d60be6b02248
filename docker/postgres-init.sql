-- The four databases of the mesh, one per service that keeps state in PostgreSQL.
CREATE DATABASE inventory;
CREATE DATABASE payments;
CREATE DATABASE coordinator;
CREATE DATABASE notifier;
