//! The function table of SEMANTICS.md §5: names, accepted input types and result types.
//!
//! Binding a call checks its argument types and fixes two things the planner
//! needs: the *canonical* input type each argument is cast to before it
//! reaches a state (so a state handles one physical type per kind, e.g. every
//! integer as `Int64`), and the result type of the output column.

use std::fmt;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue, plan_err};

/// Which aggregation a feature computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateKind {
    /// Number of non-null values, or of rows without an argument.
    Count,
    /// Sum of values.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Sample variance (n - 1).
    Var,
    /// Sample standard deviation (n - 1).
    Std,
}

impl AggregateKind {
    /// The kind named `name` (lower case), if Tessera knows it.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "count" => Self::Count,
            "sum" => Self::Sum,
            "mean" | "avg" => Self::Mean,
            "min" => Self::Min,
            "max" => Self::Max,
            "var" | "variance" | "var_samp" => Self::Var,
            "std" | "stddev" | "stddev_samp" => Self::Std,
            _ => return None,
        })
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Mean => "mean",
            Self::Min => "min",
            Self::Max => "max",
            Self::Var => "var",
            Self::Std => "std",
        }
    }
}

impl fmt::Display for AggregateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The physical family a value is computed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueFamily {
    /// Every integer type, computed as `Int64`.
    Integer,
    /// Every float type, computed as `Float64`.
    Float,
    /// Timestamps, computed as `Timestamp(Microsecond, "UTC")`.
    Timestamp,
    /// Strings, computed as `Utf8`.
    String,
    /// Anything else (only `count` accepts it).
    Other,
}

impl ValueFamily {
    /// The family of `data_type`.
    pub fn of(data_type: &DataType) -> Self {
        match data_type {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Self::Integer,
            DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(_, _) => Self::Float,
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => Self::Timestamp,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Self::String,
            _ => Self::Other,
        }
    }

    /// The type values of this family are cast to before aggregation.
    pub fn canonical_type(self, original: &DataType) -> DataType {
        match self {
            Self::Integer => DataType::Int64,
            Self::Float => DataType::Float64,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Self::String => DataType::Utf8,
            Self::Other => original.clone(),
        }
    }
}

/// A function of the table bound to the types of its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BoundAggregate {
    /// The function.
    pub kind: AggregateKind,
    /// The family of the aggregated value (`None` for `count(*)`).
    pub family: Option<ValueFamily>,
    /// The types the arguments are cast to before they reach the state.
    pub input_types: Vec<DataType>,
    /// The type of the output column.
    pub result_type: DataType,
}

impl BoundAggregate {
    /// Binds `function` to arguments of `argument_types`, naming the feature in errors.
    pub fn bind(feature: &str, function: &str, argument_types: &[DataType]) -> Result<Self> {
        let Some(kind) = AggregateKind::from_name(function) else {
            return plan_err!(
                "feature {feature}: unknown aggregate function '{function}'; supported: count, sum, mean, min, max, var, std"
            );
        };
        let value_type = match (kind, argument_types) {
            (AggregateKind::Count, []) => {
                return Ok(Self {
                    kind,
                    family: None,
                    input_types: vec![],
                    result_type: DataType::Int64,
                });
            }
            (_, [value_type]) => value_type,
            (_, args) => {
                return plan_err!(
                    "feature {feature}: {kind} takes exactly one argument, got {}",
                    args.len()
                );
            }
        };
        let family = ValueFamily::of(value_type);
        let accepted = match kind {
            AggregateKind::Count => true,
            AggregateKind::Sum | AggregateKind::Mean | AggregateKind::Var | AggregateKind::Std => {
                matches!(family, ValueFamily::Integer | ValueFamily::Float)
            }
            AggregateKind::Min | AggregateKind::Max => family != ValueFamily::Other,
        };
        if !accepted {
            return plan_err!("feature {feature}: {kind} does not support input type {value_type}");
        }
        let canonical = family.canonical_type(value_type);
        let result_type = match (kind, family) {
            (AggregateKind::Count, _) => DataType::Int64,
            (AggregateKind::Sum, ValueFamily::Integer) => DataType::Int64,
            (AggregateKind::Min | AggregateKind::Max, _) => value_type.clone(),
            _ => DataType::Float64,
        };
        let input_type = match kind {
            // count only looks at validity, so it reads the value as it is.
            AggregateKind::Count => value_type.clone(),
            // Moments are computed in floating point whatever the input.
            AggregateKind::Mean | AggregateKind::Var | AggregateKind::Std => DataType::Float64,
            _ => canonical,
        };
        Ok(Self {
            kind,
            family: Some(family),
            input_types: vec![input_type],
            result_type,
        })
    }

    /// The type the state emits before the final cast to [`Self::result_type`].
    pub fn state_result_type(&self) -> DataType {
        match self.kind {
            AggregateKind::Min | AggregateKind::Max => self.input_types[0].clone(),
            _ => self.result_type.clone(),
        }
    }

    /// The result for a window without values (SEMANTICS.md §5, last column).
    pub fn empty_result(&self) -> Result<ScalarValue> {
        match (self.kind, self.family) {
            (AggregateKind::Count, _) => Ok(ScalarValue::Int64(Some(0))),
            (AggregateKind::Sum, Some(ValueFamily::Integer)) => Ok(ScalarValue::Int64(Some(0))),
            (AggregateKind::Sum, _) => Ok(ScalarValue::Float64(Some(0.0))),
            _ => ScalarValue::try_from(&self.result_type),
        }
    }
}
