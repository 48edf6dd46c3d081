//! Hostile and corrupt states: random bit flips, truncations and extensions of
//! valid sketch images must decode to an error or a valid value — never a
//! panic, and never an allocation beyond a fixed limit, whatever the header
//! claims. Runs a bounded number of mutations on stable Rust; the `fuzz/`
//! targets explore the same decoders without a bound.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, Float64Array, Int64Array, StringArray,
};
use datafusion::common::ScalarValue;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tessera::aggregates::{
    AggregateImplementation, Argument, BoundAggregate, BucketSource, Input, Output,
};

/// Counts the largest single allocation made on the current thread.
struct LargestAllocation;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: delegates every call to the system allocator; only records sizes.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(layout.size())));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(new_size)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// No single allocation while decoding one state may exceed this.
const ALLOCATION_LIMIT: usize = 64 << 20;

fn bind(function: &str, arguments: Vec<Argument>) -> Arc<dyn AggregateImplementation> {
    BoundAggregate::bind("hostile", function, &arguments)
        .unwrap()
        .implementation()
        .unwrap()
}

/// A valid serialized state of `implementation` over `values`.
fn valid_image(implementation: &Arc<dyn AggregateImplementation>, values: ArrayRef) -> Vec<u8> {
    let mut accumulator = implementation.accumulator("h", Input::Arguments, Output::Result);
    accumulator.update_batch(&[values]).unwrap();
    match accumulator.state().unwrap().remove(0) {
        ScalarValue::Binary(Some(image)) => image,
        other => panic!("sketch state should be binary, got {other:?}"),
    }
}

fn mutate(image: &[u8], rng: &mut SmallRng) -> Vec<u8> {
    let mut mutated = image.to_vec();
    match rng.gen_range(0..4) {
        0 => mutated.truncate(rng.gen_range(0..image.len().max(1))),
        1 => mutated.extend((0..rng.gen_range(1..64)).map(|_| rng.r#gen::<u8>())),
        _ => {
            for _ in 0..rng.gen_range(1..8) {
                let byte = rng.gen_range(0..mutated.len().max(1));
                if let Some(b) = mutated.get_mut(byte) {
                    *b ^= 1 << rng.gen_range(0..8);
                }
            }
        }
    }
    mutated
}

/// Decodes and evaluates one image; returns whether it decoded, and the largest allocation.
fn decode(implementation: &Arc<dyn AggregateImplementation>, image: &[u8]) -> (bool, usize) {
    let states: ArrayRef = Arc::new(BinaryArray::from(vec![Some(image)]));
    LARGEST.with(|largest| largest.set(0));
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        implementation.evaluate_states(&[states], 1)
    }));
    let largest = LARGEST.with(Cell::get);
    match outcome {
        Ok(result) => (result.is_ok(), largest),
        Err(_) => panic!("decoding a mutated image panicked: {image:?}"),
    }
}

#[test]
fn mutated_sketch_images_error_or_decode_without_panics_or_huge_allocations() {
    use datafusion::arrow::datatypes::DataType::{Float64, Int64, Utf8};
    let mut rng = SmallRng::seed_from_u64(42);
    let ints: ArrayRef = Arc::new(Int64Array::from_iter_values(
        (0..3000).map(|i| i * 7 % 1013),
    ));
    let strings: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..400).map(|i| format!("s{}", i % 97)),
    ));
    let floats: ArrayRef = Arc::new(Float64Array::from_iter_values(
        (0..5000).map(|i| f64::from(i % 977) / 3.0),
    ));
    let cases = [
        (
            "CPC of integers",
            bind("approx_count_distinct", vec![Argument::column(Int64)]),
            ints.clone(),
        ),
        (
            "CPC of strings",
            bind("approx_count_distinct", vec![Argument::column(Utf8)]),
            strings.clone(),
        ),
        (
            "frequent items of integers",
            bind(
                "approx_top_k",
                vec![
                    Argument::column(Int64),
                    Argument::constant(ScalarValue::Int64(Some(5))),
                ],
            ),
            ints.slice(0, 300),
        ),
        (
            "frequent items of strings",
            bind(
                "approx_top_k",
                vec![
                    Argument::column(Utf8),
                    Argument::constant(ScalarValue::Int64(Some(5))),
                ],
            ),
            strings,
        ),
        (
            "t-digest",
            bind(
                "approx_percentile",
                vec![
                    Argument::column(Float64),
                    Argument::constant(ScalarValue::Float64(Some(0.9))),
                ],
            ),
            floats,
        ),
    ];
    for (name, implementation, values) in cases {
        let image = valid_image(&implementation, values);
        let (decoded, _) = decode(&implementation, &image);
        assert!(decoded, "{name}: the valid image must decode");
        let mut rejected = 0;
        for _ in 0..1500 {
            let (decoded, largest) = decode(&implementation, &mutate(&image, &mut rng));
            assert!(
                largest <= ALLOCATION_LIMIT,
                "{name}: a mutated image allocated {largest} bytes at once"
            );
            rejected += usize::from(!decoded);
        }
        assert!(
            rejected > 0,
            "{name}: no mutation was rejected, so validation is not exercised"
        );
    }
}

