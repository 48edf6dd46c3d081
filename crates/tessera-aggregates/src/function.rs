//! The function table of SEMANTICS.md §5: names, arguments, result types.
//!
//! Binding a call checks its arguments and fixes what the planner and the
//! states need: which arguments are columns and the *canonical* type each is
//! cast to (so a state handles one physical type per kind, e.g. every integer
//! as `Int64`), the validated constant parameters (`n`, `k`, `quantile`,
//! `lg_k`), and the result type. [`BoundAggregate::implementation`] is the one
//! place that maps a bound call to its state factory.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef, TimeUnit};
use datafusion::common::{Result, ScalarValue, plan_err};

use crate::functions::approx_count_distinct::DEFAULT_LG_K;
use crate::functions::{
    ByNFactory, CountFactory, CpcFactory, ExtremeFactory, MeanFactory, PercentileFactory,
    SumFactory, TopKFactory, VarianceFactory, VectorFactory,
};
use datafusion::arrow::array::ArrayRef;
use datafusion::logical_expr::{Accumulator, GroupsAccumulator};

use crate::accumulator::{Input, Output, StateAccumulator};
use crate::bucket_table::{BucketTable, DecodedBuckets, PartRows};
use crate::groups_accumulator::StateGroupsAccumulator;
use crate::sliding::SlidingAggregate;
use crate::state::{PartialState, StateFactory, run_states};

/// Which aggregation a feature computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateKind {
    /// Number of non-null values, or of rows without an argument.
    Count,
    /// Sum of values (element-wise for vectors).
    Sum,
    /// Arithmetic mean (element-wise for vectors).
    Mean,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Sample variance (n - 1).
    Var,
    /// Sample standard deviation (n - 1).
    Std,
    /// The `n` values with the smallest `by`.
    MinByN,
    /// The `n` values with the largest `by`.
    MaxByN,
    /// Distinct count (CPC sketch).
    ApproxCountDistinct,
    /// Most frequent values (frequent-items sketch).
    ApproxTopK,
    /// A quantile (t-digest).
    ApproxPercentile,
}

/// Every function, by canonical name.
pub const FUNCTIONS: [(&str, AggregateKind); 12] = [
    ("count", AggregateKind::Count),
    ("sum", AggregateKind::Sum),
    ("mean", AggregateKind::Mean),
    ("min", AggregateKind::Min),
    ("max", AggregateKind::Max),
    ("var", AggregateKind::Var),
    ("std", AggregateKind::Std),
    ("min_by_n", AggregateKind::MinByN),
    ("max_by_n", AggregateKind::MaxByN),
    ("approx_count_distinct", AggregateKind::ApproxCountDistinct),
    ("approx_top_k", AggregateKind::ApproxTopK),
    ("approx_percentile", AggregateKind::ApproxPercentile),
];

impl AggregateKind {
    /// The kind named `name` (lower case, canonical names and common aliases).
    pub fn from_name(name: &str) -> Option<Self> {
        let canonical = match name {
            "avg" => "mean",
            "variance" | "var_samp" => "var",
            "stddev" | "stddev_samp" => "std",
            other => other,
        };
        FUNCTIONS
            .iter()
            .find(|(n, _)| *n == canonical)
            .map(|(_, kind)| *kind)
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        FUNCTIONS
            .iter()
            .find(|(_, kind)| *kind == self)
            .map_or("?", |(name, _)| name)
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
    /// Timestamps and dates, computed as `Timestamp(Microsecond, "UTC")`.
    Timestamp,
    /// Strings, computed as `Utf8`.
    String,
    /// Fixed-size lists of numbers of this length, computed as `FixedSizeList<Float64, d>`.
    Vector(i32),
    /// Anything else.
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
            DataType::FixedSizeList(item, dimension)
                if matches!(Self::of(item.data_type()), Self::Integer | Self::Float) =>
            {
                Self::Vector(*dimension)
            }
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
            // Single-precision vectors stay single precision: half the memory of a cast.
            Self::Vector(dimension) => match original {
                DataType::FixedSizeList(item, _)
                    if matches!(item.data_type(), DataType::Float32 | DataType::Float16) =>
                {
                    DataType::FixedSizeList(
                        Arc::new(datafusion::arrow::datatypes::Field::new(
                            "item",
                            DataType::Float32,
                            true,
                        )),
                        dimension,
                    )
                }
                _ => VectorFactory::vector_type(dimension),
            },
            Self::Other => original.clone(),
        }
    }

    fn is_numeric(self) -> bool {
        matches!(self, Self::Integer | Self::Float)
    }

    fn is_orderable(self) -> bool {
        matches!(
            self,
            Self::Integer | Self::Float | Self::Timestamp | Self::String
        )
    }
}

