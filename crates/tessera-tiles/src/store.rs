//! [`TileStore`]: writing and reading tile files and commits on an object store.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result, exec_datafusion_err, exec_err};
use datafusion::object_store::path::Path;
use datafusion::object_store::{
    self as object_store, GetResult, GetResultPayload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMode, PutOptions, PutPayload,
};
use datafusion::parquet::file::reader::ChunkReader;
use futures::{StreamExt, TryStreamExt};
use tessera_time::{Instant, format_instant};

use crate::tile_file::{checksum, decode, encode};
use crate::{Commit, RangeChange, Snapshot, TileFile, TileSetDescription, open_object_store};

/// How many times a commit moves past versions other writers took before giving up.
const MAX_COMMIT_ATTEMPTS: usize = 100;

/// How many log entries are read at once when replaying the log.
const CONCURRENT_READS: usize = 16;

/// A tile store: an object store location holding `_log/` and `tiles/`.
#[derive(Debug, Clone)]
pub struct TileStore {
    store: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
}

/// What a commit changes, before it has a version.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// What wrote it, for the log.
    pub operation: String,
    /// Descriptions of the tile sets it writes.
    pub tile_sets: Vec<(String, TileSetDescription)>,
    /// Ranges replaced by `add`.
    pub replace: Vec<RangeChange>,
    /// Files added (already written and checked).
    pub add: Vec<TileFile>,
    /// Ranges no longer covered.
    pub expire: Vec<RangeChange>,
}

/// What [`TileStore::vacuum`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VacuumReport {
    /// The commit that expired ranges, if any did.
    pub expire_version: Option<u64>,
    /// The expired ranges.
    pub expired: Vec<RangeChange>,
    /// Files deleted: no live commit state references them and they are older than the grace period.
    pub deleted_files: Vec<String>,
    /// Bytes deleted.
    pub deleted_bytes: u64,
    /// Unreferenced files kept because they are younger than the grace period
    /// (they may belong to a backfill still running).
    pub kept_recent: usize,
    /// Tile sets that covered some bucket before and cover none after: every
    /// query reading them needs a new backfill (or raw events) — usually a
    /// horizon later than the history meant to be kept.
    pub emptied: Vec<String>,
}

impl TileStore {
    /// Opens the store at `url` (see [`open_object_store`]).
    pub fn open(url: &str) -> Result<Self> {
        let (store, root) = open_object_store(url)?;
        Ok(Self::new(store, root, url))
    }

    /// A store over an object store the caller built (e.g. a wrapper for tests).
    pub fn new(store: Arc<dyn ObjectStore>, root: Path, url: &str) -> Self {
        Self {
            store,
            root,
            url: url.to_string(),
        }
    }

