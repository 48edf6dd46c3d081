"""Reads sketch states that Tessera wrote to Parquet with the Apache
DataSketches Python library, and checks that it sees what Tessera sees.

Usage: check_sketches.py STATES.parquet

Each row holds, for one group: Tessera's states (structs of state columns),
Tessera's own estimates, and the raw values. For every sketch this checks:
- the image deserializes and gives Tessera's estimate (CPC, frequent items),
  or is the same digest (t-digest: same weight, same rank for Tessera's value);
- Python's own CPC sketch of the raw values has the same coupons (a union with
  Tessera's sketch adds nothing), so sketches merge across languages.
Prints one JSON line with how many sketches were checked; exits 1 on a mismatch.
"""

import json
import sys

import datasketches as ds
import pyarrow.parquet as pq

UINT64 = (1 << 64) - 1


def image(state):
    """The single binary field of a state struct."""
    (value,) = state.values()
    return value


def check_cpc(row, column, raw, expected, failures):
    sketch = ds.cpc_sketch.deserialize(image(row[column]))
    if round(sketch.get_estimate()) != row[expected]:
        failures.append(f"{column}: python estimate {sketch.get_estimate()} != tessera {row[expected]}")
    own = ds.cpc_sketch(11)
    for value in row[raw]:
        if value is None or value == "":
            continue
        # The binding takes ints as uint64; pass the int64 bit pattern Tessera hashes.
        own.update(value & UINT64 if isinstance(value, int) else value)
    # Same coupons: adding Tessera's sketch to a union of Python's own changes nothing.
    alone = ds.cpc_union(11)
    alone.update(own)
    both = ds.cpc_union(11)
    both.update(own)
    both.update(sketch)
    if both.get_result().get_estimate() != alone.get_result().get_estimate():
        failures.append(
            f"{column}: union with tessera's sketch {both.get_result().get_estimate()} "
            f"!= python's own {alone.get_result().get_estimate()} (coupons differ)"
        )


def check_frequent_items(row, column, expected_top, failures, serde=None):
    sketch = (ds.frequent_items_sketch.deserialize(image(row[column]), serde) if serde
              else ds.frequent_strings_sketch.deserialize(image(row[column])))
    items = sketch.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES)
    ranked = sorted(items, key=lambda item: (-item[1], item[0]))
    top = [item[0] for item in ranked[: len(row[expected_top])]]
    if top != row[expected_top]:
        failures.append(f"{column}: python top {top} != tessera {row[expected_top]}")


def check_tdigest(row, column, expected, raw, failures):
    """Python reads the same digest: the same total weight, and its CDF puts
    Tessera's median at rank 0.5. (The libraries interpolate between centroids
    differently, so their quantile *values* differ slightly; both must be
    within the t-digest's rank error of the true median.)"""
    digest = ds.tdigest_double.deserialize(image(row[column]))
    values = sorted(row[raw])
    if digest.get_total_weight() != len(values):
        failures.append(f"{column}: python sees weight {digest.get_total_weight()}, {len(values)} values were added")
    if abs(digest.get_rank(row[expected]) - 0.5) > 0.002:
        failures.append(f"{column}: python ranks tessera's median {row[expected]} at {digest.get_rank(row[expected])}")
    for name, estimate in (("python", digest.get_quantile(0.5)), ("tessera", row[expected])):
        rank = sum(1 for v in values if v < estimate) / len(values)
        if abs(rank - 0.5) > 0.02:
            failures.append(f"{column}: {name}'s median {estimate} has rank {rank:.3f} among the values")


def main(path):
    rows = pq.read_table(path).to_pylist()
    failures = []
    for row in rows:
        check_cpc(row, "cpc_int", "raw_int", "distinct_int", failures)
        check_cpc(row, "cpc_str", "raw_str", "distinct_str", failures)
        check_frequent_items(row, "top_str", "expected_top_str", failures)
        check_frequent_items(row, "top_int", "expected_top_int", failures, ds.PyLongsSerDe())
        check_tdigest(row, "digest", "median", "raw_f", failures)
    print(json.dumps({"groups": len(rows), "sketches": 5 * len(rows), "failures": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
