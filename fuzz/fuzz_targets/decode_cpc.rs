//! CPC distinct-count states from arbitrary bytes.
#![no_main]

use std::sync::OnceLock;

use datafusion::arrow::datatypes::DataType;
use libfuzzer_sys::fuzz_target;
use tessera_fuzz::{bind, decode_binary_state};

fuzz_target!(|data: &[u8]| {
    static FUNCTION: OnceLock<std::sync::Arc<dyn tessera_aggregates::AggregateImplementation>> = OnceLock::new();
    let function = FUNCTION.get_or_init(|| bind("approx_count_distinct", DataType::Int64, &[]));
    decode_binary_state(function, data);
});