/// One argument of a call, as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Argument {
    /// Its type.
    pub data_type: DataType,
    /// Its value, when it is a constant.
    pub constant: Option<ScalarValue>,
}

impl Argument {
    /// A column argument of `data_type`.
    pub fn column(data_type: DataType) -> Self {
        Self {
            data_type,
            constant: None,
        }
    }

    /// A constant argument.
    pub fn constant(value: ScalarValue) -> Self {
        Self {
            data_type: value.data_type(),
            constant: Some(value),
        }
    }
}

/// The validated constant parameters of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Parameters {
    /// `n` of `min_by_n` / `max_by_n`, `k` of `approx_top_k`.
    pub count: usize,
    /// `approx_top_k` weighs values by its `by` column.
    pub weighted: bool,
    /// `approx_top_k` returns `{value, weight}` entries.
    pub return_total_weight: bool,
    /// `approx_percentile`'s quantile, as `f64` bits (so the struct stays `Eq` and `Hash`).
    pub quantile_bits: u64,
    /// `approx_count_distinct`'s `lg_k`.
    pub lg_k: u8,
}

impl Parameters {
    /// The quantile of `approx_percentile`.
    pub fn quantile(&self) -> f64 {
        f64::from_bits(self.quantile_bits)
    }
}

/// A function of the table bound to its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BoundAggregate {
    /// The function.
    pub kind: AggregateKind,
    /// The family of the aggregated value (`None` for `count(*)`).
    pub family: Option<ValueFamily>,
    /// The call's column arguments: position in the call and the type to cast to.
    pub columns: Vec<(usize, DataType)>,
    /// Whether the state also reads the event time (Int64 microseconds) as a last column.
    pub needs_event_time: bool,
    /// Validated constants.
    pub parameters: Parameters,
    /// The type of the output column.
    pub result_type: DataType,
}

/// A bound function, type-erased: makes kernels and accumulators, describes and reads its state.
pub trait AggregateImplementation: Send + Sync + fmt::Debug {
    /// A sliding kernel over this function's states.
    fn sliding(&self) -> Box<dyn SlidingAggregate>;
    /// A DataFusion accumulator reading `input` and producing `output`.
    fn accumulator(&self, name: &str, input: Input, output: Output) -> Box<dyn Accumulator>;
    /// The same for many groups at once.
    fn groups_accumulator(
        &self,
        name: &str,
        input: Input,
        output: Output,
    ) -> Box<dyn GroupsAccumulator>;
    /// The state columns, named after `name`.
    fn state_fields(&self, name: &str) -> Vec<FieldRef>;
    /// The results of `rows` serialized states.
    fn evaluate_states(&self, columns: &[ArrayRef], rows: usize) -> Result<ArrayRef>;
    /// The serialized states of runs of argument rows, `bounds[i]..bounds[i + 1]`
    /// (see [`run_states`]).
    fn run_states(&self, arguments: &[ArrayRef], bounds: &[usize]) -> Result<Vec<ArrayRef>>;
    /// The rows of `runs` of serialized states `parts`, in that order,
    /// decoded into a table that answers windows over ranges of its rows.
    fn bucket_table(
        &self,
        parts: &[&[ArrayRef]],
        runs: &[PartRows],
    ) -> Result<Box<dyn BucketTable>>;
}

impl<F: StateFactory> AggregateImplementation for F {
    fn sliding(&self) -> Box<dyn SlidingAggregate> {
        self.sliding_kernel()
    }

