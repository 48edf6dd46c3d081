//! One function of SEMANTICS.md §5 per module: its partial state and the
//! factory that makes, describes and decodes it.

pub mod count;
pub mod mean;
pub mod min_max;
pub mod sum;
pub mod variance;

pub use count::{CountFactory, CountState};
pub use mean::{MeanFactory, MeanState};
pub use min_max::{ExtremeFactory, ExtremeState};
pub use sum::{SumFactory, SumState, Summable};
pub use variance::{MomentsState, VarianceFactory};
