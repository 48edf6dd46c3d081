//! The model of a windowed feature: what to aggregate, over which windows, on which grids.
//!
//! A [`FeatureDefinition`] is plain data: the source table, key and time
//! columns, the aggregate call and filter as SQL text, windows and the
//! materialization layout. Keeping expressions as SQL text makes definitions
//! trivially serializable (for tile commit logs and for shipping to other
//! processes) and lets the planner bind them against the source schema at
//! query time. Everything that can be checked without a catalog is checked by
//! [`FeatureDefinitionBuilder::build`].

use std::collections::BTreeMap;

use datafusion::common::{Result, plan_err};
use tessera_time::{Duration, Grid, Instant, WindowLength, format_instant};

use crate::FeatureName;

/// An aggregate call such as `sum(amount)` or `approx_top_k(category, 10)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AggregateCall {
    /// The function name, lower case, e.g. `sum`.
    pub function: String,
    /// The arguments as SQL expression text; empty for `count(*)`.
    pub arguments: Vec<String>,
}

impl std::fmt::Display for AggregateCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.arguments.is_empty() && self.function == "count" {
            return write!(f, "count(*)");
        }
        write!(f, "{}({})", self.function, self.arguments.join(", "))
    }
}

/// How a feature's windows map onto bucket grids (SEMANTICS.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Materialization {
    /// The bucket duration of every window not listed in `bucket_durations`.
    pub bucket_duration: Option<Duration>,
    /// Bucket durations for specific windows.
    pub bucket_durations: BTreeMap<Duration, Vec<WindowLength>>,
    /// The grid origin; the Unix epoch when unset.
    pub bucket_start: Instant,
    /// Origins for the grids of specific bucket durations (overriding `bucket_start`).
    pub bucket_starts: BTreeMap<Duration, Instant>,
}

impl Materialization {
    /// The grid of `window`, if the materialization gives it a bucket duration.
    pub fn grid_for(&self, window: WindowLength) -> Option<Grid> {
        let bucket = self
            .bucket_durations
            .iter()
            .find(|(_, windows)| windows.contains(&window))
            .map(|(bucket, _)| *bucket)
            .or(self.bucket_duration)?;
        let origin = self
            .bucket_starts
            .get(&bucket)
            .copied()
            .unwrap_or(self.bucket_start);
        Some(Grid::new(bucket, origin))
    }
}

/// One windowed feature, as declared by `CREATE WINDOWED FEATURE` or the builder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeatureDefinition {
    /// `namespace.name`.
    pub name: FeatureName,
    /// The registered table or view the events come from.
    pub source: String,
    /// The key columns of the source; the spine must have columns of the same names.
    pub keys: Vec<String>,
    /// The event-time column of the source.
    pub timestamp: String,
    /// The aggregation.
    pub aggregate: AggregateCall,
    /// The windows, in declaration order, without duplicates.
    pub windows: Vec<WindowLength>,
    /// An optional predicate on the source, as SQL text.
    pub filter: Option<String>,
    /// An optional literal replacing empty-window results, as SQL text.
    pub default: Option<String>,
    /// Bucket grids.
    pub materialization: Materialization,
}

impl FeatureDefinition {
    /// Starts a builder for the feature `name` (`namespace.name`).
    pub fn builder(name: &str) -> FeatureDefinitionBuilder {
        FeatureDefinitionBuilder::new(name)
    }

    /// The grid of one of this feature's windows (the builder checks every window has one).
    pub fn grid(&self, window: WindowLength) -> Result<Grid> {
        match self.materialization.grid_for(window) {
            Some(grid) => Ok(grid),
            None => plan_err!(
                "window '{window}' of feature {} has no bucket duration",
                self.name
            ),
        }
    }

