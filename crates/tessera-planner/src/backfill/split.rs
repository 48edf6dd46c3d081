//! A backfill's events read once for several chunks, split by chunk into
//! spill files.
//!
//! A backfill folds its range chunk by chunk, each chunk sorted by key and
//! time. Scanning the source once per chunk with a time filter reads only
//! the chunk's row groups of a source laid out in time order, but a source
//! that is not (events written by key, or in arrival order across a fleet)
//! decodes every row group for every chunk — thirteen decodes of the whole
//! source for a year in 30-day chunks, the largest cost of such a backfill
//! after folding. So chunks are read in windows of [`CHUNKS_PER_SCAN`]: one
//! scan of the window's time range, on all of DataFusion's partitions,
//! appends every row to its chunk's spill file (Arrow IPC in DataFusion's
//! disk manager, batched to the session's batch size, counted against
//! `max_temp_directory_size` and deleted when dropped), and each chunk is
//! then sorted from its files by a spilling `SortExec`. A window bounds the
//! temporary disk to its chunks' projected events; without a disk manager
//! the backfill scans per chunk as before.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::{BatchCoalescer, SortOptions, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::{DataFusionError, Result, exec_datafusion_err};
use datafusion::dataframe::DataFrame;
use datafusion::execution::SpillWriter;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SendableRecordBatchStream, SessionState, SpillFile, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, SpillMetrics};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::spill::SpillManager;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures::StreamExt;
use tessera_time::Instant;

use crate::exec::time::to_micros;

/// How many chunks one scan of the source feeds: a year of the default
/// 30-day chunks in one, while the temporary disk stays bounded by sixteen
/// chunks' projected events however long the range.
pub(super) const CHUNKS_PER_SCAN: usize = 16;

/// The events of a window of consecutive chunks, one scan's worth: per
/// chunk, its spill files (one per scan partition that met its events).
pub(super) struct SplitChunks {
    spill: SpillManager,
    chunks: Vec<Vec<Arc<dyn SpillFile>>>,
}

impl SplitChunks {
    /// Scans `events` (the window's events, unsorted, time in column
    /// `time_column`) once, appending each row to the spill files of the
    /// chunk of `chunks` (consecutive, covering every event) its time falls in.
    pub(super) async fn scan(
        state: &SessionState,
        events: LogicalPlan,
        time_column: usize,
        chunks: &[(Instant, Instant)],
    ) -> Result<Self> {
        let frame = DataFrame::new(state.clone(), events);
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let spill = SpillManager::new(
            Arc::clone(state.runtime_env()),
            SpillMetrics::new(&ExecutionPlanMetricsSet::new(), 0),
            Arc::clone(&schema),
        );
        let ends: Arc<[Instant]> = chunks.iter().map(|&(_, end)| end).collect();
        let batch_size = state.config().batch_size();
        let tasks: Vec<SpawnedTask<Result<PartitionFiles>>> = frame
            .execute_stream_partitioned()
            .await?
            .into_iter()
            .map(|stream| {
                let splitter =
                    Splitter::new(state.runtime_env(), &schema, &ends, time_column, batch_size);
                SpawnedTask::spawn(splitter.run(stream))
            })
            .collect();
        let mut files: Vec<Vec<Arc<dyn SpillFile>>> = vec![Vec::new(); chunks.len()];
        for task in tasks {
            let written = task
                .join_unwind()
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))??;
            for (chunk, file) in files.iter_mut().zip(written) {
                chunk.extend(file);
            }
        }
        Ok(Self {
            spill,
            chunks: files,
        })
    }

    /// Chunk `chunk` (of the window) sorted by `order` (column names, each
    /// ascending with nulls first), run on `context`'s threads.
    pub(super) fn sorted(
        &self,
        chunk: usize,
        order: &[String],
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = Arc::clone(self.spill.schema());
        let files = self.chunks.get(chunk).cloned().unwrap_or_default();
        if files.is_empty() {
            let empty = futures::stream::empty();
            return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, empty)));
        }
        let parts = files
            .into_iter()
            .map(|file| {
                Arc::new(SpilledPart {
                    spill: self.spill.clone(),
                    file,
                }) as Arc<dyn PartitionStream>
            })
            .collect::<Vec<_>>();
        let several = parts.len() > 1;
        let source = Arc::new(StreamingTableExec::try_new(
            Arc::clone(&schema),
            parts,
            None,
            Vec::<LexOrdering>::new(),
            false,
            None,
        )?);
        let ordering = sort_order(&schema, order)?;
        let sort = SortExec::new(ordering.clone(), source).with_preserve_partitioning(true);
        let plan: Arc<dyn ExecutionPlan> = if several {
            Arc::new(SortPreservingMergeExec::new(ordering, Arc::new(sort)))
        } else {
            Arc::new(sort)
        };
        plan.execute(0, context)
    }
}

