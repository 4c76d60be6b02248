-- The three databases of the mesh (the official image creates only POSTGRES_DB).
CREATE DATABASE inventory;
CREATE DATABASE payments;
CREATE DATABASE coordinator;