    /// The `CREATE WINDOWED FEATURE` statement that defines this feature.
    pub fn to_sql(&self) -> String {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let keys = match self.keys.as_slice() {
            [key] => key.clone(),
            keys => format!("({})", keys.join(", ")),
        };
        let windows: Vec<String> = self.windows.iter().map(|w| quote(&w.to_string())).collect();
        let mut sql = format!(
            "CREATE WINDOWED FEATURE {} FROM {} KEY {keys} TIMESTAMP {} AGGREGATE {} WINDOWS ({})",
            self.name,
            self.source,
            self.timestamp,
            self.aggregate,
            windows.join(", ")
        );
        if let Some(filter) = &self.filter {
            sql.push_str(&format!(" WHERE {filter}"));
        }
        if let Some(default) = &self.default {
            sql.push_str(&format!(" DEFAULT {default}"));
        }
        let mut options = Vec::new();
        if let Some(bucket) = self.materialization.bucket_duration {
            options.push(format!("bucket_duration = {}", quote(&bucket.to_string())));
        }
        if !self.materialization.bucket_durations.is_empty() {
            options.push(format!(
                "bucket_durations = {}",
                quote(&format_bucket_durations(
                    &self.materialization.bucket_durations
                ))
            ));
        }
        if self.materialization.bucket_start != 0 {
            options.push(format!(
                "bucket_start = {}",
                quote(&format_instant(self.materialization.bucket_start))
            ));
        }
        if !self.materialization.bucket_starts.is_empty() {
            let starts: Vec<String> = self
                .materialization
                .bucket_starts
                .iter()
                .map(|(bucket, origin)| format!("{bucket}: {}", format_instant(*origin)))
                .collect();
            options.push(format!("bucket_starts = {}", quote(&starts.join("; "))));
        }
        if !options.is_empty() {
            sql.push_str(&format!(" WITH ({})", options.join(", ")));
        }
        sql
    }
}

