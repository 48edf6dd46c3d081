//! [`SpineTimes`]: the spine's earliest and latest time, published once the
//! spine has been read, so event scans can skip what no row can see.

use std::sync::Mutex;

use datafusion::common::{Result, exec_datafusion_err};
use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::Shared;

/// The earliest and latest non-null spine time (`None` when there is none).
pub type TimeExtent = Option<(i64, i64)>;

/// A value set once by [`super::SpineEnumerateExec`] at the end of the spine
/// and awaited by every [`super::EventReachExec`] of the plan.
#[derive(Debug)]
pub struct SpineTimes {
    sender: Mutex<Option<oneshot::Sender<TimeExtent>>>,
    receiver: Shared<oneshot::Receiver<TimeExtent>>,
}

impl SpineTimes {
    /// Nothing published yet.
    pub fn new() -> Self {
        let (sender, receiver) = oneshot::channel();
        Self {
            sender: Mutex::new(Some(sender)),
            receiver: receiver.shared(),
        }
    }

    /// Publishes the extent; later calls (a plan run again) change nothing.
    pub fn publish(&self, extent: TimeExtent) {
        if let Some(sender) = self.sender.lock().ok().and_then(|mut s| s.take()) {
            let _ = sender.send(extent);
        }
    }

    /// Waits for the extent.
    pub async fn get(&self) -> Result<TimeExtent> {
        self.receiver.clone().await.map_err(|_| {
            exec_datafusion_err!("the spine ended without reporting its time range (it failed)")
        })
    }
}

impl Default for SpineTimes {
    fn default() -> Self {
        Self::new()
    }
}
