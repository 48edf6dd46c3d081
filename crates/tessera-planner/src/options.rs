//! Planner options under the `tessera.` prefix (SEMANTICS.md §4).
//!
//! [`TesseraOptions`] is a DataFusion [`ConfigExtension`], so `SET
//! tessera.use_tile_store = true` works in SQL, and the options travel with
//! the session config to anything that ships it. `ExtensionOptions` is written
//! by hand rather than with `extensions_options!` so that `entries()` returns
//! the full `tessera.`-prefixed keys: that is what makes `SHOW tessera.x` and
//! `information_schema.df_settings` show them under their real names.

use std::any::Any;

use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::common::{Result, plan_err};
use tessera_time::{Duration, WindowSemantics};

/// What to do when tiles do not cover a needed bucket range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CoverageFallback {
    /// Fail, naming the feature, series and missing ranges.
    #[default]
    Error,
    /// Compute the missing ranges from raw events.
    Raw,
}

/// Tessera's planner options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TesseraOptions {
    /// Bins input times to bucket boundaries and merges complete buckets (bucketed semantics).
    pub use_materialized_offline_query: bool,
    /// Rounds each window's lower bound down to a bucket boundary (aligned semantics).
    pub align_offline_chalk_window_with_materialization: bool,
    /// Reads complete buckets from Parquet tiles instead of raw events.
    pub use_tile_store: bool,
    /// For bucketed queries: read `[floor_b(t - d), t]` from raw events.
    pub continuous_buffer_duration: Option<Duration>,
    /// What to do about tile ranges no backfill covers.
    pub tile_coverage_fallback: CoverageFallback,
    /// Where tiles live: a folder, `file:///…` or `s3://bucket/prefix`.
    pub tile_store_url: String,
    /// With tiles and bucketed semantics, answers a stage whose windows all
    /// merge in constant time by looking its rows' buckets up in a table of
    /// the tiles they read (rows stay in spine order), instead of sorting
    /// spine and tiles by key for a sweep. Never a change of result.
    pub prefer_tile_lookup: bool,
}

/// The tile store of a first run: a folder beside the working directory.
pub const DEFAULT_TILE_STORE_URL: &str = "./tiles";

impl Default for TesseraOptions {
    fn default() -> Self {
        Self {
            use_materialized_offline_query: false,
            align_offline_chalk_window_with_materialization: false,
            use_tile_store: false,
            continuous_buffer_duration: None,
            tile_coverage_fallback: CoverageFallback::Error,
            tile_store_url: DEFAULT_TILE_STORE_URL.to_string(),
            prefer_tile_lookup: true,
        }
    }
}

/// Every option: key without prefix, and its description.
const OPTIONS: [(&str, &str); 7] = [
    (
        "use_materialized_offline_query",
        "Merge complete buckets that intersect each window (bucketed semantics) instead of rescanning raw events.",
    ),
    (
        "align_offline_chalk_window_with_materialization",
        "Round each window's lower bound down to a bucket boundary, like the online store (aligned semantics).",
    ),
    (
        "use_tile_store",
        "Read complete buckets from Parquet tiles written by backfills.",
    ),
    (
        "continuous_buffer_duration",
        "For bucketed queries, read events in [floor_b(t - d), t] from raw events; the result is the aligned window.",
    ),
    (
        "tile_coverage_fallback",
        "'error' (default) or 'raw': what to do about tile ranges no backfill covers.",
    ),
    (
        "tile_store_url",
        "Where tiles are stored: a folder (default ./tiles), file:///path or s3://bucket/prefix.",
    ),
    (
        "prefer_tile_lookup",
        "With tiles and bucketed semantics, answer stages of counts, sums, means, variances, min and max by looking each row's buckets up in a table of the tiles it reads (spine order kept) rather than by a sort-merge sweep.",
    ),
];