/// Writes a `bucket_durations` map as `1d: 7d, 30d; 5d: 60d`.
pub fn format_bucket_durations(map: &BTreeMap<Duration, Vec<WindowLength>>) -> String {
    map.iter()
        .map(|(bucket, windows)| {
            let windows: Vec<String> = windows.iter().map(|w| w.to_string()).collect();
            format!("{bucket}: {}", windows.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Splits a `bucket_durations` map written as `1d: 7d, 30d; 5d: 60d, 90d`
/// into `(bucket, windows)` text pairs for [`FeatureDefinitionBuilder::bucket_durations`].
pub fn split_bucket_durations(text: &str) -> Result<Vec<(String, Vec<String>)>> {
    text.split(';')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once(':') {
            Some((bucket, windows)) => Ok((
                bucket.trim().to_string(),
                windows.split(',').map(|w| w.trim().to_string()).collect(),
            )),
            None => plan_err!(
                "invalid bucket_durations entry \"{entry}\": expected <bucket>: <window>, <window>, e.g. '1d: 7d, 30d; 5d: 60d'"
            ),
        })
        .collect()
}

fn plan_error(context: &str, error: impl std::fmt::Display) -> datafusion::common::DataFusionError {
    datafusion::common::DataFusionError::Plan(format!("{context}: {error}"))
}

/// Builds a [`FeatureDefinition`] from Rust, with the checks the DDL applies.
///
/// ```
/// use tessera_definitions::FeatureDefinition;
///
/// let feature = FeatureDefinition::builder("user.total_transaction_amount")
///     .source("transactions")
///     .key("user_id")
///     .timestamp("ts")
///     .aggregate("sum", ["amount"])
///     .windows(["1d", "7d", "30d"])
///     .bucket_duration("1d")
///     .build()
///     .unwrap();
/// assert_eq!(feature.windows.len(), 3);
/// ```
#[derive(Debug, Clone)]
pub struct FeatureDefinitionBuilder {
    name: String,
    source: Option<String>,
    keys: Vec<String>,
    timestamp: Option<String>,
    aggregate: Option<AggregateCall>,
    windows: Vec<String>,
    filter: Option<String>,
    default: Option<String>,
    bucket_duration: Option<String>,
    bucket_durations: Vec<(String, Vec<String>)>,
    bucket_start: Option<String>,
    bucket_starts: Vec<(String, String)>,
}

impl FeatureDefinitionBuilder {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            source: None,
            keys: Vec::new(),
            timestamp: None,
            aggregate: None,
            windows: Vec::new(),
            filter: None,
            default: None,
            bucket_duration: None,
            bucket_durations: Vec::new(),
            bucket_start: None,
            bucket_starts: Vec::new(),
        }
    }

    /// The source table or view.
    pub fn source(mut self, table: &str) -> Self {
        self.source = Some(table.to_string());
        self
    }

    /// Adds a key column (call again for composite keys).
    pub fn key(mut self, column: &str) -> Self {
        self.keys.push(column.to_string());
        self
    }

    /// The event-time column.
    pub fn timestamp(mut self, column: &str) -> Self {
        self.timestamp = Some(column.to_string());
        self
    }

    /// The aggregate function and its arguments as SQL text (no arguments for `count(*)`).
    pub fn aggregate<I, S>(mut self, function: &str, arguments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.aggregate = Some(AggregateCall {
            function: function.to_ascii_lowercase(),
            arguments: arguments.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// The windows, e.g. `["1d", "7d", "all"]`.
    pub fn windows<I, S>(mut self, windows: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.windows.extend(windows.into_iter().map(Into::into));
        self
    }

    /// A predicate on the source, as SQL text.
    pub fn filter(mut self, predicate: &str) -> Self {
        self.filter = Some(predicate.to_string());
        self
    }

    /// A literal replacing empty-window results, as SQL text (e.g. `0` or `[0.0, 0.0]`).
    pub fn default_value(mut self, literal: &str) -> Self {
        self.default = Some(literal.to_string());
        self
    }

    /// The bucket duration of every window not given one by [`Self::bucket_durations`].
    pub fn bucket_duration(mut self, duration: &str) -> Self {
        self.bucket_duration = Some(duration.to_string());
        self
    }

    /// A bucket duration for specific windows.
    pub fn bucket_durations<I, S>(mut self, bucket: &str, windows: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.bucket_durations.push((
            bucket.to_string(),
            windows.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// The grid origin as an ISO 8601 instant.
    pub fn bucket_start(mut self, instant: &str) -> Self {
        self.bucket_start = Some(instant.to_string());
        self
    }

    /// The origin of the grid of one bucket duration, e.g. `("1d", "2025-01-01T06:00:00Z")`.
    pub fn bucket_start_for(mut self, bucket: &str, instant: &str) -> Self {
        self.bucket_starts
            .push((bucket.to_string(), instant.to_string()));
        self
    }

    /// Checks everything that needs no catalog and returns the definition.
    pub fn build(self) -> Result<FeatureDefinition> {
        let name = FeatureName::parse(&self.name)?;
        let Some(source) = self.source else {
            return plan_err!("feature {name} has no source: add FROM <table>");
        };
        if self.keys.is_empty() {
            return plan_err!("feature {name} has no key: add KEY <column> or KEY (<column>, ...)");
        }
        let Some(timestamp) = self.timestamp else {
            return plan_err!("feature {name} has no timestamp column: add TIMESTAMP <column>");
        };
        let Some(aggregate) = self.aggregate else {
            return plan_err!("feature {name} has no aggregation: add e.g. AGGREGATE sum(amount)");
        };
        let windows = parse_windows(&name, &self.windows)?;
        let materialization = Materialization {
            bucket_duration: self
                .bucket_duration
                .as_deref()
                .map(|d| {
                    Duration::parse(d)
                        .map_err(|e| plan_error(&format!("feature {name}: bucket_duration"), e))
                })
                .transpose()?,
            bucket_durations: parse_bucket_duration_pairs(&name, &self.bucket_durations)?,
            bucket_start: self
                .bucket_start
                .as_deref()
                .map(|s| {
                    tessera_time::parse_instant(s)
                        .map_err(|e| plan_error(&format!("feature {name}: bucket_start"), e))
                })
                .transpose()?
                .unwrap_or(0),
            bucket_starts: parse_bucket_starts(&name, &self.bucket_starts)?,
        };
        for window in &windows {
            if materialization.grid_for(*window).is_none() {
                return plan_err!(
                    "window '{window}' of feature {name} has no bucket duration: set bucket_duration, or list the window under bucket_durations"
                );
            }
        }
        let used: Vec<Duration> = windows
            .iter()
            .filter_map(|w| materialization.grid_for(*w))
            .map(|g| g.bucket())
            .collect();
        if let Some(unused) = materialization
            .bucket_starts
            .keys()
            .find(|b| !used.contains(b))
        {
            return plan_err!(
                "bucket_starts of feature {name} sets an origin for '{unused}' buckets, which no window uses"
            );
        }
        for (bucket, listed) in &materialization.bucket_durations {
            if let Some(unknown) = listed.iter().find(|w| !windows.contains(w)) {
                return plan_err!(
                    "bucket_durations of feature {name} maps '{bucket}' to window '{unknown}', which is not one of its WINDOWS"
                );
            }
        }
        Ok(FeatureDefinition {
            name,
            source,
            keys: self.keys,
            timestamp,
            aggregate,
            windows,
            filter: self.filter,
            default: self.default,
            materialization,
        })
    }
}

fn parse_windows(name: &FeatureName, texts: &[String]) -> Result<Vec<WindowLength>> {
    if texts.is_empty() {
        return plan_err!("feature {name} has no windows: add e.g. WINDOWS ('1d', '7d')");
    }
    let mut windows: Vec<WindowLength> = Vec::with_capacity(texts.len());
    for text in texts {
        let window =
            WindowLength::parse(text).map_err(|e| plan_error(&format!("feature {name}"), e))?;
        if let Some(same) = windows
            .iter()
            .find(|w| w.column_suffix() == window.column_suffix())
        {
            return plan_err!(
                "feature {name} lists window '{text}' twice (it has the same output column as '{same}')"
            );
        }
        windows.push(window);
    }
    Ok(windows)
}

fn parse_bucket_starts(
    name: &FeatureName,
    pairs: &[(String, String)],
) -> Result<BTreeMap<Duration, Instant>> {
    let context = format!("feature {name}: bucket_starts");
    pairs
        .iter()
        .map(|(bucket, instant)| {
            let bucket = Duration::parse(bucket).map_err(|e| plan_error(&context, e))?;
            let origin =
                tessera_time::parse_instant(instant).map_err(|e| plan_error(&context, e))?;
            Ok((bucket, origin))
        })
        .collect()
}

/// Splits a `bucket_starts` map written as `1d: 2025-01-01T06:00:00Z; 1h: 2025-01-01T00:30:00Z`.
pub fn split_bucket_starts(text: &str) -> Result<Vec<(String, String)>> {
    text.split(';')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once(": ") {
            Some((bucket, instant)) => Ok((bucket.trim().to_string(), instant.trim().to_string())),
            None => plan_err!(
                "invalid bucket_starts entry \"{entry}\": expected <bucket>: <instant>, e.g. '1d: 2025-01-01T06:00:00Z'"
            ),
        })
        .collect()
}

fn parse_bucket_duration_pairs(
    name: &FeatureName,
    pairs: &[(String, Vec<String>)],
) -> Result<BTreeMap<Duration, Vec<WindowLength>>> {
    let context = format!("feature {name}: bucket_durations");
    let mut map = BTreeMap::new();
    for (bucket, windows) in pairs {
        let bucket = Duration::parse(bucket).map_err(|e| plan_error(&context, e))?;
        let windows = windows
            .iter()
            .map(|w| WindowLength::parse(w).map_err(|e| plan_error(&context, e)))
            .collect::<Result<Vec<_>>>()?;
        map.entry(bucket).or_insert_with(Vec::new).extend(windows);
    }
    Ok(map)
}
