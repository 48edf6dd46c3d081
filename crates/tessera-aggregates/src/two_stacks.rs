//! Sliding aggregation over a FIFO window with only `combine` (no inverse).
//!
//! The classic two-stacks algorithm: new items go on a back stack with a
//! running aggregate; when the oldest item must leave and the front stack is
//! empty, the back stack is flipped onto the front, storing at each position
//! the aggregate of that item and everything newer. Every operation is
//! amortised O(1) combines, and — unlike add/retract — nothing is ever
//! subtracted, so floating-point sums and variance moments do not drift and
//! idempotent states such as min/max need no inverse at all.

/// An associative, commutative merge with an identity: a partial state.
pub trait Monoid: Clone + Send + 'static {
    /// The state of no values.
    fn identity() -> Self;
    /// Merges `other` into `self`.
    fn combine(&mut self, other: &Self);
}

/// A FIFO window of monoid items with amortised O(1) push, pop and query.
#[derive(Debug, Clone)]
pub struct TwoStacks<M> {
    /// Oldest items on top; each entry aggregates itself and every newer front item.
    front: Vec<M>,
    /// Newest items, in arrival order.
    back: Vec<M>,
    /// Aggregate of `back`.
    back_aggregate: M,
}

impl<M: Monoid> Default for TwoStacks<M> {
    fn default() -> Self {
        Self {
            front: Vec::new(),
            back: Vec::new(),
            back_aggregate: M::identity(),
        }
    }
}

impl<M: Monoid> TwoStacks<M> {
    /// Appends the newest item.
    pub fn push(&mut self, item: M) {
        self.back_aggregate.combine(&item);
        self.back.push(item);
    }

    /// Removes the oldest item; a no-op on an empty window.
    pub fn pop(&mut self) {
        if self.front.is_empty() {
            self.flip();
        }
        self.front.pop();
    }

    /// The aggregate of every item in the window.
    pub fn query(&self) -> M {
        let mut result = self.front.last().cloned().unwrap_or_else(M::identity);
        result.combine(&self.back_aggregate);
        result
    }

    /// Empties the window.
    pub fn clear(&mut self) {
        self.front.clear();
        self.back.clear();
        self.back_aggregate = M::identity();
    }

    fn flip(&mut self) {
        let mut running = M::identity();
        for item in self.back.drain(..).rev() {
            running.combine(&item);
            self.front.push(running.clone());
        }
        self.back_aggregate = M::identity();
    }
}
