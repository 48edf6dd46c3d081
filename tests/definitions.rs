//! Feature names, references and definitions.

use tessera::definitions::{FeatureName, FeatureRequest};
use tessera::time::WindowLength;

#[test]
fn parses_the_three_reference_forms() {
    let whole = FeatureRequest::parse("user.total").unwrap();
    assert_eq!(whole.feature.to_string(), "user.total");
    assert!(whole.window.is_none());

    let by_duration = FeatureRequest::parse("user.total[\"7d\"]").unwrap();
    assert!(
        by_duration
            .window
            .unwrap()
            .matches(WindowLength::parse("7d").unwrap())
    );

    let by_suffix = FeatureRequest::parse("user.total__604800__").unwrap();
    assert_eq!(by_suffix.feature.name(), "total");
    assert!(
        by_suffix
            .window
            .unwrap()
            .matches(WindowLength::parse("1w").unwrap())
    );

    let all = FeatureRequest::parse("user.total__all__").unwrap();
    assert!(all.window.unwrap().matches(WindowLength::All));
}

#[test]
fn column_names_follow_the_spec() {
    let name = FeatureName::parse("user.total_transaction_amount").unwrap();
    assert_eq!(
        name.column_name(WindowLength::parse("7d").unwrap()),
        "user.total_transaction_amount__604800__"
    );
    assert_eq!(
        name.column_name(WindowLength::All),
        "user.total_transaction_amount__all__"
    );
}

#[test]
fn rejects_names_without_a_namespace() {
    let message = FeatureName::parse("total").unwrap_err().to_string();
    assert!(message.contains("\"total\""), "{message}");
}
