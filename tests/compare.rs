//! The plan-equivalence harness reports agreement where semantics coincide and
//! the differing rows where they do not.

use tessera::planner::{PlanVariant, compare_plans};

use crate::common::{context, run};

#[tokio::test]
async fn buffered_buckets_agree_with_aligned_and_exact_differs_where_expected() {
    let ctx = context();
    run(
        &ctx,
        "CREATE TABLE t (user_id INT, ts TIMESTAMP, amount DOUBLE) AS VALUES
             (1, TIMESTAMP '2025-03-03 01:00:00', 1.5), (1, TIMESTAMP '2025-03-03 20:00:00', 2.0),
             (1, TIMESTAMP '2025-03-09 10:00:00', 4.0), (2, TIMESTAMP '2025-03-10 09:00:00', 8.0);
         CREATE TABLE spine (user_id INT, ts TIMESTAMP) AS VALUES
             (1, TIMESTAMP '2025-03-10 15:00:00'), (2, TIMESTAMP '2025-03-10 15:00:00'), (3, TIMESTAMP '2025-03-10 15:00:00');
         CREATE WINDOWED FEATURE u.amount FROM t KEY user_id TIMESTAMP ts AGGREGATE sum(amount)
             WINDOWS ('7d') WITH (bucket_duration = '1d');",
    )
    .await
    .unwrap();
    let spine = ctx.table("spine").await.unwrap();
    let features = vec!["u.amount".to_string()];
    let plans =
        ["aligned", "buffered", "exact", "bucketed"].map(|p| PlanVariant::parse(p).unwrap());
    let report = compare_plans(&spine, "ts", &features, &plans, 1e-9)
        .await
        .unwrap();

    assert_eq!(report.runs.len(), 4);
    assert!(report.runs.iter().all(|r| r.rows == 3));
    let by_plan = |plan: &str| report.columns.iter().find(|c| c.variant == plan).unwrap();
    // Bucketed with a continuous buffer is the aligned set (SEMANTICS.md §4).
    assert!(by_plan("buffered").agrees(), "{report}");
    // Exact drops the events of 2025-03-03 before 15:00 (1.5) that aligned keeps.
    assert_eq!(by_plan("exact").differing_rows, 1, "{report}");
    assert_eq!(by_plan("exact").max_difference, Some(1.5), "{report}");
    // Bucketed drops the current day's event of user 2 (8.0).
    assert_eq!(by_plan("bucketed").differing_rows, 1, "{report}");
    assert!(!report.all_agree());
    assert!(report.to_string().contains("u.amount__604800__"));
}

#[test]
fn plan_variants_parse_presets_and_options() {
    let custom = PlanVariant::parse(
        "wide:use_materialized_offline_query=true,continuous_buffer_duration=2d",
    )
    .unwrap();
    assert!(custom.options.use_materialized_offline_query);
    assert_eq!(
        custom
            .options
            .continuous_buffer_duration
            .unwrap()
            .to_string(),
        "2d"
    );
    let unknown = PlanVariant::parse("fastest").unwrap_err().strip_backtrace();
    assert!(
        unknown.contains("unknown plan variant 'fastest'"),
        "{unknown}"
    );
    let bad = PlanVariant::parse("x:use_tile_store=perhaps")
        .unwrap_err()
        .strip_backtrace();
    assert!(
        bad.contains("invalid value 'perhaps' for tessera.use_tile_store"),
        "{bad}"
    );
}