impl TesseraOptions {
    /// The window semantics these options select.
    pub fn semantics(&self) -> WindowSemantics {
        WindowSemantics::from_options(
            self.use_materialized_offline_query,
            self.align_offline_chalk_window_with_materialization,
        )
    }

    /// The set of events each row effectively sees: a continuous buffer turns
    /// bucketed into aligned (SEMANTICS.md §4).
    pub fn effective_semantics(&self) -> WindowSemantics {
        match (self.semantics(), self.continuous_buffer_duration) {
            (WindowSemantics::Bucketed, Some(_)) => WindowSemantics::Aligned,
            (semantics, _) => semantics,
        }
    }

    fn value_of(&self, key: &str) -> Option<String> {
        Some(match key {
            "use_materialized_offline_query" => self.use_materialized_offline_query.to_string(),
            "align_offline_chalk_window_with_materialization" => self
                .align_offline_chalk_window_with_materialization
                .to_string(),
            "use_tile_store" => self.use_tile_store.to_string(),
            "continuous_buffer_duration" => {
                return self.continuous_buffer_duration.map(|d| d.to_string());
            }
            "tile_coverage_fallback" => match self.tile_coverage_fallback {
                CoverageFallback::Error => "error".to_string(),
                CoverageFallback::Raw => "raw".to_string(),
            },
            "tile_store_url" => self.tile_store_url.clone(),
            "prefer_tile_lookup" => self.prefer_tile_lookup.to_string(),
            _ => return None,
        })
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "1" => Ok(true),
        "false" | "off" | "0" => Ok(false),
        _ => plan_err!("invalid value '{value}' for tessera.{key}: expected true or false"),
    }
}

impl ConfigExtension for TesseraOptions {
    const PREFIX: &'static str = "tessera";
}

impl ExtensionOptions for TesseraOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let key = key.strip_prefix("tessera.").unwrap_or(key);
        match key {
            "use_materialized_offline_query" => {
                self.use_materialized_offline_query = parse_bool(key, value)?
            }
            "align_offline_chalk_window_with_materialization" => {
                self.align_offline_chalk_window_with_materialization = parse_bool(key, value)?
            }
            "use_tile_store" => self.use_tile_store = parse_bool(key, value)?,
            "prefer_tile_lookup" => self.prefer_tile_lookup = parse_bool(key, value)?,
            "continuous_buffer_duration" => {
                let trimmed = value.trim();
                self.continuous_buffer_duration =
                    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("none") {
                        None
                    } else {
                        Some(Duration::parse(trimmed).map_err(|e| {
                            datafusion::common::DataFusionError::Plan(format!(
                                "tessera.continuous_buffer_duration: {e}"
                            ))
                        })?)
                    };
            }
            "tile_coverage_fallback" => {
                self.tile_coverage_fallback = match value.trim().to_ascii_lowercase().as_str() {
                    "error" => CoverageFallback::Error,
                    "raw" => CoverageFallback::Raw,
                    _ => {
                        return plan_err!(
                            "invalid value '{value}' for tessera.tile_coverage_fallback: expected 'error' or 'raw'"
                        );
                    }
                }
            }
            "tile_store_url" => {
                let url = value.trim();
                if url.is_empty() {
                    return plan_err!(
                        "invalid value '' for tessera.tile_store_url: expected a folder, file:///path or s3://bucket/prefix"
                    );
                }
                self.tile_store_url = url.to_string();
            }
            _ => {
                let known: Vec<String> = OPTIONS
                    .iter()
                    .map(|(k, _)| format!("tessera.{k}"))
                    .collect();
                return plan_err!(
                    "unknown option tessera.{key}; known options: {}",
                    known.join(", ")
                );
            }
        }
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        OPTIONS
            .iter()
            .map(|(key, description)| ConfigEntry {
                key: format!("{}.{key}", Self::PREFIX),
                value: self.value_of(key),
                description,
            })
            .collect()
    }
}
