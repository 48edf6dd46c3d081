//! Property tests of the time core against brute-force readings of SEMANTICS.md.

use proptest::prelude::*;

use crate::{Duration, Grid, Instant, WindowLength, WindowSemantics, count_before, first_from};

/// Ten years either side of the epoch, in microseconds.
const SPAN: i64 = 10 * 366 * 86_400 * 1_000_000;

fn bucket_micros() -> impl Strategy<Value = i64> {
    prop_oneof![
        1i64..=10,
        Just(1_000_000),
        Just(600_000_000),
        Just(3_600_000_000),
        Just(86_400_000_000),
        1i64..=200_000_000_000,
    ]
}

fn grid() -> impl Strategy<Value = Grid> {
    (bucket_micros(), -SPAN..SPAN)
        .prop_map(|(b, o)| Grid::new(Duration::from_micros(b).unwrap(), o))
}

fn window() -> impl Strategy<Value = WindowLength> {
    prop_oneof![
        1 => Just(WindowLength::All),
        4 => (1i64..=400 * 86_400_000_000).prop_map(|w| WindowLength::Bounded(Duration::from_micros(w).unwrap())),
    ]
}

/// An instant, often placed exactly on or next to a bucket boundary of `grid`.
fn instant_near_boundaries(grid: Grid) -> impl Strategy<Value = Instant> {
    let b = grid.bucket().micros();
    let o = grid.origin();
    prop_oneof![
        -SPAN..SPAN,
        (-1000i64..1000, -1i64..=1).prop_map(move |(i, d)| o + i * b + d),
    ]
}

/// The spec's definition of `floor_b`: the bucket start `s = o + i*b` with `s <= x < s + b`.
fn is_floor(grid: &Grid, x: Instant, s: Instant) -> bool {
    let b = i128::from(grid.bucket().micros());
    let (x, s, o) = (i128::from(x), i128::from(s), i128::from(grid.origin()));
    (s - o) % b == 0 && s <= x && x < s + b
}

/// The spec's table of SEMANTICS.md §3, written as inequalities on the event time.
fn brute_force_sees(
    semantics: WindowSemantics,
    window: WindowLength,
    grid: &Grid,
    t: Instant,
    ts: Instant,
) -> bool {
    let (t, ts) = (i128::from(t), i128::from(ts));
    let floor = |x: i128| -> i128 {
        let b = i128::from(grid.bucket().micros());
        let o = i128::from(grid.origin());
        o + (x - o).div_euclid(b) * b
    };
    match (semantics, window) {
        (WindowSemantics::Exact, WindowLength::Bounded(w)) => {
            t - i128::from(w.micros()) < ts && ts <= t
        }
        (WindowSemantics::Aligned, WindowLength::Bounded(w)) => {
            floor(t - i128::from(w.micros())) <= ts && ts <= t
        }
        (WindowSemantics::Bucketed, WindowLength::Bounded(w)) => {
            floor(t - i128::from(w.micros())) <= ts && ts < floor(t)
        }
        (WindowSemantics::Exact | WindowSemantics::Aligned, WindowLength::All) => ts <= t,
        (WindowSemantics::Bucketed, WindowLength::All) => ts < floor(t),
    }
}

fn semantics() -> impl Strategy<Value = WindowSemantics> {
    prop_oneof![
        Just(WindowSemantics::Exact),
        Just(WindowSemantics::Aligned),
        Just(WindowSemantics::Bucketed)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn floor_matches_the_definition((grid, x) in grid().prop_flat_map(|g| (Just(g), instant_near_boundaries(g)))) {
        let floor = grid.floor(x);
        prop_assert!(is_floor(&grid, x, floor));
        prop_assert_eq!(grid.bucket_start(grid.index(x)), floor);
        prop_assert!(grid.ceil(x) >= x && grid.ceil(x) - x < grid.bucket().micros());
        prop_assert!(is_floor(&grid, grid.ceil(x), grid.ceil(x)));
    }

    #[test]
    fn completeness_matches_the_definition((grid, x, t) in grid().prop_flat_map(|g| (Just(g), instant_near_boundaries(g), instant_near_boundaries(g)))) {
        let index = grid.index(x);
        let end = i128::from(grid.origin()) + (i128::from(index) + 1) * i128::from(grid.bucket().micros());
        prop_assert_eq!(grid.is_complete(index, t), end <= i128::from(t));
    }

    #[test]
    fn event_range_matches_the_spec_table(
        (grid, t, ts, w, s) in grid().prop_flat_map(|g| (
            Just(g),
            instant_near_boundaries(g),
            instant_near_boundaries(g),
            window(),
            semantics(),
        ))
    ) {
        let range = s.event_range(w, &grid, t);
        prop_assert_eq!(range.contains(ts), brute_force_sees(s, w, &grid, t, ts));
        // Also probe the edges of the window itself, where off-by-one errors live.
        for probe in [range.end - 1, range.end, range.start.unwrap_or(i64::MIN), range.start.unwrap_or(i64::MIN).saturating_sub(1)] {
            prop_assert_eq!(range.contains(probe), brute_force_sees(s, w, &grid, t, probe), "probe {}", probe);
        }
    }

    #[test]
    fn no_semantics_sees_the_future(grid in grid(), t in -SPAN..SPAN, w in window(), s in semantics(), later in 1i64..1_000_000_000) {
        prop_assert!(!s.event_range(w, &grid, t).contains(t + later));
    }

    #[test]
    fn duration_display_round_trips(micros in 1i64..=400 * 86_400_000_000) {
        let duration = Duration::from_micros(micros / 1000 * 1000 + 1000).unwrap();
        prop_assert_eq!(Duration::parse(&duration.to_string()).unwrap(), duration);
    }

    #[test]
    fn count_before_is_the_partition_point(
        mut times in proptest::collection::vec(-50i64..50, 0..300),
        bound in -60i64..60,
    ) {
        times.sort_unstable();
        prop_assert_eq!(count_before(&times, bound), times.partition_point(|&t| t < bound));
    }

    #[test]
    fn first_from_is_the_partition_point_after_its_start(
        mut times in proptest::collection::vec(-50i64..50, 0..300),
        bound in -60i64..60,
        start in 0usize..310,
    ) {
        times.sort_unstable();
        let low = start.min(times.len());
        let expected = low + times[low..].partition_point(|&t| t < bound);
        prop_assert_eq!(first_from(low, times.len(), |i| times[i] >= bound), expected);
    }
}