    fn accumulator(&self, name: &str, input: Input, output: Output) -> Box<dyn Accumulator> {
        Box::new(StateAccumulator::new(self.clone(), name, input, output))
    }

    fn groups_accumulator(
        &self,
        name: &str,
        input: Input,
        output: Output,
    ) -> Box<dyn GroupsAccumulator> {
        Box::new(StateGroupsAccumulator::new(
            self.clone(),
            name,
            input,
            output,
        ))
    }

    fn state_fields(&self, name: &str) -> Vec<FieldRef> {
        StateFactory::state_fields(self, name)
    }

    fn run_states(&self, arguments: &[ArrayRef], bounds: &[usize]) -> Result<Vec<ArrayRef>> {
        run_states(self, arguments, bounds)
    }

    fn bucket_table(
        &self,
        parts: &[&[ArrayRef]],
        runs: &[PartRows],
    ) -> Result<Box<dyn BucketTable>> {
        Ok(Box::new(DecodedBuckets::decode(self.clone(), parts, runs)?))
    }

    fn evaluate_states(&self, columns: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        let result_type = self.result_type();
        let typed_null = ScalarValue::try_from(&result_type)?;
        let results = (0..rows)
            .map(|row| {
                let value = decode_state(self, columns, row)?.evaluate()?;
                match value {
                    ScalarValue::Null => Ok(typed_null.clone()),
                    value if value.data_type() != result_type => value.cast_to(&result_type),
                    value => Ok(value),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        if results.is_empty() {
            return Ok(datafusion::arrow::array::new_empty_array(&result_type));
        }
        ScalarValue::iter_to_array(results)
    }
}

/// Decodes row `row` of serialized states, naming the state columns in errors.
pub(crate) fn decode_state<F: StateFactory>(
    factory: &F,
    columns: &[ArrayRef],
    row: usize,
) -> Result<F::State> {
    factory.decode(columns, row).map_err(|e| {
        let names: Vec<String> = factory
            .state_fields("state")
            .iter()
            .map(|f| f.name().clone())
            .collect();
        datafusion::common::DataFusionError::Execution(format!(
            "in state column(s) {} row {row}: {}",
            names.join(", "),
            e.strip_backtrace()
        ))
    })
}

/// Decodes rows `rows` of serialized states into `out`; on a bad state,
/// decodes the rows again one at a time to name the row in the error.
pub(crate) fn decode_states<F: StateFactory>(
    factory: &F,
    columns: &[ArrayRef],
    rows: std::ops::Range<usize>,
    out: &mut Vec<F::State>,
) -> Result<()> {
    let decoded = out.len();
    factory
        .decode_rows(columns, rows.clone(), out)
        .or_else(|error| {
            out.truncate(decoded);
            for row in rows {
                decode_state(factory, columns, row)?;
            }
            Err(error)
        })
}

struct Binder<'a> {
    feature: &'a str,
    kind: AggregateKind,
    arguments: &'a [Argument],
}

impl Binder<'_> {
    fn column(&self, index: usize) -> Result<(DataType, ValueFamily)> {
        match self.arguments.get(index) {
            Some(Argument {
                constant: None,
                data_type,
            }) => Ok((data_type.clone(), ValueFamily::of(data_type))),
            Some(Argument {
                constant: Some(value),
                ..
            }) => {
                plan_err!(
                    "feature {}: {} argument {} must be a column expression, got the constant {value}",
                    self.feature,
                    self.kind,
                    index + 1
                )
            }
            None => plan_err!(
                "feature {}: {} needs an argument {}",
                self.feature,
                self.kind,
                index + 1
            ),
        }
    }

    fn constant(&self, index: usize, what: &str) -> Result<ScalarValue> {
        match self.arguments.get(index) {
            Some(Argument {
                constant: Some(value),
                ..
            }) if !value.is_null() => Ok(value.clone()),
            Some(_) => plan_err!(
                "feature {}: {} argument {} ({what}) must be a constant",
                self.feature,
                self.kind,
                index + 1
            ),
            None => plan_err!(
                "feature {}: {} needs argument {} ({what})",
                self.feature,
                self.kind,
                index + 1
            ),
        }
    }

    fn positive_integer(&self, index: usize, what: &str, max: usize) -> Result<usize> {
        let value = self.constant(index, what)?;
        match value.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(v)))
                if v >= 1 && v as usize <= max && !matches!(value, ScalarValue::Float64(_)) =>
            {
                Ok(v as usize)
            }
            _ => plan_err!(
                "feature {}: {} {what} must be an integer between 1 and {max}, got {value}",
                self.feature,
                self.kind
            ),
        }
    }

    fn arity(&self, allowed: std::ops::RangeInclusive<usize>) -> Result<()> {
        if allowed.contains(&self.arguments.len()) {
            return Ok(());
        }
        let expected = if allowed.start() == allowed.end() {
            allowed.start().to_string()
        } else {
            format!("{} to {}", allowed.start(), allowed.end())
        };
        plan_err!(
            "feature {}: {} takes {expected} arguments, got {}",
            self.feature,
            self.kind,
            self.arguments.len()
        )
    }

    fn unsupported<T>(&self, data_type: &DataType) -> Result<T> {
        plan_err!(
            "feature {}: {} does not support input type {data_type}",
            self.feature,
            self.kind
        )
    }
}

