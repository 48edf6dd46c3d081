-- A small transactions table, a spine and two features: the definitions
-- behind `tessera compare` in the README.
CREATE TABLE transactions AS
  SELECT value % 50 AS user_id,
         to_timestamp_seconds(1735689600 + value * 2220) AS ts,
         (value * 7919) % 1000 / 10.0 AS amount
  FROM generate_series(1, 20000);

CREATE TABLE spine AS
  SELECT value % 50 AS user_id, to_timestamp_seconds(1740787200 + value * 25200) AS ts
  FROM generate_series(1, 500);

CREATE WINDOWED FEATURE user.amount_sum FROM transactions KEY user_id TIMESTAMP ts
  AGGREGATE sum(amount) WINDOWS ('1d', '7d') WITH (bucket_duration = '1d');

CREATE WINDOWED FEATURE user.amount_max FROM transactions KEY user_id TIMESTAMP ts
  AGGREGATE max(amount) WINDOWS ('7d') WITH (bucket_duration = '6h');
