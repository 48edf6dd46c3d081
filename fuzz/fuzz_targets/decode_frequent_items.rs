//! Frequent-items (top-k) states from arbitrary bytes, for string items.
#![no_main]

use std::sync::OnceLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use libfuzzer_sys::fuzz_target;
use tessera_fuzz::{bind, decode_binary_state};

fuzz_target!(|data: &[u8]| {
    static FUNCTION: OnceLock<std::sync::Arc<dyn tessera_aggregates::AggregateImplementation>> = OnceLock::new();
    let function = FUNCTION.get_or_init(|| bind("approx_top_k", DataType::Utf8, &[ScalarValue::Int64(Some(10))]));
    decode_binary_state(function, data);
});