impl BoundAggregate {
    /// Binds `function` to `arguments`, naming the feature in errors.
    pub fn bind(feature: &str, function: &str, arguments: &[Argument]) -> Result<Self> {
        let Some(kind) = AggregateKind::from_name(function) else {
            let names: Vec<&str> = FUNCTIONS.iter().map(|(name, _)| *name).collect();
            return plan_err!(
                "feature {feature}: unknown aggregate function '{function}'; supported: {}",
                names.join(", ")
            );
        };
        let binder = Binder {
            feature,
            kind,
            arguments,
        };
        match kind {
            AggregateKind::Count => Self::bind_count(&binder),
            AggregateKind::Sum | AggregateKind::Mean => Self::bind_sum_or_mean(&binder),
            AggregateKind::Min | AggregateKind::Max => Self::bind_extreme(&binder),
            AggregateKind::Var | AggregateKind::Std => Self::bind_moments(&binder),
            AggregateKind::MinByN | AggregateKind::MaxByN => Self::bind_by_n(&binder),
            AggregateKind::ApproxCountDistinct => Self::bind_distinct(&binder),
            AggregateKind::ApproxTopK => Self::bind_top_k(&binder),
            AggregateKind::ApproxPercentile => Self::bind_percentile(&binder),
        }
    }

    fn simple(
        kind: AggregateKind,
        family: Option<ValueFamily>,
        columns: Vec<(usize, DataType)>,
        result_type: DataType,
    ) -> Self {
        Self {
            kind,
            family,
            columns,
            needs_event_time: false,
            parameters: Parameters::default(),
            result_type,
        }
    }

    fn bind_count(b: &Binder) -> Result<Self> {
        b.arity(0..=1)?;
        if b.arguments.is_empty() {
            return Ok(Self::simple(b.kind, None, vec![], DataType::Int64));
        }
        let (data_type, family) = b.column(0)?;
        Ok(Self::simple(
            b.kind,
            Some(family),
            vec![(0, data_type)],
            DataType::Int64,
        ))
    }

    fn bind_sum_or_mean(b: &Binder) -> Result<Self> {
        b.arity(1..=1)?;
        let (data_type, family) = b.column(0)?;
        let result_type = match (b.kind, family) {
            (_, ValueFamily::Vector(dimension))
                if (1..=crate::functions::vector::MAX_DIMENSION).contains(&dimension) =>
            {
                VectorFactory::vector_type(dimension)
            }
            (AggregateKind::Sum, ValueFamily::Integer) => DataType::Int64,
            (_, family) if family.is_numeric() => DataType::Float64,
            _ => return b.unsupported(&data_type),
        };
        let input = if b.kind == AggregateKind::Mean && family == ValueFamily::Integer {
            DataType::Float64
        } else {
            family.canonical_type(&data_type)
        };
        Ok(Self::simple(
            b.kind,
            Some(family),
            vec![(0, input)],
            result_type,
        ))
    }

