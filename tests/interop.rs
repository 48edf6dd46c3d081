//! Sketch states written by Tessera are Apache DataSketches images that other
//! DataSketches libraries read: this writes CPC, frequent-items and t-digest
//! states to Parquet with SQL, and checks them with the Python `datasketches`
//! package (`tests/interop/check_sketches.py`), which must see the same
//! estimates and the same coupons. `scripts/test.sh` installs the package.

use std::process::Command;

use crate::common::{context, run};

#[tokio::test]
async fn python_datasketches_reads_tessera_sketches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("states.parquet");
    let ctx = context();
    run(
        &ctx,
        &format!(
            "CREATE TABLE events AS
                 SELECT value % 13 AS g,
                        (value * 7919) % 2003 - 1000 AS i,
                        'item-' || ((value * 31) % 257) AS s,
                        (value % 977) / 7.0 AS f
                 FROM generate_series(1, 20000);
             COPY (
                 SELECT g,
                        approx_count_distinct_state(i) AS cpc_int, approx_count_distinct(i) AS distinct_int, array_agg(i) AS raw_int,
                        approx_count_distinct_state(s) AS cpc_str, approx_count_distinct(s) AS distinct_str, array_agg(s) AS raw_str,
                        approx_top_k_state(s, 5) AS top_str, approx_top_k(s, 5) AS expected_top_str,
                        approx_top_k_state(i % 50, 5) AS top_int, approx_top_k(i % 50, 5) AS expected_top_int,
                        approx_percentile_state(f, 0.5) AS digest,
                        approx_percentile_final(approx_percentile_state(f, 0.5), 0.5) AS median, array_agg(f) AS raw_f
                 FROM events GROUP BY g ORDER BY g
             ) TO '{}' STORED AS PARQUET",
            path.display()
        ),
    )
    .await
    .unwrap();

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/check_sketches.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python check failed (is `pip install datasketches pyarrow` done? scripts/test.sh does it):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("\"groups\": 13") && stdout.contains("\"failures\": []"),
        "{stdout}"
    );
}
