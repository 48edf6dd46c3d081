//! `max_by_n` list states built from arbitrary bytes: list lengths and
//! contents disagree in every way the bytes allow.
#![no_main]

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, ListArray, StringArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use libfuzzer_sys::fuzz_target;
use tessera_aggregates::{AggregateImplementation, Argument, BoundAggregate};

fn list(values: ArrayRef, lengths: &[u8]) -> ArrayRef {
    let total: usize = lengths.iter().map(|&l| usize::from(l % 8)).sum();
    let values = values.slice(0, total.min(values.len()));
    let mut offsets = vec![0i32];
    for &l in lengths {
        let next = (*offsets.last().unwrap() + i32::from(l % 8)).min(values.len() as i32);
        offsets.push(next);
    }
    let field = Arc::new(Field::new("item", values.data_type().clone(), true));
    Arc::new(ListArray::new(field, OffsetBuffer::new(offsets.into()), values, None))
}

fuzz_target!(|data: &[u8]| {
    static FUNCTION: OnceLock<Arc<dyn AggregateImplementation>> = OnceLock::new();
    let function = FUNCTION.get_or_init(|| {
        let arguments = [
            Argument { data_type: DataType::Utf8, constant: None },
            Argument { data_type: DataType::Float64, constant: None },
            Argument { data_type: DataType::Int64, constant: Some(ScalarValue::Int64(Some(3))) },
        ];
        BoundAggregate::bind("fuzz", "max_by_n", &arguments).unwrap().implementation().unwrap()
    });
    if data.len() < 3 {
        return;
    }
    let (lengths, rest) = data.split_at(3);
    let floats: ArrayRef = Arc::new(Float64Array::from_iter_values(rest.iter().map(|&b| f64::from(b))));
    let times: ArrayRef = Arc::new(Int64Array::from_iter_values(rest.iter().map(|&b| i64::from(b))));
    let strings: ArrayRef = Arc::new(StringArray::from_iter_values(rest.iter().map(|b| b.to_string())));
    let columns = [list(floats, &lengths[..1]), list(times, &lengths[1..2]), list(strings, &lengths[2..3])];
    let _ = function.evaluate_states(&columns, 1);
});
