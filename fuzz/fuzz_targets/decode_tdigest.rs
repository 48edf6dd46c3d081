//! t-digest (percentile) states from arbitrary bytes.
#![no_main]

use std::sync::OnceLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use libfuzzer_sys::fuzz_target;
use tessera_fuzz::{bind, decode_binary_state};

fuzz_target!(|data: &[u8]| {
    static FUNCTION: OnceLock<std::sync::Arc<dyn tessera_aggregates::AggregateImplementation>> = OnceLock::new();
    let function = FUNCTION.get_or_init(|| bind("approx_percentile", DataType::Float64, &[ScalarValue::Float64(Some(0.5))]));
    decode_binary_state(function, data);
});
