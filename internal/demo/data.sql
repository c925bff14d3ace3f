-- The demo's bank + household data set. Profiles are named after their
-- owners so the events are easy to follow.
CREATE SCHEMA ANALYTICS;
CREATE SCHEMA BANK;
CREATE SCHEMA HOME;

CREATE TABLE ANALYTICS.PROFILES (segment_id VARCHAR, email VARCHAR, household_id VARCHAR, plan VARCHAR);
INSERT INTO ANALYTICS.PROFILES VALUES
  ('ann', 'ann@example.com', 'h1', 'gold'),
  ('bob', 'bob@example.com', 'h2', 'platinum'),
  ('cy',  'cy@example.com',  'h3', NULL),
  ('dee', 'dee@example.com', 'h1', 'silver'),
  ('eve', 'eve@example.com', NULL, 'gold'),
  ('fay', 'fay@example.com', 'h4', 'platinum');

CREATE TABLE ANALYTICS.AUDIENCE_MEMBERSHIPS (segment_id VARCHAR, audience_key VARCHAR);
INSERT INTO ANALYTICS.AUDIENCE_MEMBERSHIPS VALUES
  ('ann', 'platinum_tier'), ('bob', 'platinum_tier'), ('fay', 'platinum_tier'), ('dee', 'gold_tier');

CREATE TABLE BANK.ACCOUNTS (id VARCHAR, email VARCHAR, type VARCHAR, status VARCHAR);
INSERT INTO BANK.ACCOUNTS VALUES
  ('a1', 'ann@example.com', 'checking', 'open'),
  ('a2', 'ann@example.com', 'savings',  'open'),
  ('a3', 'bob@example.com', 'checking', 'open'),
  ('a4', 'cy@example.com',  'checking', 'open'),
  ('a5', 'eve@example.com', 'credit',   'open'),
  ('a6', 'fay@example.com', 'checking', 'open');

CREATE TABLE BANK.CREDIT_CARDS (id VARCHAR, account_id VARCHAR, balance VARCHAR, due_date DATE, credit_limit INTEGER);
INSERT INTO BANK.CREDIT_CARDS VALUES
  ('c1', 'a1', 'Outstanding', DATE '2026-04-01', 5000),
  ('c2', 'a1', 'Paid',        DATE '2026-04-15', 2000),
  ('c3', 'a2', 'Outstanding', DATE '2026-05-01', 1000),
  ('c4', 'a3', 'Paid',        DATE '2026-04-10', 3000),
  ('c5', 'a4', 'Paid',        DATE '2026-04-20', 1500),
  ('c6', 'a5', 'Outstanding', NULL,              800);

CREATE TABLE BANK.SUBSCRIPTIONS (id VARCHAR, account_id VARCHAR, tier VARCHAR);
INSERT INTO BANK.SUBSCRIPTIONS VALUES ('s1', 'a1', 'Premium'), ('s2', 'a3', 'Premium'), ('s3', 'a6', 'Basic');

CREATE TABLE BANK.TRANSACTIONS (id VARCHAR, subscription_id VARCHAR, amount DECIMAL(10, 2));
INSERT INTO BANK.TRANSACTIONS VALUES
  ('t1', 's1', 12.00), ('t2', 's1', 30.50), ('t3', 's1', 8.99), ('t4', 's1', 120.00), ('t5', 's1', 15.00), ('t6', 's1', 42.00),
  ('t7', 's2', 19.99), ('t8', 's2', 19.99), ('t9', 's2', 19.99), ('t10', 's2', 19.99), ('t11', 's2', 19.99),
  ('t12', 's3', 5.00);

CREATE TABLE HOME.HOUSEHOLDS (id VARCHAR, city VARCHAR);
INSERT INTO HOME.HOUSEHOLDS VALUES ('h1', 'Lyon'), ('h2', 'Paris'), ('h3', 'Nice'), ('h4', 'Lille');

CREATE TABLE HOME.PETS (id VARCHAR, name VARCHAR, type VARCHAR);
INSERT INTO HOME.PETS VALUES ('p1', 'Tom', 'cat'), ('p2', 'Rex', 'dog'), ('p3', 'Felix', 'cat'), ('p4', 'Nemo', 'fish');

CREATE TABLE HOME.HOUSEHOLD_PETS (household_id VARCHAR, pet_id VARCHAR);
INSERT INTO HOME.HOUSEHOLD_PETS VALUES ('h1', 'p1'), ('h1', 'p2'), ('h2', 'p3'), ('h3', 'p4');
