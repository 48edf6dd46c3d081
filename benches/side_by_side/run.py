#!/usr/bin/env python3
"""Side-by-side training-set benchmark: Tessera against DuckDB, Polars and plain DataFusion.

One invocation generates a deterministic data set (events over a year for
skewed users, with nulls and events planted exactly on window boundaries, and
a spine over the last 90 days), writes it as Parquet, and runs every system's
formulation on the same files in its own process: Tessera's exact, aligned
and bucketed plans from raw events, its exact and bucketed plans from tiles
(the backfill timed separately), plain DataFusion SQL (a range join, through
Tessera's binary with no feature in play), DuckDB (a range join, and a join
over daily buckets, aggregated in the run or stored beforehand) and Polars
(rolling windows by key over the union of events and spine). Before it reports a time it checks that every
system's answers agree with Tessera's on the same semantics (exact aggregates
to 1e-9; sketches within their error bounds), then prints one table: system,
formulation, median wall time, peak memory and the ratio to Tessera's exact
plan.

    python3 benches/side_by_side/run.py --size small        # ~1M events, 100k spine rows
    python3 benches/side_by_side/run.py --size medium       # ~20M events, 1M spine rows
    python3 benches/side_by_side/run.py --size medium --systems tessera --memory-limit 1G
    python3 benches/side_by_side/run.py --events 5000000 --users 200000 --spine 100000 --systems tessera
    python3 benches/side_by_side/run.py --size medium --work DIR --only "tessera|duckdb: store"   # some formulations

It builds nothing: it runs `target/release/tessera` (build it with
`cargo build --release -p tessera-cli`) and installs duckdb, polars, pyarrow
and numpy with pip when they are missing.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

SIZES = {
    "tiny": (50_000, 2_000, 5_000),
    "small": (1_000_000, 20_000, 100_000),
    "medium": (20_000_000, 200_000, 1_000_000),
}
WINDOWS = [("1d", 86_400), ("7d", 604_800), ("30d", 2_592_000)]
YEAR_START = 1_735_689_600  # 2025-01-01T00:00:00Z
DAY = 86_400
TIMEOUT = 180
MEMORY_LIMIT = 12 * 1024**3
# DuckDB spills past its own limit (keep it under ours) into this folder of
# the work folder, which the harness empties after every run: a DuckDB
# process killed at the timeout leaves its spill files behind (tens of GB).
DUCKDB_SPILL = "duckdb-spill"


def duckdb_settings(folder):
    return f"SET memory_limit = '10GB'; SET temp_directory = '{folder}/{DUCKDB_SPILL}'"

# Tessera feature -> (aggregate call, DuckDB expression, Polars expression text).
FUNCTIONS = {
    "amount_sum": ("sum(amount)", "sum(e.amount)", "pl.col('amount').sum()"),
    "amount_count": ("count(amount)", "count(e.amount)", "pl.col('amount').count()"),
    "amount_mean": ("mean(amount)", "avg(e.amount)", "pl.col('amount').mean()"),
    "amount_min": ("min(amount)", "min(e.amount)", "pl.col('amount').min()"),
    "amount_max": ("max(amount)", "max(e.amount)", "pl.col('amount').max()"),
    "amount_std": ("std(amount)", "stddev_samp(e.amount)", "pl.col('amount').std()"),
    "merchants": ("approx_count_distinct(merchant)", "count(DISTINCT e.merchant)", "pl.col('merchant').drop_nulls().n_unique()"),
    "amount_median": ("approx_percentile(amount, 0.5)", "quantile_cont(e.amount, 0.5)", "pl.col('amount').median()"),
}


def ensure_packages():
    try:
        import duckdb, polars, pyarrow, numpy  # noqa: F401
    except ImportError:
        print("installing duckdb polars pyarrow numpy", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "duckdb", "polars", "pyarrow", "numpy"], check=True)


def column(feature, seconds):
    return f"b.{feature}__{seconds}__"


def generate(events_n, users_n, spine_n, folder, seed=7):
    """Events and spine as Parquet; the same sizes and seed give the same files,
    so a folder that already holds them (see `params.txt`) is reused."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    params = f"events={events_n} users={users_n} spine={spine_n} seed={seed} spine-first\n"
    marker = os.path.join(folder, "params.txt")
    if os.path.exists(marker) and open(marker).read() == params:
        return
    # Skewed activity: user weights from a Zipf-like law.
    weights = 1.0 / np.arange(1, users_n + 1) ** 0.8
    weights /= weights.sum()
    # The spine has its own generator, so it does not change with the number
    # of events: tile plans are compared at 10x the events on the same spine.
    spine_rng = np.random.default_rng([seed, 1])
    spine_users = spine_rng.choice(users_n, size=spine_n, p=weights).astype(np.int64)
    spine_ts = YEAR_START + 275 * DAY + spine_rng.integers(0, 90 * DAY, size=spine_n)
    rng = np.random.default_rng(seed)
    users = rng.choice(users_n, size=events_n, p=weights).astype(np.int64)
    ts = YEAR_START + rng.integers(0, 365 * DAY * 1_000_000, size=events_n) // 1_000_000
    amount = np.round(rng.gamma(2.0, 30.0, size=events_n), 2)
    amount_null = rng.random(events_n) < 0.05
    merchant = rng.integers(0, 500, size=events_n).astype(np.int64)
    # Planted boundary events: exactly at t, t - 1d, t - 7d, t - 30d of some spine rows.
    planted = min(spine_n, events_n // 50)
    picks = rng.choice(spine_n, size=planted, replace=False)
    offsets = rng.choice([0, DAY, 7 * DAY, 30 * DAY], size=planted)
    users[:planted] = spine_users[picks]
    ts[:planted] = spine_ts[picks] - offsets
    events = pa.table({
        "user_id": users,
        "ts": pa.array(ts * 1_000_000, pa.timestamp("us", tz="UTC")),
        "amount": pa.array(amount, mask=amount_null),
        "merchant": merchant,
    })
    spine = pa.table({
        "rid": np.arange(spine_n, dtype=np.int64),
        "user_id": spine_users,
        "ts": pa.array(spine_ts * 1_000_000, pa.timestamp("us", tz="UTC")),
    })
    pq.write_table(events, os.path.join(folder, "events.parquet"), row_group_size=1 << 20)
    pq.write_table(spine, os.path.join(folder, "spine.parquet"))
    with open(marker, "w") as f:
        f.write(params)


def memory_bytes(pid, field):
    """A /proc/<pid>/status memory field (VmRSS, VmHWM) in bytes; 0 once the process has exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_process(command):
    """Runs a command in its own process, killed past the timeout or past
    MEMORY_LIMIT of resident memory; returns (seconds, peak RSS bytes)."""
    with tempfile.TemporaryFile() as log:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        over, done = threading.Event(), threading.Event()
        peak = [0]

        def watch():
            # Samples the child's own peak (VmHWM; getrusage would also count the
            # harness's memory at spawn) and never waits on it, so wait4 reaps it.
            while not done.is_set():
                peak[0] = max(peak[0], memory_bytes(process.pid, "VmHWM"))
                if memory_bytes(process.pid, "VmRSS") > MEMORY_LIMIT:
                    over.set()
                    process.kill()
                    return
                if time.monotonic() - started > TIMEOUT:
                    process.kill()
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, _ = os.wait4(process.pid, 0)
        elapsed = time.monotonic() - started
        done.set()
        process.returncode = os.waitstatus_to_exitcode(status)
        watcher.join()
        if over.is_set():
            raise RuntimeError(f"killed above {MEMORY_LIMIT / 2**30:.0f} GiB resident")
        if elapsed >= TIMEOUT:
            raise RuntimeError(f"did not finish within {TIMEOUT} s")
        if process.returncode != 0:
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"exit {process.returncode}: {' / '.join(tail)}")
    return elapsed, peak[0]


def tessera_definitions(folder):
    lines = [
        f"CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION '{folder}/events.parquet';",
        f"CREATE EXTERNAL TABLE spine STORED AS PARQUET LOCATION '{folder}/spine.parquet';",
    ]
    windows = ", ".join(f"'{w}'" for w, _ in WINDOWS)
    for feature, (call, _, _) in FUNCTIONS.items():
        lines.append(
            f"CREATE WINDOWED FEATURE b.{feature} FROM events KEY user_id TIMESTAMP ts "
            f"AGGREGATE {call} WINDOWS ({windows}) WITH (bucket_duration = '1d');")
    return "\n".join(lines) + "\n"


def tessera_query(folder, out, settings, skip=()):
    features = ", ".join(f"'b.{f}'" for f in FUNCTIONS if f not in skip)
    sets = "".join(f"SET tessera.{k} = {v};\n" for k, v in settings.items())
    return (tessera_definitions(folder) + sets +
            f"COPY (SELECT * FROM point_in_time('spine', 'ts', {features})) TO '{out}' STORED AS PARQUET;\n")


def range_join_sql(folder, out, dialect):
    """The exact training set as one range join (DuckDB and DataFusion SQL)."""
    median = "quantile_cont({}, 0.5)" if dialect == "duckdb" else "median({})"
    templates = {
        "amount_sum": "sum({})", "amount_count": "count({})", "amount_mean": "avg({})",
        "amount_min": "min({})", "amount_max": "max({})", "amount_std": "stddev_samp({})",
        "merchants": "count(DISTINCT {})", "amount_median": median,
    }
    selects = []
    for feature in FUNCTIONS:
        value = "e.merchant" if feature == "merchants" else "e.amount"
        for _, seconds in WINDOWS:
            inside = f"CASE WHEN e.ts > s.ts - INTERVAL '{seconds} seconds' THEN {value} END"
            selects.append(f'{templates[feature].format(inside)} AS "{column(feature, seconds)}"')
    if dialect == "datafusion":
        source = (f"CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION '{folder}/events.parquet';\n"
                  f"CREATE EXTERNAL TABLE spine STORED AS PARQUET LOCATION '{folder}/spine.parquet';\n")
        events, spine = "events", "spine"
    else:
        source = ""
        events, spine = f"read_parquet('{folder}/events.parquet')", f"read_parquet('{folder}/spine.parquet')"
    query = (f"SELECT s.rid, {', '.join(selects)} FROM {spine} s LEFT JOIN {events} e "
             f"ON e.user_id = s.user_id AND e.ts <= s.ts AND e.ts > s.ts - INTERVAL '{WINDOWS[-1][1]} seconds' "
             f"GROUP BY s.rid")
    if dialect == "datafusion":
        return source + f"COPY ({query}) TO '{out}' STORED AS PARQUET;\n"
    return f"COPY ({query}) TO '{out}' (FORMAT PARQUET);"


DAILY_BUCKETS = ("SELECT user_id, date_trunc('day', ts) AS day, count(amount) AS n, sum(amount) AS total, "
                 "sum(amount * amount) AS squares, min(amount) AS lo, max(amount) AS hi "
                 "FROM read_parquet('{folder}/events.parquet') GROUP BY ALL")


def duckdb_buckets_sql(folder, out, buckets="buckets"):
    """Bucketed semantics over daily buckets (no distinct count or median: not mergeable).

    With `buckets="buckets"` the buckets are aggregated in the same run; any
    other value is a relation of buckets stored beforehand (see
    `duckdb_store_buckets_sql`), DuckDB's counterpart of reading tiles.
    """
    parts = [(seconds, f"date_trunc('day', s.ts - INTERVAL '{seconds} seconds')") for _, seconds in WINDOWS]
    selects = []
    for seconds, lo in parts:
        cond = f"b.day >= {lo} AND b.day < date_trunc('day', s.ts)"
        n = f"sum(CASE WHEN {cond} THEN b.n END)"
        total = f"sum(CASE WHEN {cond} THEN b.total END)"
        squares = f"sum(CASE WHEN {cond} THEN b.squares END)"
        selects += [
            f"coalesce({total}, 0) AS \"{column('amount_sum', seconds)}\"",
            f"coalesce({n}, 0) AS \"{column('amount_count', seconds)}\"",
            f"{total} / nullif({n}, 0) AS \"{column('amount_mean', seconds)}\"",
            f"min(CASE WHEN {cond} THEN b.lo END) AS \"{column('amount_min', seconds)}\"",
            f"max(CASE WHEN {cond} THEN b.hi END) AS \"{column('amount_max', seconds)}\"",
            f"CASE WHEN {n} >= 2 THEN sqrt(greatest(({squares} - {total} * {total} / {n}) / ({n} - 1), 0)) END AS \"{column('amount_std', seconds)}\"",
        ]
    build = f"CREATE TABLE buckets AS {DAILY_BUCKETS.format(folder=folder)};\n" if buckets == "buckets" else ""
    return (f"SET TimeZone = 'UTC';\n" + build +
            f"COPY (SELECT s.rid, {', '.join(selects)} FROM read_parquet('{folder}/spine.parquet') s LEFT JOIN {buckets} b "
            f"ON b.user_id = s.user_id AND b.day >= date_trunc('day', s.ts - INTERVAL '{WINDOWS[-1][1]} seconds') AND b.day < date_trunc('day', s.ts) "
            f"GROUP BY s.rid) TO '{out}' (FORMAT PARQUET);")


def duckdb_store_buckets_sql(folder, path):
    """The daily buckets of the whole year, written once as Parquet (DuckDB's backfill)."""
    return f"SET TimeZone = 'UTC';\nCOPY ({DAILY_BUCKETS.format(folder=folder)}) TO '{path}' (FORMAT PARQUET);"


def polars_script(folder, out, skip=()):
    aggregations = []
    for feature, (_, _, expression) in FUNCTIONS.items():
        if feature in skip:
            continue
        for window, seconds in WINDOWS:
            aggregations.append(f"({expression}).alias('{column(feature, seconds)}')")
    return textwrap.dedent(f"""
        import polars as pl
        events = pl.read_parquet('{folder}/events.parquet')
        spine = pl.read_parquet('{folder}/spine.parquet')
        rows = pl.concat([
            events.with_columns(pl.lit(None, pl.Int64).alias('rid')).select('user_id', 'ts', 'amount', 'merchant', 'rid'),
            spine.with_columns(pl.lit(None, pl.Float64).alias('amount'), pl.lit(None, pl.Int64).alias('merchant')).select('user_id', 'ts', 'amount', 'merchant', 'rid'),
        ]).sort('user_id', 'ts')
        results = []
        for period in {[w for w, _ in WINDOWS]!r}:
            seconds = {{'1d': 86400, '7d': 604800, '30d': 2592000}}[period]
            aggs = [a for a in [{', '.join(aggregations)}] if a.meta.output_name().endswith(f'__{{seconds}}__')]
            rolled = rows.rolling(index_column='ts', period=period, group_by='user_id', closed='right').agg(aggs)
            # One output row per input row, in the input's (user, time) order.
            assert rolled['ts'].equals(rows['ts']) and rolled['user_id'].equals(rows['user_id'])
            results.append(rolled.drop('user_id', 'ts').with_columns(rows['rid']).filter(pl.col('rid').is_not_null()))
        out = spine.select('rid')
        for rolled in results:
            out = out.join(rolled, on='rid', how='left')
        out.write_parquet('{out}')
    """)


def duckdb_chunked_script(folder, out, chunks=8):
    """The exact training set one window at a time, over users in `chunks`
    slices, each a range join (what DuckDB users do when one join is too big)."""
    steps = [duckdb_settings(folder), "SET TimeZone = 'UTC'",
             f"CREATE TABLE events AS SELECT * FROM read_parquet('{folder}/events.parquet')",
             f"CREATE TABLE spine AS SELECT * FROM read_parquet('{folder}/spine.parquet')"]
    for _, seconds in WINDOWS:
        aggs = []
        for feature, (_, expression, _) in FUNCTIONS.items():
            aggs.append(f'{expression} AS "{column(feature, seconds)}"')
        join = (f"FROM spine s LEFT JOIN events e ON e.user_id = s.user_id AND e.ts <= s.ts "
                f"AND e.ts > s.ts - INTERVAL '{seconds} seconds'")
        steps.append(f"CREATE TABLE w{seconds} AS SELECT s.rid, {', '.join(aggs)} {join} WHERE false GROUP BY s.rid")
        for chunk in range(chunks):
            steps.append(f"INSERT INTO w{seconds} SELECT s.rid, {', '.join(aggs)} {join} "
                         f"WHERE s.user_id % {chunks} = {chunk} GROUP BY s.rid")
    joins = " ".join(f"JOIN w{seconds} USING (rid)" for _, seconds in WINDOWS)
    steps.append(f"COPY (SELECT * FROM spine {joins}) TO '{out}' (FORMAT PARQUET)")
    return f"import duckdb; c = duckdb.connect(); [c.execute(s) for s in {steps!r}]"


def read(path, key):
    import pyarrow.parquet as pq
    table = pq.read_table(path).to_pydict()
    order = sorted(range(len(table[key])), key=lambda i: table[key][i])
    return {name: [values[i] for i in order] for name, values in table.items()}


def close(x, y):
    """Exact aggregates agree to 1e-9 relative (1e-9 absolute near zero, where running sums leave dust)."""
    return abs(x - y) <= 1e-9 * max(abs(x), abs(y)) + 1e-9


def agree(reference, other, columns):
    """Columns where `other` differs from `reference`, with the number of differing rows.

    Exact aggregates must agree on every row. The distinct count (CPC,
    standard error 1.5%) must be within 5% of the exact count on 99% of rows;
    the median (t-digest) must lie within the window's [min, max] on every
    row and within 10% of the exact median on 99% of the rows with at least
    20 values, since a quantile sketch is bounded in rank, not in value.
    """
    problems = {}
    for name in columns:
        feature, seconds = name.removeprefix("b.").split("__")[:2]
        if name not in other:
            continue
        low = reference[f"b.amount_min__{seconds}__"]
        high = reference[f"b.amount_max__{seconds}__"]
        count = reference[f"b.amount_count__{seconds}__"]
        hard, soft = 0, 0
        for i, (x, y) in enumerate(zip(reference[name], other[name])):
            if feature in ("amount_sum", "amount_count", "merchants"):
                x, y = x or 0, y or 0
            if x is None or y is None:
                hard += (x is None) != (y is None)
            elif feature == "merchants":
                soft += abs(x - y) > 0.05 * max(x, y)
            elif feature == "amount_median":
                hard += not (low[i] - 1e-9 <= y <= high[i] + 1e-9 and low[i] - 1e-9 <= x <= high[i] + 1e-9)
                soft += count[i] >= 20 and abs(x - y) > 0.10 * max(abs(x), abs(y))
            else:
                hard += not close(x, y)
        if hard or soft > 0.01 * len(reference[name]):
            problems[name] = hard + soft
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--events", type=int, help="events (overrides --size)")
    parser.add_argument("--users", type=int, help="users (overrides --size)")
    parser.add_argument("--spine", type=int, help="spine rows (overrides --size)")
    parser.add_argument("--systems", default="tessera,datafusion,duckdb,polars",
                        help="comma-separated systems to run (Tessera always runs: it is the reference)")
    parser.add_argument("--memory-limit", default=None,
                        help="DataFusion memory pool for Tessera and plain DataFusion, e.g. 1G (sorts spill past it)")
    parser.add_argument("--only", default=None,
                        help="run only formulations whose 'system: formulation' contains one of these texts "
                             "(separated by '|'); answers are checked against the Tessera outputs an earlier "
                             "run left in --work")
    parser.add_argument("--runs", type=int, default=3, help="runs per formulation (the median is reported)")
    parser.add_argument("--tessera", default="target/release/tessera")
    parser.add_argument("--work", default=None, help="folder for data and outputs (default: a temporary one)")
    args = parser.parse_args()
    ensure_packages()
    tessera = os.path.abspath(args.tessera)
    if not os.path.exists(tessera):
        sys.exit(f"{tessera} not found: cargo build --release -p tessera-cli")
    folder = os.path.abspath(args.work or tempfile.mkdtemp(prefix="tessera-bench-"))
    os.makedirs(folder, exist_ok=True)
    events_n, users_n, spine_n = SIZES[args.size]
    events_n, users_n, spine_n = args.events or events_n, args.users or users_n, args.spine or spine_n
    generate(events_n, users_n, spine_n, folder)
    limit = f", memory limit {args.memory_limit}" if args.memory_limit else ""
    print(f"{events_n} events of {users_n} users, {spine_n} spine rows in {folder}{limit}", flush=True)
    systems = {"tessera"} | set(args.systems.lower().split(","))
    binary = [tessera] + (["--memory-limit", args.memory_limit] if args.memory_limit else [])

    def write(name, text):
        path = os.path.join(folder, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def out(name):
        return os.path.join(folder, f"{name}.parquet")

    tiles = os.path.join(folder, "tiles")
    write("definitions.sql", tessera_definitions(folder))
    backfill = binary + ["aggregate", "backfill", "--definitions", os.path.join(folder, "definitions.sql"),
                "--store-offline", "--lower-bound", "2025-01-01T00:00:00Z", "--upper-bound", "2026-01-02T00:00:00Z",
                "--tile-store", tiles] + sum((["--feature", f"b.{f}"] for f in FUNCTIONS), [])
    stored_buckets = os.path.join(folder, "duckdb_daily_buckets.parquet")

    def duckdb_sql(text):
        statements = [s for s in text.split(";") if s.strip()]
        return [sys.executable, "-c", f"import duckdb; c = duckdb.connect(); c.execute({duckdb_settings(folder)!r}); [c.execute(s) for s in {statements!r}]"]

    from_tiles = {"use_tile_store": "true", "tile_store_url": f"'{tiles}'"}
    plans = [
        ("Tessera", "exact, raw events", "exact", binary + ["sql", "-f", write("exact.sql", tessera_query(folder, out("exact"), {}))]),
        ("Tessera", "aligned, raw events", "aligned", binary + ["sql", "-f", write("aligned.sql", tessera_query(folder, out("aligned"), {"align_offline_chalk_window_with_materialization": "true"}))]),
        ("Tessera", "bucketed, raw events", "bucketed", binary + ["sql", "-f", write("bucketed.sql", tessera_query(folder, out("bucketed"), {"use_materialized_offline_query": "true"}))]),
        # The same columns as the peers that cannot compute all of them.
        ("Tessera", "exact, raw events (no distinct count)", "exact", binary + ["sql", "-f", write("exact_lean.sql", tessera_query(folder, out("exact_lean"), {}, skip=("merchants",)))]),
        ("Tessera", "bucketed, raw events (no distinct, median)", "bucketed", binary + ["sql", "-f", write("bucketed_lean.sql", tessera_query(folder, out("bucketed_lean"), {"use_materialized_offline_query": "true"}, skip=("merchants", "amount_median")))]),
        ("Tessera", "backfill of the year", None, backfill),
        ("Tessera", "exact, tiles", "exact", binary + ["sql", "-f", write("tiles.sql", tessera_query(folder, out("tiles"), from_tiles))]),
        # Bucketed semantics read nothing but tiles: the like-for-like peer is DuckDB's daily buckets.
        ("Tessera", "bucketed, tiles", "bucketed", binary + ["sql", "-f", write("tiles_bucketed.sql", tessera_query(folder, out("tiles_bucketed"), {**from_tiles, "use_materialized_offline_query": "true"}))]),
        ("Tessera", "bucketed, tiles (no distinct, median)", "bucketed", binary + ["sql", "-f", write("tiles_bucketed_lean.sql", tessera_query(folder, out("tiles_bucketed_lean"), {**from_tiles, "use_materialized_offline_query": "true"}, skip=("merchants", "amount_median")))]),
        ("DataFusion", "range join (SQL)", "exact", binary + ["sql", "-f", write("datafusion.sql", range_join_sql(folder, out("datafusion"), "datafusion"))]),
        ("DuckDB", "range join", "exact", duckdb_sql(range_join_sql(folder, out("duckdb"), "duckdb"))),
        ("DuckDB", "daily buckets (no distinct, median)", "bucketed", duckdb_sql(duckdb_buckets_sql(folder, out("duckdb_buckets")))),
        # Buckets stored beforehand, like tiles: the aggregation timed apart, as the backfill is.
        ("DuckDB", "daily buckets: store the year's", None, duckdb_sql(duckdb_store_buckets_sql(folder, stored_buckets))),
        ("DuckDB", "stored daily buckets (no distinct, median)", "bucketed", duckdb_sql(duckdb_buckets_sql(folder, out("duckdb_stored_buckets"), f"read_parquet('{stored_buckets}')"))),
        ("DuckDB", "range join per window, 8 user chunks", "exact", [sys.executable, "-c", duckdb_chunked_script(folder, out("duckdb_chunked"))]),
        ("Polars", "rolling by key", "exact", [sys.executable, "-c", polars_script(folder, out("polars"))]),
        ("Polars", "rolling by key (no distinct count)", "exact", [sys.executable, "-c", polars_script(folder, out("polars_lean"), skip=("merchants",))]),
    ]
    plans = [plan for plan in plans if plan[0].lower() in systems]
    if args.only:
        wanted = [text.strip().lower() for text in args.only.split("|")]
        plans = [plan for plan in plans if any(text in f"{plan[0]}: {plan[1]}".lower() for text in wanted)]
    outputs = {"exact": "exact", "aligned": "aligned", "bucketed": "bucketed"}
    results = []
    for system, formulation, semantics, command in plans:
        times, peaks, error = [], [], None
        for _ in range(args.runs if semantics else 1):
            try:
                elapsed, peak = run_process(command)
                times.append(elapsed)
                peaks.append(peak)
            except RuntimeError as e:
                error = str(e).splitlines()[0][:120]
                break
            finally:
                shutil.rmtree(os.path.join(folder, DUCKDB_SPILL), ignore_errors=True)
        results.append((system, formulation, semantics, times, peaks, error))
        status = error or f"{statistics.median(times):.2f} s"
        print(f"  {system:<10} {formulation:<38} {status}", flush=True)

    names = [column(f, s) for f in FUNCTIONS for _, s in WINDOWS]
    reference = {sem: read(out(sem), "rid") if os.path.exists(out(sem)) else None for sem in outputs}
    checks = {
        ("Tessera", "exact, tiles"): ("exact", out("tiles")),
        ("Tessera", "bucketed, tiles"): ("bucketed", out("tiles_bucketed")),
        ("Tessera", "bucketed, tiles (no distinct, median)"): ("bucketed", out("tiles_bucketed_lean")),
        ("Tessera", "exact, raw events (no distinct count)"): ("exact", out("exact_lean")),
        ("Tessera", "bucketed, raw events (no distinct, median)"): ("bucketed", out("bucketed_lean")),
        ("DataFusion", "range join (SQL)"): ("exact", out("datafusion")),
        ("DuckDB", "range join"): ("exact", out("duckdb")),
        ("DuckDB", "daily buckets (no distinct, median)"): ("bucketed", out("duckdb_buckets")),
        ("DuckDB", "stored daily buckets (no distinct, median)"): ("bucketed", out("duckdb_stored_buckets")),
        ("DuckDB", "range join per window, 8 user chunks"): ("exact", out("duckdb_chunked")),
        ("Polars", "rolling by key"): ("exact", out("polars")),
        ("Polars", "rolling by key (no distinct count)"): ("exact", out("polars_lean")),
    }
    first = results[0] if results else None
    baseline = statistics.median(first[3]) if first and first[1] == "exact, raw events" and first[3] else None
    print()
    print(f"| system | formulation | wall time (median) | peak memory | vs Tessera exact | answers |")
    print(f"|---|---|---|---|---|---|")
    for system, formulation, semantics, times, peaks, error in results:
        verdict = "reference" if (system, formulation) == ("Tessera", "exact, raw events") else "-"
        if (system, formulation) in checks and not error:
            sem, path = checks[(system, formulation)]
            tessera_side = reference[sem]
            if tessera_side is None:
                # --only left out the raw plan these answers are checked against.
                verdict = f"unchecked (no Tessera {sem} reference in this run)"
            else:
                problems = agree(tessera_side, read(path, "rid"), names)
                verdict = "agree" if not problems else "DIFFER: " + ", ".join(f"{k} ({v})" for k, v in list(problems.items())[:3])
        if error:
            print(f"| {system} | {formulation} | {error} | - | - | - |")
            continue
        median = statistics.median(times)
        ratio = f"{median / baseline:.2f}x" if baseline else "-"
        print(f"| {system} | {formulation} | {median:.2f} s | {max(peaks) / 2**30:.2f} GiB | {ratio} | {verdict} |")


if __name__ == "__main__":
    main()
