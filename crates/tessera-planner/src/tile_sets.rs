//! Which tile set serves a feature window: the series (SEMANTICS.md §7) and
//! aggregation of a bound feature on one grid.

use datafusion::common::Result;
use tessera_tiles::{SeriesDescription, StateColumn, TileSetDescription};
use tessera_time::Grid;

use crate::binding::BoundFeature;

/// The tile set holding `feature`'s bucket states on `grid`.
pub fn tile_set_of(feature: &BoundFeature, grid: Grid) -> Result<TileSetDescription> {
    let definition = &feature.definition;
    let value = feature
        .aggregate
        .columns
        .iter()
        .filter_map(|(index, _)| definition.aggregate.arguments.get(*index).cloned())
        .collect();
    let series = SeriesDescription {
        source: definition.source.clone(),
        keys: definition.keys.clone(),
        timestamp: definition.timestamp.clone(),
        value,
        filter: definition.filter.clone(),
        bucket_micros: grid.bucket().micros(),
        origin_micros: grid.origin(),
    };
    let key_types = key_types(feature)?
        .iter()
        .map(ToString::to_string)
        .collect();
    let function = feature.aggregate.kind.name();
    let state_columns = feature
        .aggregate
        .implementation()?
        .state_fields(function)
        .iter()
        .map(|field| StateColumn {
            name: field.name().clone(),
            data_type: field.data_type().to_string(),
        })
        .collect();
    Ok(TileSetDescription {
        series,
        function: function.to_string(),
        aggregation: definition.aggregate.to_string(),
        key_types,
        state_columns,
        features: vec![definition.name.to_string()],
    })
}

/// The types of the feature's key columns in its source, as tiles store them.
pub fn key_types(feature: &BoundFeature) -> Result<Vec<datafusion::arrow::datatypes::DataType>> {
    feature
        .definition
        .keys
        .iter()
        .map(|key| {
            let (_, field) = feature
                .source_schema
                .qualified_field_with_unqualified_name(key)?;
            Ok(field.data_type().clone())
        })
        .collect()
}

/// Every distinct grid the feature's windows use.
pub fn grids_of(feature: &BoundFeature) -> Result<Vec<Grid>> {
    let mut grids = Vec::new();
    for window in &feature.definition.windows {
        let grid = feature.definition.grid(*window)?;
        if !grids.contains(&grid) {
            grids.push(grid);
        }
    }
    Ok(grids)
}
