//! Validation of Apache DataSketches images before they are decoded.
//!
//! Sketch states come from files that may be corrupt or hostile. The
//! libraries' decoders size some allocations from header fields (a
//! frequent-items image claiming a huge map makes the decoder allocate
//! gigabytes), so every image is checked here first: its family, serial
//! version and size parameters must be exactly what this function's factory
//! writes. Only then is the library's decoder called, and its errors are
//! reported, never unwrapped.

use datafusion::common::{Result, exec_err};

/// What a factory expects at the start of its images.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedHeader {
    /// Sketch name for messages, e.g. `CPC`.
    pub sketch: &'static str,
    /// The DataSketches family id (byte 2).
    pub family: u8,
    /// The serial version (byte 1).
    pub serial_version: u8,
    /// The smallest image the family writes.
    pub min_len: usize,
    /// The largest image a state of this factory can have.
    pub max_len: usize,
}

impl ExpectedHeader {
    /// Checks length, family and version of `image`.
    pub fn check(&self, image: &[u8]) -> Result<()> {
        let Self {
            sketch,
            family,
            serial_version,
            min_len,
            max_len,
        } = *self;
        if image.len() < min_len || image.len() > max_len {
            return exec_err!(
                "invalid {sketch} state: {} bytes, expected between {min_len} and {max_len}",
                image.len()
            );
        }
        if image[2] != family {
            return exec_err!(
                "invalid {sketch} state: family id {} is not {sketch} ({family})",
                image[2]
            );
        }
        if image[1] != serial_version {
            return exec_err!(
                "invalid {sketch} state: serial version {} is not {serial_version}",
                image[1]
            );
        }
        Ok(())
    }
}

/// Reads the binary image in row `row` of state column `column`; `None` for null.
pub fn binary_image<'a>(
    columns: &'a [datafusion::arrow::array::ArrayRef],
    row: usize,
    field: &str,
) -> Result<Option<&'a [u8]>> {
    use datafusion::arrow::array::{Array, AsArray};
    let Some(column) = columns.first() else {
        return exec_err!("state field '{field}' is missing");
    };
    match column.as_binary_opt::<i32>() {
        Some(images) => Ok(images.is_valid(row).then(|| images.value(row))),
        None => exec_err!(
            "state field '{field}' must be Binary, got {}",
            column.data_type()
        ),
    }
}
