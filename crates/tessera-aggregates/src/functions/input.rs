//! Checked access to argument columns: a state given a column of the wrong
//! type (a bug upstream, or a hand-written plan) fails with an error naming
//! the function, never a panic.
//!
//! States fold one row at a time, so these run for every event a window
//! reads: the checks are inlined and the errors built out of line.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, PrimitiveArray, StringArray,
};
use datafusion::arrow::datatypes::{ArrowPrimitiveType, DataType};
use datafusion::common::{DataFusionError, Result, exec_datafusion_err, exec_err};

/// Argument `index`.
#[inline]
pub(crate) fn argument<'a>(
    arguments: &'a [ArrayRef],
    index: usize,
    function: &str,
) -> Result<&'a ArrayRef> {
    match arguments.get(index) {
        Some(column) => Ok(column),
        None => Err(missing_argument(function, index)),
    }
}

#[cold]
#[inline(never)]
fn missing_argument(function: &str, index: usize) -> DataFusionError {
    exec_datafusion_err!("{function}: missing argument {}", index + 1)
}

/// Argument `index` as a primitive array of `T`.
#[inline]
pub(crate) fn primitive<'a, T: ArrowPrimitiveType>(
    arguments: &'a [ArrayRef],
    index: usize,
    function: &str,
) -> Result<&'a PrimitiveArray<T>> {
    let column = argument(arguments, index, function)?;
    match column.as_primitive_opt::<T>() {
        Some(values) => Ok(values),
        None => Err(wrong_type(function, index, &T::DATA_TYPE, column)),
    }
}

#[cold]
#[inline(never)]
fn wrong_type(
    function: &str,
    index: usize,
    expected: &DataType,
    column: &ArrayRef,
) -> DataFusionError {
    exec_datafusion_err!(
        "{function}: argument {} must be {expected}, got {}",
        index + 1,
        column.data_type()
    )
}

/// Argument `index` as Utf8 strings.
pub(crate) fn strings<'a>(
    arguments: &'a [ArrayRef],
    index: usize,
    function: &str,
) -> Result<&'a StringArray> {
    let column = argument(arguments, index, function)?;
    match column.as_string_opt::<i32>() {
        Some(values) => Ok(values),
        None => exec_err!(
            "{function}: argument {} must be Utf8, got {}",
            index + 1,
            column.data_type()
        ),
    }
}

/// Argument `index` as fixed-size lists.
pub(crate) fn vectors<'a>(
    arguments: &'a [ArrayRef],
    index: usize,
    function: &str,
) -> Result<&'a FixedSizeListArray> {
    let column = argument(arguments, index, function)?;
    match column.as_fixed_size_list_opt() {
        Some(values) => Ok(values),
        None => exec_err!(
            "{function}: argument {} must be a fixed-size list, got {}",
            index + 1,
            column.data_type()
        ),
    }
}
