//! The functions as SQL: aggregates, and `_state` / `_merge` / `_final` forms.
//!
//! In the style of ClickHouse's `-State` / `-Merge` combinators and BigQuery's
//! `HLL_COUNT.INIT / MERGE / EXTRACT`, every function `f` of the table gets
//!
//! * `f_state(args…)` — an aggregate returning the partial state as a struct,
//!   one field per state column (the same columns tiles store);
//! * `f_merge(state [, params])` — an aggregate merging states into a state;
//! * `f_final(state [, params])` — a scalar function turning a state into the result.
//!
//! so users can build and merge their own rollups in plain SQL. The functions
//! DataFusion lacks (`min_by_n`, `max_by_n`, `approx_count_distinct`,
//! `approx_top_k`, `approx_percentile`) are also registered as plain
//! aggregates. A DataFusion aggregate's type may depend only on argument
//! *types*, so SQL `approx_top_k` returns values only; `{value, weight}`
//! entries (`return_total_weight`) are available in feature definitions.
//!
//! `_merge` and `_final` recover a function's parameters from the state's
//! struct type (e.g. an integer or float `sum`, a vector's dimension, the item
//! type of a top-k image) and from their own constant arguments (`n`, `k`,
//! `quantile`, `lg_k`) where the state does not carry them.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, GroupsAccumulator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;

use crate::accumulator::{Input, Output, struct_columns};
use crate::function::{AggregateKind, Argument, BoundAggregate, FUNCTIONS};

/// Which SQL form of a function an aggregate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlForm {
    /// `f(args…)`: the result.
    Aggregate,
    /// `f_state(args…)`: the state as a struct.
    State,
    /// `f_merge(state [, params])`: merged states as a struct.
    Merge,
}

/// The functions DataFusion does not have under these names.
const PLAIN_AGGREGATES: [AggregateKind; 5] = [
    AggregateKind::MinByN,
    AggregateKind::MaxByN,
    AggregateKind::ApproxCountDistinct,
    AggregateKind::ApproxTopK,
    AggregateKind::ApproxPercentile,
];

/// Every aggregate and scalar function Tessera adds to SQL.
pub fn sql_functions() -> (Vec<AggregateUDF>, Vec<ScalarUDF>) {
    let mut aggregates: Vec<AggregateUDF> = PLAIN_AGGREGATES
        .iter()
        .map(|kind| AggregateUDF::from(TesseraAggregate::new(*kind, SqlForm::Aggregate)))
        .collect();
    let mut scalars = Vec::new();
    for (_, kind) in FUNCTIONS {
        aggregates.push(AggregateUDF::from(TesseraAggregate::new(
            kind,
            SqlForm::State,
        )));
        aggregates.push(AggregateUDF::from(TesseraAggregate::new(
            kind,
            SqlForm::Merge,
        )));
        scalars.push(ScalarUDF::from(FinalFunction::new(kind)));
    }
    (aggregates, scalars)
}

/// Where a kind takes constant parameters, given its argument types.
fn constant_positions(kind: AggregateKind, types: &[DataType]) -> Vec<usize> {
    match kind {
        AggregateKind::MinByN | AggregateKind::MaxByN => vec![2],
        AggregateKind::ApproxPercentile | AggregateKind::ApproxCountDistinct => vec![1],
        AggregateKind::ApproxTopK => std::iter::once(1)
            .chain((2..types.len()).filter(|&i| types[i] == DataType::Boolean))
            .collect(),
        _ => vec![],
    }
}

/// A valid stand-in for a constant whose value does not change types or state layout.
fn placeholder(kind: AggregateKind, data_type: &DataType) -> ScalarValue {
    match (kind, data_type) {
        (_, DataType::Boolean) => ScalarValue::Boolean(Some(false)),
        (AggregateKind::ApproxPercentile, _) => ScalarValue::Float64(Some(0.5)),
        (AggregateKind::ApproxCountDistinct, _) => ScalarValue::Int64(Some(11)),
        _ => ScalarValue::Int64(Some(1)),
    }
}

/// Arguments from types alone, with placeholders for the constants.
fn typed_arguments(kind: AggregateKind, types: &[DataType]) -> Vec<Argument> {
    let constants = constant_positions(kind, types);
    types
        .iter()
        .enumerate()
        .map(|(i, t)| Argument {
            data_type: t.clone(),
            constant: constants.contains(&i).then(|| placeholder(kind, t)),
        })
        .collect()
}

