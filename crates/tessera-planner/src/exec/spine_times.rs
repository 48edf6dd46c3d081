//! [`SpineTimes`]: the spine's earliest and latest time (and, when a stage
//! prunes events per key, its rows), published once the spine has been read,
//! so event and tile scans can skip what no row can see.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::common::{Result, exec_datafusion_err};
use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::Shared;

/// The earliest and latest non-null spine time (`None` when there is none).
pub type TimeExtent = Option<(i64, i64)>;

/// What the spine publishes once read.
#[derive(Debug, Default)]
pub struct PublishedSpine {
    /// Its earliest and latest time.
    pub extent: TimeExtent,
    /// Its batches, when some stage prunes events or tile rows per key (else empty).
    pub batches: Vec<RecordBatch>,
}

/// A value set once by [`super::SpineEnumerateExec`] at the end of the spine
/// and awaited by every [`super::EventReachExec`] and [`super::TileScanExec`] of the plan.
#[derive(Debug)]
pub struct SpineTimes {
    /// Whether the spine's rows are published, not only its extent.
    keeps_rows: bool,
    sender: Mutex<Option<oneshot::Sender<Arc<PublishedSpine>>>>,
    receiver: Shared<oneshot::Receiver<Arc<PublishedSpine>>>,
}

impl SpineTimes {
    /// Nothing published yet; `keeps_rows` asks for the spine's rows too.
    pub fn new(keeps_rows: bool) -> Self {
        let (sender, receiver) = oneshot::channel();
        Self {
            keeps_rows,
            sender: Mutex::new(Some(sender)),
            receiver: receiver.shared(),
        }
    }

    /// Whether the spine's rows are to be published.
    pub fn keeps_rows(&self) -> bool {
        self.keeps_rows
    }

    /// Publishes the spine; later calls (a plan run again) change nothing.
    pub fn publish(&self, spine: PublishedSpine) {
        if let Some(sender) = self.sender.lock().ok().and_then(|mut s| s.take()) {
            let _ = sender.send(Arc::new(spine));
        }
    }

    /// Waits for the spine.
    pub async fn get(&self) -> Result<Arc<PublishedSpine>> {
        self.receiver.clone().await.map_err(|_| {
            exec_datafusion_err!("the spine ended without reporting its time range (it failed)")
        })
    }
}
