//! The set of defined features of one session.
//!
//! A [`FeatureRegistry`] is shared by every clone of a session: DDL writes to
//! it and the `point_in_time` table function reads from it. It is stored as a
//! [`SessionConfig`](datafusion::prelude::SessionConfig) extension so that
//! planners reach it through the session alone.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use datafusion::common::{DataFusionError, Result, plan_err};

use crate::{FeatureDefinition, FeatureName};

/// Thread-safe map from feature name to definition.
#[derive(Debug, Default)]
pub struct FeatureRegistry {
    features: RwLock<BTreeMap<FeatureName, Arc<FeatureDefinition>>>,
}

impl FeatureRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a feature; fails if the name is taken, unless `or_replace`.
    pub fn register(&self, definition: FeatureDefinition, or_replace: bool) -> Result<()> {
        let mut features = self.features.write().map_err(|_| poisoned())?;
        if !or_replace && features.contains_key(&definition.name) {
            return plan_err!(
                "feature {} already exists; drop it first or use CREATE OR REPLACE WINDOWED FEATURE",
                definition.name
            );
        }
        features.insert(definition.name.clone(), Arc::new(definition));
        Ok(())
    }

    /// Removes a feature; fails if it does not exist, unless `if_exists`.
    pub fn drop_feature(&self, name: &FeatureName, if_exists: bool) -> Result<()> {
        let mut features = self.features.write().map_err(|_| poisoned())?;
        if features.remove(name).is_none() && !if_exists {
            return plan_err!("feature {name} does not exist");
        }
        Ok(())
    }

    /// The definition of `name`, with the list of known features in the error.
    pub fn get(&self, name: &FeatureName) -> Result<Arc<FeatureDefinition>> {
        let features = self.features.read().map_err(|_| poisoned())?;
        match features.get(name) {
            Some(definition) => Ok(Arc::clone(definition)),
            None => {
                let known: Vec<String> = features.keys().map(ToString::to_string).collect();
                let known = if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                };
                plan_err!("unknown feature {name}; defined features: {known}")
            }
        }
    }

    /// Every definition, ordered by name.
    pub fn list(&self) -> Result<Vec<Arc<FeatureDefinition>>> {
        let features = self.features.read().map_err(|_| poisoned())?;
        Ok(features.values().cloned().collect())
    }
}

/// A thread panicked while holding the registry lock.
fn poisoned() -> DataFusionError {
    DataFusionError::Internal(
        "the feature registry lock is poisoned by a panicked thread".to_string(),
    )
}