/// The arguments of a `_merge` / `_final` call from types alone: the state, then
/// placeholders for its constants.
fn state_arguments(kind: AggregateKind, types: &[DataType]) -> Vec<Argument> {
    types
        .iter()
        .enumerate()
        .map(|(i, t)| Argument {
            data_type: t.clone(),
            constant: (i > 0).then(|| placeholder(kind, t)),
        })
        .collect()
}

/// The constant values of physical argument expressions.
fn literal_arguments(exprs: &[Arc<dyn PhysicalExpr>], fields: &[FieldRef]) -> Vec<Argument> {
    exprs
        .iter()
        .zip(fields)
        .map(|(expr, field)| Argument {
            data_type: field.data_type().clone(),
            constant: expr
                .downcast_ref::<Literal>()
                .map(|literal| literal.value().clone()),
        })
        .collect()
}

/// The value arguments a state struct was built from, so the function can be bound again.
fn arguments_from_state(
    kind: AggregateKind,
    state: &DataType,
    parameters: &[Argument],
) -> Result<Vec<Argument>> {
    let DataType::Struct(fields) = state else {
        return plan_err!("{kind} state must be a struct, as {kind}_state returns it; got {state}");
    };
    let column = |data_type: DataType| Argument {
        data_type,
        constant: None,
    };
    let item = |index: usize| match fields.get(index).map(|f| f.data_type()) {
        Some(DataType::List(item)) => Ok(item.data_type().clone()),
        other => plan_err!("{kind} state field {index} must be a list, got {other:?}"),
    };
    let first = fields
        .first()
        .map(|f| f.data_type().clone())
        .unwrap_or(DataType::Null);
    let parameter = |index: usize, default: ScalarValue| {
        parameters.get(index).cloned().unwrap_or(Argument {
            data_type: default.data_type(),
            constant: Some(default),
        })
    };
    Ok(match kind {
        AggregateKind::Count => vec![],
        AggregateKind::Sum | AggregateKind::Mean | AggregateKind::Min | AggregateKind::Max => {
            vec![column(first)]
        }
        AggregateKind::Var | AggregateKind::Std => vec![column(DataType::Float64)],
        AggregateKind::MinByN | AggregateKind::MaxByN => {
            vec![
                column(item(2)?),
                column(item(0)?),
                parameter(
                    0,
                    ScalarValue::Int64(Some(crate::functions::by_n::MAX_N as i64)),
                ),
            ]
        }
        AggregateKind::ApproxCountDistinct => vec![
            column(DataType::Int64),
            parameter(0, ScalarValue::Int64(Some(11))),
        ],
        AggregateKind::ApproxTopK => {
            let strings = fields
                .first()
                .is_some_and(|f| f.name().ends_with("items_utf8]"));
            let value = if strings {
                DataType::Utf8
            } else {
                DataType::Int64
            };
            let mut arguments = vec![column(value), parameter(0, ScalarValue::Int64(Some(1)))];
            arguments.extend(parameters.get(1).cloned());
            arguments
        }
        AggregateKind::ApproxPercentile => vec![
            column(DataType::Float64),
            parameter(0, ScalarValue::Float64(Some(0.5))),
        ],
    })
}

/// One SQL aggregate form of a function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TesseraAggregate {
    kind: AggregateKind,
    form: SqlForm,
    name: String,
    signature: Signature,
}