    fn bind_extreme(b: &Binder) -> Result<Self> {
        b.arity(1..=1)?;
        let (data_type, family) = b.column(0)?;
        if !family.is_orderable() {
            return b.unsupported(&data_type);
        }
        Ok(Self::simple(
            b.kind,
            Some(family),
            vec![(0, family.canonical_type(&data_type))],
            data_type,
        ))
    }

    fn bind_moments(b: &Binder) -> Result<Self> {
        b.arity(1..=1)?;
        let (data_type, family) = b.column(0)?;
        if !family.is_numeric() {
            return b.unsupported(&data_type);
        }
        Ok(Self::simple(
            b.kind,
            Some(family),
            vec![(0, DataType::Float64)],
            DataType::Float64,
        ))
    }

    fn bind_by_n(b: &Binder) -> Result<Self> {
        b.arity(3..=3)?;
        let (value_type, value_family) = b.column(0)?;
        let (by_type, by_family) = b.column(1)?;
        if !by_family.is_orderable() {
            return plan_err!(
                "feature {}: {} cannot order by type {by_type}",
                b.feature,
                b.kind
            );
        }
        let n = b.positive_integer(2, "n", crate::functions::by_n::MAX_N)?;
        let value_type = value_family.canonical_type(&value_type);
        Ok(Self {
            kind: b.kind,
            family: Some(value_family),
            columns: vec![
                (0, value_type.clone()),
                (1, by_family.canonical_type(&by_type)),
            ],
            needs_event_time: true,
            parameters: Parameters {
                count: n,
                ..Parameters::default()
            },
            result_type: DataType::List(Arc::new(datafusion::arrow::datatypes::Field::new(
                "item", value_type, true,
            ))),
        })
    }

    fn bind_distinct(b: &Binder) -> Result<Self> {
        b.arity(1..=2)?;
        let (data_type, family) = b.column(0)?;
        if !matches!(family, ValueFamily::Integer | ValueFamily::String) {
            return b.unsupported(&data_type);
        }
        let lg_k = if b.arguments.len() == 2 {
            b.positive_integer(1, "lg_k", 26)? as u8
        } else {
            DEFAULT_LG_K
        };
        if !(4..=26).contains(&lg_k) {
            return plan_err!(
                "feature {}: approx_count_distinct lg_k must be between 4 and 26, got {lg_k}",
                b.feature
            );
        }
        Ok(Self {
            parameters: Parameters {
                lg_k,
                ..Parameters::default()
            },
            ..Self::simple(
                b.kind,
                Some(family),
                vec![(0, family.canonical_type(&data_type))],
                DataType::Int64,
            )
        })
    }

    fn bind_top_k(b: &Binder) -> Result<Self> {
        b.arity(2..=4)?;
        let (data_type, family) = b.column(0)?;
        if !matches!(family, ValueFamily::Integer | ValueFamily::String) {
            return b.unsupported(&data_type);
        }
        let k = b.positive_integer(1, "k", crate::functions::approx_top_k::MAX_K)?;
        let mut columns = vec![(0, family.canonical_type(&data_type))];
        let mut parameters = Parameters {
            count: k,
            ..Parameters::default()
        };
        for index in 2..b.arguments.len() {
            match &b.arguments[index].constant {
                Some(ScalarValue::Boolean(Some(flag))) => parameters.return_total_weight = *flag,
                Some(other) => {
                    return plan_err!(
                        "feature {}: approx_top_k return_total_weight must be true or false, got {other}",
                        b.feature
                    );
                }
                None if index == 2 => {
                    let (by_type, by_family) = b.column(2)?;
                    if by_family != ValueFamily::Integer {
                        return plan_err!(
                            "feature {}: approx_top_k weights (by) must be integers, got {by_type}",
                            b.feature
                        );
                    }
                    parameters.weighted = true;
                    columns.push((2, DataType::Int64));
                }
                None => {
                    return plan_err!(
                        "feature {}: approx_top_k argument 4 must be a constant true or false",
                        b.feature
                    );
                }
            }
        }
        let factory_type = match family {
            ValueFamily::Integer => {
                TopKFactory::<i64>::try_new(k, parameters.weighted, parameters.return_total_weight)?
                    .result_type()
            }
            _ => TopKFactory::<String>::try_new(
                k,
                parameters.weighted,
                parameters.return_total_weight,
            )?
            .result_type(),
        };
        Ok(Self {
            parameters,
            ..Self::simple(b.kind, Some(family), columns, factory_type)
        })
    }