    /// The URL the store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object store underneath.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn child(&self, relative: &str) -> Path {
        relative
            .split('/')
            .fold(self.root.clone(), |path, part| path.join(part))
    }

    fn log_path(&self, version: u64) -> Path {
        self.child(&format!("_log/{version:020}.json"))
    }

    /// The versions in the log, ascending; they must be `1..=n`.
    pub async fn latest_version(&self) -> Result<u64> {
        let prefix = self.child("_log");
        let mut versions: Vec<u64> = self
            .store
            .list(Some(&prefix))
            .map_err(DataFusionError::from)
            .try_filter_map(|meta| async move {
                let name = meta.location.filename().unwrap_or_default().to_string();
                Ok(name
                    .strip_suffix(".json")
                    .and_then(|stem| stem.parse::<u64>().ok()))
            })
            .try_collect()
            .await?;
        versions.sort_unstable();
        for (expected, version) in (1..).zip(&versions) {
            if *version != expected {
                return exec_err!(
                    "tile store {}: the commit log has a gap, version {expected} is missing before {version}",
                    self.url
                );
            }
        }
        Ok(versions.last().copied().unwrap_or(0))
    }

    /// Reads commit `version`.
    pub async fn read_commit(&self, version: u64) -> Result<Commit> {
        let path = self.log_path(version);
        let bytes = self.store.get(&path).await?.bytes().await?;
        let commit: Commit = serde_json::from_slice(&bytes).map_err(|e| {
            exec_datafusion_err!("tile store {}: commit {path} is unreadable: {e}", self.url)
        })?;
        if commit.version != version {
            return exec_err!(
                "tile store {}: commit {path} says it is version {}",
                self.url,
                commit.version
            );
        }
        Ok(commit)
    }

    /// The store at its latest version.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let latest = self.latest_version().await?;
        self.snapshot_at(latest).await
    }

    /// The store as of `version`.
    pub async fn snapshot_at(&self, version: u64) -> Result<Snapshot> {
        let mut commits = futures::stream::iter(1..=version)
            .map(|v| self.read_commit(v))
            .buffered(CONCURRENT_READS);
        let mut snapshot = Snapshot::default();
        while let Some(commit) = commits.next().await {
            snapshot.apply(&commit?);
        }
        Ok(snapshot)
    }

    /// Writes sorted tile rows for buckets `[start, end)` of the tile sets
    /// of one series as one new file, and checks what the store holds. Each
    /// of `tile_sets` — an id and the columns of `schema` holding its states
    /// — gets an entry for the file; the file is live only once a commit
    /// adds them. The Parquet encoding runs on a blocking thread, so several
    /// files can be written at once.
    pub async fn write_tiles(
        &self,
        series: &str,
        tile_sets: &[(String, Vec<String>)],
        schema: &SchemaRef,
        batches: &[RecordBatch],
        (start, end): (Instant, Instant),
    ) -> Result<Vec<TileFile>> {
        let (schema, rows) = (Arc::clone(schema), batches.to_vec());
        let bytes = tokio::task::spawn_blocking(move || encode(&schema, &rows))
            .await
            .map_err(|e| exec_datafusion_err!("encoding a tile file of series {series}: {e}"))??;
        let relative = format!("tiles/{series}/{:032x}.parquet", rand::random::<u128>());
        let path = self.child(&relative);
        let (size, sum) = (bytes.len() as u64, checksum(&bytes));
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let files = tile_sets
            .iter()
            .map(|(tile_set, columns)| TileFile {
                tile_set: tile_set.clone(),
                path: relative.clone(),
                columns: columns.clone(),
                size,
                checksum: sum.clone(),
                rows,
                start,
                end,
            })
            .collect();
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&path, PutPayload::from(bytes), options)
            .await?;
        let stored = self.store.head(&path).await?;
        if stored.size != size {
            return exec_err!(
                "tile file {path}: wrote {size} bytes but the store holds {}",
                stored.size
            );
        }
        Ok(files)
    }

    /// Reads a tile file whole, checking its size and checksum against its commit.
    pub async fn read_tile(&self, file: &TileFile) -> Result<Vec<RecordBatch>> {
        let (path, bytes) = self.checked_bytes(file).await?;
        decode(path.as_ref(), bytes, None)
    }

    /// Reads a tile file's keys, `bucket_start` and the state columns named
    /// `states` (in that order), checking its size and checksum against its
    /// commit.
    pub async fn read_tile_states(
        &self,
        file: &TileFile,
        states: &[String],
    ) -> Result<Vec<RecordBatch>> {
        let (path, bytes) = self.checked_bytes(file).await?;
        decode(path.as_ref(), bytes, Some(states))
    }

    /// A tile file's bytes, after checking their size and checksum.
    async fn checked_bytes(&self, file: &TileFile) -> Result<(Path, impl ChunkReader + 'static)> {
        let path = self.child(&file.path);
        let bytes = match self.store.get(&path).await {
            Ok(result) => whole_file(result).await,
            Err(e) => Err(e),
        }
        .map_err(|e| exec_datafusion_err!("tile file {path} cannot be read: {e}"))?;
        if bytes.len() as u64 != file.size {
            return exec_err!(
                "tile file {path} is corrupt: it has {} bytes, its commit recorded {}",
                bytes.len(),
                file.size
            );
        }
        let found = checksum(&bytes);
        if found != file.checksum {
            return exec_err!(
                "tile file {path} is corrupt: checksum {found}, its commit recorded {}",
                file.checksum
            );
        }
        Ok((path, bytes))
    }

    /// Appends a commit after `read_version` (the version the request was
    /// planned against). Moves past commits other writers made meanwhile
    /// unless one changed an overlapping range of the same tile set, which
    /// fails as a conflict and changes nothing.
    pub async fn commit(&self, request: CommitRequest, read_version: u64) -> Result<Commit> {
        self.check_files_exist(&request.add).await?;
        let mut commit = Commit {
            version: read_version + 1,
            commit_id: format!("{:032x}", rand::random::<u128>()),
            committed_at: format_instant(now_micros()),
            operation: request.operation,
            tile_sets: request.tile_sets,
            replace: request.replace,
            add: request.add,
            expire: request.expire,
        };
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            match self.try_put_commit(&commit).await? {
                Ok(()) => return Ok(commit),
                Err(winner) => {
                    if let Some(range) = commit.conflict_with(&winner) {
                        return exec_err!(
                            "tile store {}: conflicting commit: version {} ({}) changed tile set {} in [{}, {}) while this {} was running; nothing was committed, retry it",
                            self.url,
                            winner.version,
                            winner.operation,
                            range.tile_set,
                            format_instant(range.start),
                            format_instant(range.end),
                            commit.operation
                        );
                    }
                    commit.version = winner.version + 1;
                }
            }
        }
        exec_err!(
            "tile store {}: gave up committing after {MAX_COMMIT_ATTEMPTS} attempts against concurrent writers",
            self.url
        )
    }

    /// Every file a commit is about to add must still be there (a vacuum
    /// with too short a grace period could have taken a slow backfill's files).
    async fn check_files_exist(&self, files: &[TileFile]) -> Result<()> {
        for file in files {
            let path = self.child(&file.path);
            if let Err(e) = self.store.head(&path).await {
                return exec_err!(
                    "tile file {path} written for this commit is gone before the commit ({e}); nothing was committed, retry it (and give vacuum a longer grace period)"
                );
            }
        }
        Ok(())
    }

    /// Puts `commit` at its version: `Ok(Ok(()))` when it is there (also after
    /// a put that reported failure but landed), `Ok(Err(winner))` when another
    /// writer took the version.
    async fn try_put_commit(&self, commit: &Commit) -> Result<std::result::Result<(), Commit>> {
        let path = self.log_path(commit.version);
        let json = serde_json::to_vec_pretty(commit)
            .map_err(|e| exec_datafusion_err!("cannot encode commit {}: {e}", commit.version))?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let outcome = self
            .store
            .put_opts(&path, PutPayload::from(json), options)
            .await;
        match outcome {
            Ok(_) => self.verify_commit(commit).await.map(Ok),
            Err(error) => match self.read_commit(commit.version).await {
                Ok(existing) if existing.commit_id == commit.commit_id => Ok(Ok(())),
                Ok(existing) => Ok(Err(existing)),
                Err(_) => Err(DataFusionError::from(error)),
            },
        }
    }

    /// Reads a commit back after its put reported success: object stores
    /// promise atomic puts, and a store that broke that promise is reported
    /// here rather than by the next reader.
    async fn verify_commit(&self, commit: &Commit) -> Result<()> {
        match self.read_commit(commit.version).await {
            Ok(stored) if stored.commit_id == commit.commit_id => Ok(()),
            Ok(stored) => exec_err!(
                "tile store {}: commit {} was overwritten by commit {} although it was put-if-absent; the object store does not honour PutMode::Create",
                self.url,
                commit.version,
                stored.commit_id
            ),
            Err(e) => exec_err!(
                "tile store {}: commit {} was stored damaged although its put succeeded ({}); the object store broke its atomic-put promise and the log needs repair",
                self.url,
                commit.version,
                e.strip_backtrace()
            ),
        }
    }

    /// Commits `expire` (when it changes anything), then deletes every file
    /// under `tiles/` that the latest snapshot does not serve from and that is
    /// older than `grace`: files of crashed backfills and files whose buckets
    /// were all replaced or expired.
    pub async fn vacuum(
        &self,
        expire: Vec<RangeChange>,
        grace: std::time::Duration,
    ) -> Result<VacuumReport> {
        self.run_vacuum(expire, grace, false).await
    }

    /// What [`Self::vacuum`] would do now, changing nothing: the ranges it
    /// would expire, the tile sets it would leave empty and the files it
    /// would delete (`expire_version` stays `None`).
    pub async fn vacuum_dry_run(
        &self,
        expire: Vec<RangeChange>,
        grace: std::time::Duration,
    ) -> Result<VacuumReport> {
        self.run_vacuum(expire, grace, true).await
    }

    /// A vacuum; with `dry_run`, the expiry is applied to a copy of the
    /// snapshot and nothing is committed or deleted.
    async fn run_vacuum(
        &self,
        expire: Vec<RangeChange>,
        grace: std::time::Duration,
        dry_run: bool,
    ) -> Result<VacuumReport> {
        let before = self.snapshot().await?;
        let expire = expiring(&before, expire);
        let mut report = VacuumReport::default();
        let request = CommitRequest {
            operation: "vacuum: expire by retention".to_string(),
            expire: expire.clone(),
            ..CommitRequest::default()
        };
        let after = if dry_run {
            let mut after = before.clone();
            after.apply(&Commit {
                version: before.version + 1,
                commit_id: "dry run".to_string(),
                committed_at: String::new(),
                operation: request.operation,
                tile_sets: request.tile_sets,
                replace: request.replace,
                add: request.add,
                expire: request.expire,
            });
            after
        } else {
            if !expire.is_empty() {
                let commit = self.commit(request, before.version).await?;
                report.expire_version = Some(commit.version);
            }
            self.snapshot().await?
        };
        report.emptied = emptied(&before, &after);
        report.expired = expire;
        let (deletable, kept_recent) = self.unreferenced(&after, grace).await?;
        report.kept_recent = kept_recent;
        for object in deletable {
            if !dry_run {
                self.store.delete(&object.location).await?;
            }
            report.deleted_bytes += object.size;
            report
                .deleted_files
                .push(relative_to(&self.root, &object.location));
        }
        Ok(report)
    }

    /// The files under `tiles/` that `snapshot` does not serve from and that
    /// are older than `grace`, and how many younger ones are kept.
    async fn unreferenced(
        &self,
        snapshot: &Snapshot,
        grace: std::time::Duration,
    ) -> Result<(Vec<ObjectMeta>, usize)> {
        let live = snapshot.live_paths();
        let now = SystemTime::now();
        let objects: Vec<ObjectMeta> = self
            .store
            .list(Some(&self.child("tiles")))
            .try_collect()
            .await?;
        let mut kept_recent = 0;
        let mut deletable = Vec::new();
        for object in objects {
            if live.contains(relative_to(&self.root, &object.location).as_str()) {
                continue;
            }
            let age = now
                .duration_since(SystemTime::from(object.last_modified))
                .unwrap_or_default();
            if age < grace {
                kept_recent += 1;
            } else {
                deletable.push(object);
            }
        }
        Ok((deletable, kept_recent))
    }
}

