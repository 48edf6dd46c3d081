//! One function of SEMANTICS.md §5 per module: its partial state and the
//! factory that makes, describes and decodes it.

pub mod approx_count_distinct;
pub mod approx_percentile;
pub mod approx_top_k;
pub mod by_n;
pub mod count;
mod input;
pub mod mean;
pub mod min_max;
pub mod percentile_window;
pub(crate) mod sketch_header;
pub mod sum;
pub mod variance;
pub mod vector;

pub use approx_count_distinct::{CpcFactory, CpcState};
pub use approx_percentile::{PercentileFactory, PercentileState};
pub use approx_top_k::{TopKFactory, TopKState, TopKValue};
pub use by_n::{ByNFactory, ByNState};
pub use count::{CountFactory, CountState};
pub use mean::{MeanFactory, MeanState};
pub use min_max::{ExtremeFactory, ExtremeState};
pub use percentile_window::PercentileWindow;
pub use sum::{SumFactory, SumState, Summable};
pub use variance::{MomentsState, VarianceFactory};
pub use vector::{VectorFactory, VectorSumState};
