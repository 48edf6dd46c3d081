//! Reading event and spine times as UTC microseconds (SEMANTICS.md §1).
//!
//! Finer units are floored (not truncated toward zero) to the microsecond, so
//! an instant before 1970 lands in the right microsecond too; zone-less
//! timestamps are read as UTC; dates are midnight UTC.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, PrimitiveArray};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::{Result, exec_err};
use tessera_time::{MICROS_PER_DAY, MICROS_PER_SECOND};

/// The times of `array` as microseconds since the epoch, nulls kept.
pub fn to_micros(array: &ArrayRef) -> Result<Int64Array> {
    Ok(match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            scale::<TimestampSecondType>(array, |s| s * MICROS_PER_SECOND)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            scale::<TimestampMillisecondType>(array, |ms| ms * 1_000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            scale::<TimestampMicrosecondType>(array, |us| us)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            scale::<TimestampNanosecondType>(array, |ns| ns.div_euclid(1_000))
        }
        DataType::Date32 => scale::<Date32Type>(array, |days| i64::from(days) * MICROS_PER_DAY),
        DataType::Date64 => scale::<Date64Type>(array, |ms| ms * 1_000),
        other => return exec_err!("expected a timestamp or date column, got {other}"),
    })
}

fn scale<T: ArrowPrimitiveType>(
    array: &ArrayRef,
    to_micros: impl Fn(T::Native) -> i64,
) -> Int64Array {
    let typed: &PrimitiveArray<T> = array.as_primitive::<T>();
    typed.unary(to_micros)
}

/// The microsecond values of a column that has no nulls (event times, which are filtered).
pub fn non_null_micros(array: &ArrayRef) -> Result<Vec<i64>> {
    let micros = to_micros(array)?;
    if micros.null_count() > 0 {
        return exec_err!("event times must not be null");
    }
    Ok(micros.values().to_vec())
}
