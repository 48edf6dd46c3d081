//! Opening the object store a tile-store URL names.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use datafusion::common::{Result, plan_datafusion_err, plan_err};
use datafusion::object_store::ObjectStore;
use datafusion::object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
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
        return plan_err!(
            "the tile store URL is empty: use a folder such as ./tiles, file:///data/tiles or s3://bucket/prefix"
        );
    }
    if let Some(name) = url.strip_prefix("memory://") {
        let mut stores = MEMORY_STORES.lock().map_err(|_| {
            plan_datafusion_err!("the in-memory tile stores were poisoned by a panic")
        })?;
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

/// `s3://bucket/prefix[?key=value&…]`, configured by the usual `AWS_*`
/// environment variables (credentials, `AWS_REGION`, `AWS_ENDPOINT` for an
/// S3-compatible server; plain `http://` endpoints are allowed), which
/// query parameters override with object_store's S3 option names, e.g.
/// `s3://tiles/prod?endpoint=http://127.0.0.1:9000&region=us-east-1`.
fn open_s3(rest: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
    if bucket.is_empty() {
        return plan_err!("s3://{rest}: the URL names no bucket; use s3://bucket/prefix");
    }
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let mut endpoint = std::env::var("AWS_ENDPOINT")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "endpoint" || key == "aws_endpoint" {
            endpoint = Some(value.to_string());
            continue;
        }
        let config_key: AmazonS3ConfigKey = key.parse().map_err(|_| {
            plan_datafusion_err!("s3://{location}: unknown S3 option '{key}' in the URL")
        })?;
        builder = builder.with_config(config_key, value);
    }
    if let Some(endpoint) = endpoint {
        if endpoint.starts_with("http://") {
            builder = builder.with_allow_http(true);
        }
        builder = builder.with_endpoint(endpoint);
    }
    let store = builder
        .build()
        .map_err(|e| plan_datafusion_err!("cannot open s3://{location}: {e}"))?;
    Ok((Arc::new(store), Path::from(prefix.trim_matches('/'))))
}