/// The ranges of `expire` that change something in `snapshot`.
fn expiring(snapshot: &Snapshot, expire: Vec<RangeChange>) -> Vec<RangeChange> {
    expire
        .into_iter()
        .filter(|range| {
            snapshot.tile_set(&range.tile_set).is_some_and(|state| {
                !state.coverage.clip(range.start, range.end).is_empty()
                    || state
                        .files
                        .iter()
                        .any(|f| !f.valid.clip(range.start, range.end).is_empty())
            })
        })
        .collect()
}

/// The tile sets that cover some bucket in `before` and none in `after`.
fn emptied(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    before
        .tile_sets
        .iter()
        .filter(|(id, state)| !state.coverage.is_empty() && after.coverage(id).is_empty())
        .map(|(id, _)| id.clone())
        .collect()
}

/// `path` relative to `root`, as a `/`-separated string.
fn relative_to(root: &Path, path: &Path) -> String {
    match path.prefix_match(root) {
        Some(parts) => parts
            .map(|p| p.as_ref().to_string())
            .collect::<Vec<_>>()
            .join("/"),
        None => path.to_string(),
    }
}

/// Now, in microseconds since the epoch.
pub(crate) fn now_micros() -> Instant {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as Instant)
}

/// The bytes of a whole object `result` gets: a local file memory-mapped
/// (the page cache's own pages: not copied into a fresh buffer the kernel
/// must first zero, which for the files a large lookup reads cost more than
/// decoding them), anything else read into memory.
async fn whole_file(result: GetResult) -> object_store::Result<Bytes> {
    let GetResult {
        payload,
        meta,
        range,
        attributes,
    } = result;
    match payload {
        GetResultPayload::File(file, path) => {
            // SAFETY: the mapped bytes cannot change while they are read. A
            // tile file gets a random name and is created once (`PutMode::Create`,
            // which the local store writes under a temporary name and renames
            // into place); nothing writes to it after, and a vacuum deletes it,
            // which leaves a mapping whole. The checksum is verified on the
            // mapped bytes themselves.
            let mapped = unsafe { memmap2::MmapOptions::new().populate().map(&file) };
            mapped
                .map(Bytes::from_owner)
                .map_err(|source| object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: format!("cannot map {}: {source}", path.display()).into(),
                })
        }
        payload => {
            let result = GetResult {
                payload,
                meta,
                range,
                attributes,
            };
            result.bytes().await
        }
    }
}
