//! Shared pieces of the decoder fuzz targets: bind a function, hand it one
//! serialized state, and require an error or a value — the target fails only
//! on a panic or an abort (e.g. an allocation the fuzzer's limit refuses).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BinaryArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use tessera_aggregates::{AggregateImplementation, Argument, BoundAggregate};

/// Binds `function` to one column of `value_type` and optional constants.
pub fn bind(function: &str, value_type: DataType, constants: &[ScalarValue]) -> Arc<dyn AggregateImplementation> {
    let mut arguments = vec![Argument { data_type: value_type, constant: None }];
    arguments.extend(constants.iter().map(|c| Argument { data_type: c.data_type(), constant: Some(c.clone()) }));
    BoundAggregate::bind("fuzz", function, &arguments)
        .and_then(|bound| bound.implementation())
        .expect("the fuzz targets bind valid calls")
}

/// Decodes and evaluates `image` as a one-column binary state.
pub fn decode_binary_state(implementation: &Arc<dyn AggregateImplementation>, image: &[u8]) {
    let states: ArrayRef = Arc::new(BinaryArray::from(vec![Some(image)]));
    let _ = implementation.evaluate_states(&[states], 1);
}