/// `order`'s columns of `schema`, ascending with nulls first (as the per-chunk scans sort).
fn sort_order(schema: &SchemaRef, order: &[String]) -> Result<LexOrdering> {
    let options = SortOptions {
        descending: false,
        nulls_first: true,
    };
    let exprs = order
        .iter()
        .map(|name| {
            Ok(PhysicalSortExpr::new(
                Arc::new(Column::new_with_schema(name, schema)?),
                options,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    LexOrdering::new(exprs)
        .ok_or_else(|| exec_datafusion_err!("a backfill chunk sorts by no column"))
}

/// One spill file of a chunk, as a partition of its sort's input.
struct SpilledPart {
    spill: SpillManager,
    file: Arc<dyn SpillFile>,
}

impl std::fmt::Debug for SpilledPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpilledPart")
            .field("file", &self.file.path())
            .finish()
    }
}

impl PartitionStream for SpilledPart {
    fn schema(&self) -> &SchemaRef {
        self.spill.schema()
    }

    fn execute(&self, _context: Arc<TaskContext>) -> SendableRecordBatchStream {
        match self
            .spill
            .read_spill_as_stream(Arc::clone(&self.file), None)
        {
            Ok(stream) => stream,
            Err(e) => {
                let failed = futures::stream::once(async move { Err(e) });
                Box::pin(RecordBatchStreamAdapter::new(
                    Arc::clone(self.spill.schema()),
                    failed,
                ))
            }
        }
    }
}

/// What one scan partition wrote: per chunk, its file, if any row went there.
type PartitionFiles = Vec<Option<Arc<dyn SpillFile>>>;

/// One scan partition's split: per chunk, rows batched and appended to its file.
struct Splitter {
    runtime: Arc<RuntimeEnv>,
    schema: SchemaRef,
    ends: Arc<[Instant]>,
    time_column: usize,
    pending: Vec<BatchCoalescer>,
    files: Vec<Option<ChunkFile>>,
}

/// A chunk's spill file being written (Arrow IPC stream format, as
/// [`SpillManager`] reads it back).
struct ChunkFile {
    file: Arc<dyn SpillFile>,
    writer: StreamWriter<Box<dyn SpillWriter>>,
}

impl ChunkFile {
    fn create(runtime: &Arc<RuntimeEnv>, schema: &SchemaRef) -> Result<Self> {
        let file = runtime
            .disk_manager
            .create_tmp_file("backfill events of one chunk")?;
        let writer = StreamWriter::try_new(file.open_writer()?, schema)?;
        Ok(Self { file, writer })
    }

    fn finish(mut self) -> Result<Arc<dyn SpillFile>> {
        self.writer.finish()?;
        self.writer.into_inner()?.finish()?;
        Ok(self.file)
    }
}

impl Splitter {
    fn new(
        runtime: &Arc<RuntimeEnv>,
        schema: &SchemaRef,
        ends: &Arc<[Instant]>,
        time_column: usize,
        batch_size: usize,
    ) -> Self {
        Self {
            runtime: Arc::clone(runtime),
            schema: Arc::clone(schema),
            ends: Arc::clone(ends),
            time_column,
            pending: (0..ends.len())
                .map(|_| BatchCoalescer::new(Arc::clone(schema), batch_size))
                .collect(),
            files: (0..ends.len()).map(|_| None).collect(),
        }
    }

    /// Splits every batch of `stream`; the chunks' files, where any row went.
    async fn run(mut self, mut stream: SendableRecordBatchStream) -> Result<PartitionFiles> {
        while let Some(batch) = stream.next().await {
            self.split(&batch?)?;
        }
        for chunk in 0..self.pending.len() {
            self.pending[chunk].finish_buffered_batch()?;
            self.drain(chunk)?;
        }
        self.files
            .into_iter()
            .map(|file| file.map(ChunkFile::finish).transpose())
            .collect()
    }

    fn split(&mut self, batch: &RecordBatch) -> Result<()> {
        let times = to_micros(batch.column(self.time_column))?;
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); self.ends.len()];
        for (row, time) in times.values().iter().enumerate() {
            // The scan's filter keeps times inside the window, and the
            // chunks cover it; the last chunk takes anything past its end.
            let chunk = self.ends.partition_point(|&end| end <= *time);
            rows[chunk.min(self.ends.len() - 1)].push(row as u32);
        }
        for (chunk, rows) in rows.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let taken = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                take_record_batch(batch, &UInt32Array::from(rows))?
            };
            self.pending[chunk].push_batch(taken)?;
            self.drain(chunk)?;
        }
        Ok(())
    }

    /// Appends the completed batches of `chunk` to its file.
    fn drain(&mut self, chunk: usize) -> Result<()> {
        while let Some(batch) = self.pending[chunk].next_completed_batch() {
            let file = match &mut self.files[chunk] {
                Some(file) => file,
                empty => empty.insert(ChunkFile::create(&self.runtime, &self.schema)?),
            };
            file.writer.write(&batch)?;
        }
        Ok(())
    }
}
