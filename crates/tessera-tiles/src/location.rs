//! Opening the object store a tile-store URL names.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use datafusion::common::{Result, plan_datafusion_err, plan_err};
use datafusion::object_store::ObjectStore;
use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::memory::InMemory;
use datafusion::object_store::path::Path;

/// In-memory stores by name, shared by every open of the same `memory://name` in this process.
static MEMORY_STORES: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> =
    LazyLock::new(Default::default);

/// The store and root path for `url`: a local folder (a plain path or
/// `file:///…`, created when missing) or `memory://name` (kept in this
/// process, shared by every open of the same name; for tests and trials).
pub fn open_object_store(url: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let url = url.trim();
    if url.is_empty() {
        return plan_err!("the tile store URL is empty: use a folder such as ./tiles, file:///data/tiles or s3://bucket/prefix");
    }
    if let Some(name) = url.strip_prefix("memory://") {
        let mut stores = MEMORY_STORES
            .lock()
            .map_err(|_| plan_datafusion_err!("the in-memory tile stores were poisoned by a panic"))?;
        let store = stores.entry(name.to_string()).or_default();
        return Ok((Arc::clone(store) as Arc<dyn ObjectStore>, Path::from("")));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        return open_s3(rest);
    }
    let folder = url.strip_prefix("file://").unwrap_or(url);
    if let Some((scheme, _)) = folder.split_once("://") {
        return plan_err!(
            "unsupported tile store URL scheme '{scheme}' in '{url}': use a folder, file:///…, s3://bucket/prefix or memory://name"
        );
    }
    std::fs::create_dir_all(folder)
        .map_err(|e| plan_datafusion_err!("cannot create the tile store folder '{folder}': {e}"))?;
    let store = LocalFileSystem::new_with_prefix(folder)
        .map_err(|e| plan_datafusion_err!("cannot open the tile store folder '{folder}': {e}"))?;
    Ok((Arc::new(store), Path::from("")))
}

fn open_s3(rest: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
    plan_err!("s3://{rest}: this build has no S3 support")
}
