//! A hand-checked end-to-end training set.

use crate::common::{context, table};

const SETUP: &str = "
CREATE TABLE transactions (user_id INT, ts TIMESTAMP, amount DOUBLE) AS VALUES
    (1, TIMESTAMP '2025-03-01 10:00:00', 10.0),
    (1, TIMESTAMP '2025-03-09 12:00:00', 5.0),
    (1, TIMESTAMP '2025-03-10 00:00:00', 1.0),
    (1, TIMESTAMP '2025-03-10 15:00:01', 100.0),
    (2, TIMESTAMP '2025-03-10 09:00:00', 7.0),
    (2, TIMESTAMP '2025-03-10 09:30:00', NULL);
CREATE TABLE spine (user_id INT, ts TIMESTAMP, label INT) AS VALUES
    (2, TIMESTAMP '2025-03-10 15:00:00', 1),
    (1, TIMESTAMP '2025-03-10 15:00:00', 2),
    (3, TIMESTAMP '2025-03-10 15:00:00', 3),
    (1, NULL, 4),
    (NULL, TIMESTAMP '2025-03-10 15:00:00', 5);
CREATE WINDOWED FEATURE user.amount_sum FROM transactions KEY user_id TIMESTAMP ts
    AGGREGATE sum(amount) WINDOWS ('1d', '7d', 'all') WITH (bucket_duration = '1d');
CREATE WINDOWED FEATURE user.txn_count FROM transactions KEY user_id TIMESTAMP ts
    AGGREGATE count(*) WINDOWS ('1d') WITH (bucket_duration = '1d');
";

#[tokio::test]
async fn exact_training_set_matches_hand_computed_values() {
    let ctx = context();
    table(&ctx, SETUP).await;
    let result = table(
        &ctx,
        "SELECT * FROM point_in_time('spine', 'ts', 'user.amount_sum', 'user.txn_count')",
    )
    .await;
    // user 1 at 2025-03-10T15:00: 1d = (03-09T15:00, 03-10T15:00] → 1.0; 7d adds 5.0; all adds 10.0.
    // The event at 15:00:01 is in the future and never seen. User 2's null amount counts for count(*).
    insta::assert_snapshot!(result, @r"
    +---------+---------------------+-------+--------------------------+---------------------------+------------------------+-------------------------+
    | user_id | ts                  | label | user.amount_sum__86400__ | user.amount_sum__604800__ | user.amount_sum__all__ | user.txn_count__86400__ |
    +---------+---------------------+-------+--------------------------+---------------------------+------------------------+-------------------------+
    | 2       | 2025-03-10T15:00:00 | 1     | 7.0                      | 7.0                       | 7.0                    | 2                       |
    | 1       | 2025-03-10T15:00:00 | 2     | 1.0                      | 6.0                       | 16.0                   | 1                       |
    | 3       | 2025-03-10T15:00:00 | 3     | 0.0                      | 0.0                       | 0.0                    | 0                       |
    | 1       |                     | 4     |                          |                           |                        |                         |
    |         | 2025-03-10T15:00:00 | 5     | 0.0                      | 0.0                       | 0.0                    | 0                       |
    +---------+---------------------+-------+--------------------------+---------------------------+------------------------+-------------------------+
    ");
}