#[test]
fn a_header_claiming_a_huge_map_is_rejected_before_allocating() {
    // A 48-byte frequent-items image whose header claims a 2^30-entry map
    // would make the library allocate gigabytes.
    let implementation = bind(
        "approx_top_k",
        vec![
            Argument::column(datafusion::arrow::datatypes::DataType::Int64),
            Argument::constant(ScalarValue::Int64(Some(5))),
        ],
    );
    let mut image = vec![0u8; 48];
    image[..8].copy_from_slice(&[4, 1, 10, 30, 30, 0, 0, 0]);
    image[8] = 1;
    image[16] = 1;
    let states: ArrayRef = Arc::new(BinaryArray::from(vec![Some(image.as_slice())]));
    LARGEST.with(|largest| largest.set(0));
    let error = implementation
        .evaluate_states(&[states], 1)
        .unwrap_err()
        .strip_backtrace();
    assert!(LARGEST.with(Cell::get) < 1 << 20);
    assert!(error.contains("map sizes 2^30"), "{error}");
    assert!(
        error.contains("in state column(s) state[items_int64] row 0"),
        "{error}"
    );
}

/// A window loading tile states decodes a key's run of tile rows at once:
/// a bad state among them still fails naming its row and what is wrong.
#[test]
fn a_bad_tile_state_fails_the_window_load_naming_its_row() {
    use datafusion::arrow::datatypes::DataType;
    let float = || vec![Argument::column(DataType::Float64)];
    let counts = |values: Vec<i64>| -> ArrayRef { Arc::new(Int64Array::from(values)) };
    let floats = |values: Vec<Option<f64>>| -> ArrayRef { Arc::new(Float64Array::from(values)) };
    let cases: Vec<(&str, Vec<ArrayRef>, (&str, &str))> = vec![
        (
            "count",
            vec![counts(vec![2, 1, -3])],
            ("row 2", "invalid count state -3"),
        ),
        (
            "sum",
            vec![
                floats(vec![Some(1.0), None, Some(2.0)]),
                counts(vec![1, 2, 1]),
            ],
            ("row 1", "invalid sum state: 2 values but a null sum"),
        ),
        (
            "mean",
            vec![
                floats(vec![Some(1.0), Some(2.0), Some(3.0)]),
                counts(vec![1, -2, 1]),
            ],
            ("row 1", "invalid sum state: count -2 is negative"),
        ),
        (
            "var",
            vec![
                counts(vec![2, 2, 2]),
                floats(vec![Some(1.0), Some(1.0), Some(1.0)]),
                floats(vec![Some(0.5), Some(-0.5), Some(0.5)]),
            ],
            ("row 1", "invalid variance state: count 2"),
        ),
        (
            "min",
            vec![counts(vec![1, 2, 3])],
            ("row 0", "min/max state must be Float64, got Int64"),
        ),
    ];
    let sources = [0, 1, 2].map(BucketSource::Tile);
    for (function, states, (row, problem)) in cases {
        let mut window = bind(function, float()).sliding();
        let values: ArrayRef = Arc::new(Float64Array::from(Vec::<f64>::new()));
        let error = window
            .load(&[values], &sources, &states)
            .expect_err(function)
            .strip_backtrace();
        assert!(
            error.contains(&format!("{row}:")) && error.contains(problem),
            "{function}: {error}"
        );
    }
}

#[test]
fn wrong_state_types_are_errors_naming_the_field() {
    let implementation = bind(
        "approx_count_distinct",
        vec![Argument::column(
            datafusion::arrow::datatypes::DataType::Int64,
        )],
    );
    let not_binary: ArrayRef = Arc::new(Int64Array::from(vec![1]));
    let error = implementation
        .evaluate_states(&[not_binary], 1)
        .unwrap_err()
        .strip_backtrace();
    assert!(
        error.contains("state field 'cpc' must be Binary, got Int64"),
        "{error}"
    );
    let empty = implementation
        .evaluate_states(&[Arc::new(BinaryArray::from(vec![None::<&[u8]>]))], 1)
        .unwrap();
    assert_eq!(
        empty
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0),
        0,
        "a null state is empty"
    );
    assert!(!empty.is_null(0));
}

/// Found by the `decode_frequent_items` fuzz target: an image whose maximum
/// error (`offset`) is near 2^64 decodes in the library, and every estimate
/// `count + offset` then overflows (a panic with overflow checks, wrong
/// results without). Decoding must refuse it.
const FREQUENT_ITEMS_OFFSET_OVERFLOW: [u8; 305] = [
    196, 1, 10, 9, 9, 0, 0, 0, 10, 0, 0, 0, 0, 0, 247, 255, 255, 10, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 196, 1, 10, 9, 9, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 10, 0, 122, 0, 0, 0, 0, 0, 0, 0, 10, 0, 255, 9, 10, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 196, 1, 10, 9, 9, 10, 0, 10, 122, 0, 0, 0, 255, 255, 255, 255, 255, 255,
    255, 0, 10, 0, 122, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 255, 9, 10, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 9, 159, 10, 0, 0, 178, 0, 1, 0, 0, 0, 0, 0, 0,
    20, 0, 216, 221,
];

#[test]
fn a_frequent_items_image_with_an_overflowing_error_bound_is_rejected() {
    let implementation = bind(
        "approx_top_k",
        vec![
            Argument::column(datafusion::arrow::datatypes::DataType::Utf8),
            Argument::constant(ScalarValue::Int64(Some(10))),
        ],
    );
    let states: ArrayRef = Arc::new(BinaryArray::from(vec![Some(
        FREQUENT_ITEMS_OFFSET_OVERFLOW.as_slice(),
    )]));
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        implementation.evaluate_states(&[states], 1)
    }));
    let error = outcome
        .expect("decoding must not panic")
        .unwrap_err()
        .strip_backtrace();
    assert!(error.contains("invalid frequent items state"), "{error}");
}