impl TesseraAggregate {
    /// The `form` of `kind`, e.g. `sum_state`.
    pub fn new(kind: AggregateKind, form: SqlForm) -> Self {
        let name = match form {
            SqlForm::Aggregate => kind.name().to_string(),
            SqlForm::State => format!("{}_state", kind.name()),
            SqlForm::Merge => format!("{}_merge", kind.name()),
        };
        Self {
            kind,
            form,
            name,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    fn bind(&self, arguments: &[Argument]) -> Result<BoundAggregate> {
        match self.form {
            SqlForm::Aggregate | SqlForm::State => {
                BoundAggregate::bind(&self.name, self.kind.name(), arguments)
            }
            SqlForm::Merge => {
                let Some(state) = arguments.first() else {
                    return plan_err!("{} takes a state argument", self.name);
                };
                let rebuilt = arguments_from_state(self.kind, &state.data_type, &arguments[1..])?;
                BoundAggregate::bind(&self.name, self.kind.name(), &rebuilt)
            }
        }
    }

    fn bind_types(&self, types: &[DataType]) -> Result<BoundAggregate> {
        match self.form {
            SqlForm::Merge => self.bind(&state_arguments(self.kind, types)),
            _ => self.bind(&typed_arguments(self.kind, types)),
        }
    }
}

impl TesseraAggregate {
    /// Binds a call with its constants, and what its accumulators read and produce.
    fn bind_call(&self, args: &AccumulatorArgs) -> Result<(BoundAggregate, Input, Output)> {
        let arguments = literal_arguments(args.exprs, args.expr_fields);
        let bound = self.bind(&arguments)?;
        if self.form == SqlForm::Aggregate && bound.parameters.return_total_weight {
            return plan_err!(
                "{}: return_total_weight = true is available in feature definitions; in SQL use approx_top_k_state and approx_top_k_final(state, k, true)",
                self.name
            );
        }
        let (input, output) = match self.form {
            SqlForm::Aggregate => (Input::Arguments, Output::Result),
            SqlForm::State => (Input::Arguments, Output::State),
            SqlForm::Merge => (Input::States, Output::State),
        };
        Ok((bound, input, output))
    }
}

impl AggregateUDFImpl for TesseraAggregate {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Casts column arguments to the canonical types their state reads
    /// (e.g. every integer to Int64, every string to Utf8).
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if self.form == SqlForm::Merge {
            return Ok(arg_types.to_vec());
        }
        let mut coerced = arg_types.to_vec();
        for (index, data_type) in self.bind_types(arg_types)?.columns {
            coerced[index] = data_type;
        }
        Ok(coerced)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match self.form {
            SqlForm::Aggregate => Ok(self.bind_types(arg_types)?.result_type),
            SqlForm::State => {
                let fields = self
                    .bind_types(arg_types)?
                    .implementation()?
                    .state_fields(self.kind.name());
                Ok(DataType::Struct(fields.into()))
            }
            SqlForm::Merge => Ok(arg_types.first().cloned().unwrap_or(DataType::Null)),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let (bound, input, output) = self.bind_call(&args)?;
        // Struct states are named after the function, so `_state` and `_merge` agree.
        Ok(bound
            .implementation()?
            .accumulator(self.kind.name(), input, output))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let (bound, input, output) = self.bind_call(&args)?;
        Ok(bound
            .implementation()?
            .groups_accumulator(self.kind.name(), input, output))
    }

    /// The function's own state columns (see each function's factory for what they hold).
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let types: Vec<DataType> = args
            .input_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        Ok(self
            .bind_types(&types)?
            .implementation()?
            .state_fields(args.name))
    }
}

/// `f_final(state [, params])`: the result of a state.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FinalFunction {
    kind: AggregateKind,
    name: String,
    signature: Signature,
}

impl FinalFunction {
    /// `{kind}_final`.
    pub fn new(kind: AggregateKind) -> Self {
        Self {
            kind,
            name: format!("{}_final", kind.name()),
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }

    fn bind(&self, arguments: &[Argument]) -> Result<BoundAggregate> {
        let Some(state) = arguments.first() else {
            return plan_err!("{} takes a state argument", self.name);
        };
        let rebuilt = arguments_from_state(self.kind, &state.data_type, &arguments[1..])?;
        BoundAggregate::bind(&self.name, self.kind.name(), &rebuilt)
    }
}

impl ScalarUDFImpl for FinalFunction {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(self
            .bind(&state_arguments(self.kind, arg_types))?
            .result_type)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let arguments: Vec<Argument> = args
            .arg_fields
            .iter()
            .zip(args.scalar_arguments)
            .map(|(field, value)| Argument {
                data_type: field.data_type().clone(),
                constant: value.cloned(),
            })
            .collect();
        let result_type = self.bind(&arguments)?.result_type;
        Ok(Arc::new(datafusion::arrow::datatypes::Field::new(
            &self.name,
            result_type,
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let constants = args.args.iter().map(|a| match a {
            ColumnarValue::Scalar(value) => Some(value.clone()),
            ColumnarValue::Array(_) => None,
        });
        let arguments: Vec<Argument> = args
            .arg_fields
            .iter()
            .zip(constants)
            .map(|(field, constant)| Argument {
                data_type: field.data_type().clone(),
                constant,
            })
            .collect();
        let bound = self.bind(&arguments)?;
        let Some(states) = args.args.first() else {
            return exec_err!("{} takes a state argument", self.name);
        };
        let states: ArrayRef = states.to_array(args.number_rows)?;
        let columns = struct_columns(&states)?;
        let results = bound
            .implementation()?
            .evaluate_states(&columns, args.number_rows)?;
        Ok(ColumnarValue::Array(results))
    }
}