    fn bind_percentile(b: &Binder) -> Result<Self> {
        b.arity(2..=2)?;
        let (data_type, family) = b.column(0)?;
        if !family.is_numeric() {
            return b.unsupported(&data_type);
        }
        let quantile = match b.constant(1, "quantile")?.cast_to(&DataType::Float64) {
            Ok(ScalarValue::Float64(Some(q))) if (0.0..=1.0).contains(&q) => q,
            _ => {
                return plan_err!(
                    "feature {}: approx_percentile quantile must be a number in [0, 1], got {}",
                    b.feature,
                    b.arguments[1].constant.clone().unwrap_or(ScalarValue::Null)
                );
            }
        };
        Ok(Self {
            parameters: Parameters {
                quantile_bits: quantile.to_bits(),
                ..Parameters::default()
            },
            ..Self::simple(
                b.kind,
                Some(family),
                vec![(0, DataType::Float64)],
                DataType::Float64,
            )
        })
    }

    /// Whether merging two of its states takes a few arithmetic operations
    /// whatever they hold: counts, and sums, means, moments, minima and
    /// maxima of numbers and timestamps — not vectors, strings or sketches.
    /// Such windows are cheap to merge afresh from their buckets at every row.
    pub fn merges_in_constant_time(&self) -> bool {
        use AggregateKind as K;
        let scalar = matches!(
            self.family,
            None | Some(ValueFamily::Integer | ValueFamily::Float | ValueFamily::Timestamp)
        );
        matches!(
            self.kind,
            K::Count | K::Sum | K::Mean | K::Min | K::Max | K::Var | K::Std
        ) && (self.kind == K::Count || scalar)
    }

    /// The state factory of this call, type-erased.
    pub fn implementation(&self) -> Result<Arc<dyn AggregateImplementation>> {
        use AggregateKind as K;
        use ValueFamily as V;
        let column_type = |i: usize| {
            self.columns
                .get(i)
                .map(|(_, t)| t.clone())
                .unwrap_or(DataType::Null)
        };
        let p = self.parameters;
        Ok(match (self.kind, self.family) {
            (K::Count, _) => Arc::new(CountFactory),
            (K::Sum | K::Mean, Some(V::Vector(dimension))) => Arc::new(VectorFactory {
                dimension,
                mean: self.kind == K::Mean,
            }),
            (K::Sum, Some(V::Integer)) => Arc::new(SumFactory::<i64>::default()),
            (K::Sum, _) => Arc::new(SumFactory::<f64>::default()),
            (K::Mean, _) => Arc::new(MeanFactory),
            (K::Var | K::Std, _) => Arc::new(VarianceFactory {
                standard_deviation: self.kind == K::Std,
            }),
            (K::Min | K::Max, _) => Arc::new(ExtremeFactory {
                largest: self.kind == K::Max,
                value_type: column_type(0),
            }),
            (K::MinByN | K::MaxByN, _) => Arc::new(ByNFactory::try_new(
                self.kind == K::MaxByN,
                p.count,
                column_type(0),
                column_type(1),
                self.needs_event_time,
            )?),
            (K::ApproxCountDistinct, family) => Arc::new(CpcFactory {
                lg_k: p.lg_k,
                strings: family == Some(V::String),
            }),
            (K::ApproxTopK, Some(V::Integer)) => Arc::new(TopKFactory::<i64>::try_new(
                p.count,
                p.weighted,
                p.return_total_weight,
            )?),
            (K::ApproxTopK, _) => Arc::new(TopKFactory::<String>::try_new(
                p.count,
                p.weighted,
                p.return_total_weight,
            )?),
            (K::ApproxPercentile, _) => Arc::new(PercentileFactory {
                quantile: p.quantile(),
            }),
        })
    }
}
