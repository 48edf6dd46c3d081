//! Bad input through the Rust API: every error names what is wrong, nothing panics,
//! and nothing half-done is left registered.

use tessera::FeatureDefinition;

use crate::common::{context, error, run};

fn builder() -> tessera::definitions::FeatureDefinitionBuilder {
    FeatureDefinition::builder("user.amount")
        .source("transactions")
        .key("user_id")
        .timestamp("ts")
        .aggregate("sum", ["amount"])
        .windows(["1d"])
        .bucket_duration("1d")
}

#[test]
fn builder_names_each_missing_part() {
    let cases = [
        (
            FeatureDefinition::builder("user.amount")
                .key("k")
                .timestamp("ts")
                .aggregate("sum", ["v"])
                .windows(["1d"]),
            "has no source: add FROM <table>",
        ),
        (
            FeatureDefinition::builder("user.amount")
                .source("t")
                .timestamp("ts")
                .aggregate("sum", ["v"])
                .windows(["1d"]),
            "has no key: add KEY <column>",
        ),
        (
            FeatureDefinition::builder("user.amount")
                .source("t")
                .key("k")
                .aggregate("sum", ["v"])
                .windows(["1d"]),
            "has no timestamp column: add TIMESTAMP <column>",
        ),
        (
            FeatureDefinition::builder("user.amount")
                .source("t")
                .key("k")
                .timestamp("ts")
                .windows(["1d"]),
            "has no aggregation",
        ),
        (
            FeatureDefinition::builder("user.amount")
                .source("t")
                .key("k")
                .timestamp("ts")
                .aggregate("sum", ["v"]),
            "has no windows",
        ),
    ];
    for (builder, expected) in cases {
        let message = builder.build().unwrap_err().strip_backtrace();
        assert!(
            message.contains("feature user.amount") && message.contains(expected),
            "{message}"
        );
    }
}

#[test]
fn definitions_round_trip_through_their_sql() {
    let definition = builder()
        .filter("amount > 0")
        .default_value("0")
        .bucket_durations("5d", ["1d"])
        .bucket_start("2025-01-01T06:00:00Z")
        .bucket_start_for("5d", "2025-01-02T00:00:00Z")
        .build()
        .unwrap();
    let sql = definition.to_sql();
    let ctx = context();
    let statements = tessera::planner::parse_sql(&ctx, &sql).unwrap();
    let [
        tessera::definitions::TesseraStatement::CreateFeature {
            definition: parsed, ..
        },
    ] = statements.as_slice()
    else {
        panic!("expected one CREATE WINDOWED FEATURE from {sql}");
    };
    assert_eq!(**parsed, definition, "{sql}");
}

#[tokio::test]
async fn api_rejects_bad_definitions_and_keeps_the_registry_clean() {
    let ctx = context();
    run(
        &ctx,
        "CREATE TABLE transactions (user_id INT, ts TIMESTAMP, amount DOUBLE, memo VARCHAR)",
    )
    .await
    .unwrap();

    let wrong_type = builder().aggregate("mean", ["memo"]).build().unwrap();
    let message = tessera::define_feature(&ctx, wrong_type)
        .unwrap_err()
        .strip_backtrace();
    assert!(
        message.contains("feature user.amount: mean does not support input type Utf8"),
        "{message}"
    );

    tessera::define_feature(&ctx, builder().build().unwrap()).unwrap();
    let duplicate = tessera::define_feature(&ctx, builder().build().unwrap())
        .unwrap_err()
        .strip_backtrace();
    assert!(
        duplicate.contains("feature user.amount already exists"),
        "{duplicate}"
    );

    let listed = crate::common::table(&ctx, "SHOW WINDOWED FEATURES").await;
    assert_eq!(listed.matches("user.amount").count(), 1, "{listed}");
}

#[tokio::test]
async fn training_set_errors_name_the_problem() {
    let ctx = context();
    run(
        &ctx,
        "CREATE TABLE transactions (user_id INT, ts TIMESTAMP, amount DOUBLE);
         CREATE TABLE spine (customer INT, ts TIMESTAMP);
         CREATE WINDOWED FEATURE user.amount FROM transactions KEY user_id TIMESTAMP ts
             AGGREGATE sum(amount) WINDOWS ('1d') WITH (bucket_duration = '1d');",
    )
    .await
    .unwrap();
    let missing_key = tessera::TrainingSet::new(ctx.table("spine").await.unwrap(), "ts")
        .feature("user.amount")
        .build()
        .unwrap_err()
        .strip_backtrace();
    assert!(
        missing_key.contains("spine is missing key column(s) user_id of feature user.amount"),
        "{missing_key}"
    );

    let no_features = tessera::TrainingSet::new(ctx.table("spine").await.unwrap(), "ts")
        .build()
        .unwrap_err();
    assert!(
        no_features
            .strip_backtrace()
            .contains("point_in_time needs at least one feature")
    );

    // The table changed shape since the feature was defined: the query says so.
    run(
        &ctx,
        "DROP TABLE transactions; CREATE TABLE transactions (user_id INT, ts TIMESTAMP)",
    )
    .await
    .unwrap();
    let gone = error(&ctx, "SELECT * FROM point_in_time('SELECT customer AS user_id, ts FROM spine', 'ts', 'user.amount')").await;
    assert!(
        gone.contains("feature user.amount: argument 'amount'"),
        "{gone}"
    );
}
