//! Feature names, output column names and references to feature windows (SEMANTICS.md §6).

use std::fmt;

use datafusion::common::{Result, plan_err};
use tessera_time::WindowLength;

/// A feature's `namespace.name`, e.g. `user.total_transaction_amount`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeatureName {
    namespace: String,
    name: String,
}

impl FeatureName {
    /// A name from its two parts; both must be non-empty identifiers without dots.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Result<Self> {
        let (namespace, name) = (namespace.into(), name.into());
        for part in [&namespace, &name] {
            if part.is_empty() || part.contains('.') || part.contains('"') {
                return plan_err!(
                    "invalid feature name \"{namespace}.{name}\": expected namespace.name, e.g. user.total_transaction_amount"
                );
            }
        }
        Ok(Self { namespace, name })
    }

    /// Parses `namespace.name`.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().split_once('.') {
            Some((namespace, name)) => Self::new(namespace, name),
            None => plan_err!(
                "invalid feature name \"{text}\": expected namespace.name, e.g. user.total_transaction_amount"
            ),
        }
    }

    /// The namespace, e.g. `user`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name inside the namespace, e.g. `total_transaction_amount`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The output column of one window: `namespace.name__<seconds>__` or `namespace.name__all__`.
    pub fn column_name(&self, window: WindowLength) -> String {
        format!("{self}__{}__", window.column_suffix())
    }
}

impl fmt::Display for FeatureName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

/// What a training-set query asks for: a whole feature or one of its windows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeatureRequest {
    /// The requested feature.
    pub feature: FeatureName,
    /// One window, or `None` for all of the feature's windows.
    pub window: Option<WindowSelector>,
}

/// How a request names one window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WindowSelector {
    /// By duration text, as in `user.amount["7d"]`.
    Duration(WindowLength),
    /// By column suffix, as in `user.amount__604800__` (`all` for the unbounded window).
    Suffix(String),
}

impl WindowSelector {
    /// Whether `window` is the one this selector names.
    pub fn matches(&self, window: WindowLength) -> bool {
        match self {
            Self::Duration(wanted) => *wanted == window,
            Self::Suffix(suffix) => *suffix == window.column_suffix(),
        }
    }
}

impl fmt::Display for WindowSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Duration(window) => write!(f, "'{window}'"),
            Self::Suffix(suffix) => write!(f, "__{suffix}__"),
        }
    }
}

impl FeatureRequest {
    /// Parses `ns.name`, `ns.name["7d"]` or `ns.name__604800__`.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if let Some((feature, rest)) = text.split_once('[') {
            let Some(inner) = rest.strip_suffix(']') else {
                return plan_err!(
                    "invalid feature reference \"{text}\": expected e.g. user.amount[\"7d\"]"
                );
            };
            let duration = inner.trim().trim_matches(|c| c == '"' || c == '\'');
            let window = WindowLength::parse(duration).map_err(|e| {
                datafusion::common::DataFusionError::Plan(format!(
                    "in feature reference \"{text}\": {e}"
                ))
            })?;
            return Ok(Self {
                feature: FeatureName::parse(feature)?,
                window: Some(WindowSelector::Duration(window)),
            });
        }
        if let Some(body) = text.strip_suffix("__")
            && let Some((feature, suffix)) = body.rsplit_once("__")
            && (suffix == "all" || suffix.chars().all(|c| c.is_ascii_digit()))
            && !suffix.is_empty()
        {
            return Ok(Self {
                feature: FeatureName::parse(feature)?,
                window: Some(WindowSelector::Suffix(suffix.to_string())),
            });
        }
        Ok(Self {
            feature: FeatureName::parse(text)?,
            window: None,
        })
    }
}
