//! Checked access to argument columns: a state given a column of the wrong
//! type (a bug upstream, or a hand-written plan) fails with an error naming
//! the function, never a panic.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, PrimitiveArray, StringArray,
};
use datafusion::arrow::datatypes::ArrowPrimitiveType;
use datafusion::common::{Result, exec_err};

/// Argument `index`.
pub(crate) fn argument<'a>(
    arguments: &'a [ArrayRef],
    index: usize,
    function: &str,
) -> Result<&'a ArrayRef> {
    match arguments.get(index) {
        Some(column) => Ok(column),
        None => exec_err!("{function}: missing argument {}", index + 1),
    }
}

/// Argument `index` as a primitive array of `T`.
pub(crate) fn primitive<'a, T: ArrowPrimitiveType>(
    arguments: &'a [ArrayRef],
    index: usize,
    function: &str,
) -> Result<&'a PrimitiveArray<T>> {
    let column = argument(arguments, index, function)?;
    match column.as_primitive_opt::<T>() {
        Some(values) => Ok(values),
        None => exec_err!(
            "{function}: argument {} must be {}, got {}",
            index + 1,
            T::DATA_TYPE,
            column.data_type()
        ),
    }
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
