//! Garbage collection racing bundle creation, on a real local store: first the worst
//! interleavings, forced through the collection's hooks (a bundle created between the mark and
//! the condemnation, after the condemnation, and just before the deletions); then two replicas
//! on one store, each creating bundles from fresh and old blobs while each collects in a loop
//! with no grace at all, for thousands of interleavings. Afterwards every live bundle's blobs
//! exist and download verified.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::FutureExt;
use serde_json::{Value, json};
use sparkstage_api::Digest;
use sparkstage_server::clock::ManualClock;
use sparkstage_server::lifecycle::LifecycleSettings;
use sparkstage_server::lifecycle::gc::{Hook, Hooks};
use sparkstage_server::storage::{self, OpenOptions, Storage};
use sparkstage_server::{AppState, Injected, Settings, app, ensure_layout};
use sparkstage_tests::conformance::{call, post, put_blob, test_bytes};

fn local(dir: &tempfile::TempDir) -> Result<Storage> {
    Ok(storage::open(
        dir.path().to_str().context("utf-8 path")?,
        &OpenOptions::default(),
    )?)
}

fn settings(grace: Duration) -> Settings {
    Settings {
        // Another replica's deletion is seen at once.
        bundle_cache_ttl: Duration::from_millis(1),
        lifecycle: LifecycleSettings {
            gc_grace: grace,
            ..LifecycleSettings::default()
        },
        ..Settings::default()
    }
}

/// Creates a bundle of `blobs`; the answer's status and body.
async fn create(app: &Router, blobs: &[&Vec<u8>]) -> Result<(StatusCode, Value)> {
    let entries: Vec<Value> = blobs
        .iter()
        .enumerate()
        .map(|(i, data)| {
            json!({"name": format!("{i}.jar"), "digest": Digest::of(data), "size": data.len(), "kind": "jar"})
        })
        .collect();
    post(app, "/v1/bundles", json!({"entries": entries, "ttl": "1h"})).await
}

/// Downloads every blob of bundle `id` and checks its digest.
async fn verify(app: &Router, id: &str, token: &str, blobs: &[Digest]) -> Result<()> {
    for digest in blobs {
        let get = Request::get(format!("/v1/bundles/{id}/blobs/{digest}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())?;
        let (status, _, body) = call(app, get).await?;
        ensure!(
            status == StatusCode::OK && Digest::of(&body) == *digest,
            "bundle {id}: {digest} answers {status}"
        );
    }
    Ok(())
}

/// A hook that runs `step` with the app once it exists.
fn hook<F>(app: &Arc<OnceLock<Router>>, step: F) -> Hook
where
    F: Fn(Router) -> futures::future::BoxFuture<'static, ()> + Send + Sync + 'static,
{
    let app = Arc::clone(app);
    let step = Arc::new(step);
    Arc::new(move || {
        let app = app.get().cloned();
        let step = Arc::clone(&step);
        async move {
            if let Some(app) = app {
                step(app).await;
            }
        }
        .boxed()
    })
}

/// A server on `storage` whose collection runs `hooks`, with `old` uploaded and two hours old
/// (older than the grace, referenced by nothing): one collection runs; the state, the app and
/// what the collection answered.
async fn collect_with_hooks(
    storage: &Storage,
    clock: &ManualClock,
    hooks: Hooks,
    slot: &OnceLock<Router>,
    old: &[u8],
) -> Result<(AppState, Router, sparkstage_api::lifecycle::GcResponse)> {
    let state = AppState::with(
        storage,
        settings(Duration::from_secs(3600)),
        None,
        Injected {
            clock: Arc::new(clock.clone()),
            gc_hooks: hooks,
            ..Injected::default()
        },
    );
    let app = app(state.clone());
    let _ = slot.set(app.clone());
    ensure!(put_blob(&app, old).await?.0 == StatusCode::CREATED);
    clock.advance(Duration::from_secs(2 * 3600));
    let report = state.lifecycle.run_once(false).await?;
    Ok((state, app, report))
}

/// What happened to a bundle created inside a hook.
type Outcomes = Arc<Mutex<Vec<(StatusCode, Value)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_created_at_the_worst_moments_keep_their_blobs_or_are_refused() -> Result<()> {
    for point in ["after_mark", "after_condemn", "before_delete"] {
        let dir = tempfile::tempdir()?;
        let storage = local(&dir)?;
        ensure_layout(storage.store.as_ref()).await?;
        let clock = ManualClock::new(chrono::Utc::now());
        let old = test_bytes(50_000, 1);
        let slot: Arc<OnceLock<Router>> = Arc::default();
        let outcomes: Outcomes = Arc::default();
        let step = {
            let (old, outcomes) = (old.clone(), Arc::clone(&outcomes));
            hook(&slot, move |app| {
                let (old, outcomes) = (old.clone(), Arc::clone(&outcomes));
                async move {
                    let answer = create(&app, &[&old]).await.unwrap_or_default();
                    if let Ok(mut o) = outcomes.lock() {
                        o.push(answer);
                    }
                }
                .boxed()
            })
        };
        let mut hooks = Hooks::default();
        match point {
            "after_mark" => hooks.after_mark = Some(step),
            "after_condemn" => hooks.after_condemn = Some(step),
            _ => hooks.before_delete = Some(step),
        }
        // The blob is old and nothing references it: a candidate.
        let (state, app, report) = collect_with_hooks(&storage, &clock, hooks, &slot, &old).await?;
        let (status, body) = outcomes
            .lock()
            .ok()
            .and_then(|o| o.first().cloned())
            .context("the hook ran")?;
        let stored = state.blobs.size(&Digest::of(&old)).await?.is_some();
        match point {
            // Created before the condemnation: the second look sees it, the blob stays.
            "after_mark" => {
                ensure!(status == StatusCode::CREATED, "{point}: {status} {body}");
                ensure!(stored && report.blobs_deleted == 0, "{point}: {report:?}");
                let id = body["id"].as_str().context("id")?;
                let token = body["token"].as_str().context("token")?;
                verify(&app, id, token, &[Digest::of(&old)]).await?;
            }
            // Created while condemned: refused, the blob is to be uploaded again; once it is,
            // the bundle is created.
            _ => {
                ensure!(
                    status == StatusCode::CONFLICT && body["missing"] == json!([Digest::of(&old)]),
                    "{point}: {status} {body}"
                );
                ensure!(!stored && report.blobs_deleted == 1, "{point}: {report:?}");
                ensure!(put_blob(&app, &old).await?.0 == StatusCode::CREATED);
                let (status, body) = create(&app, &[&old]).await?;
                ensure!(status == StatusCode::CREATED, "{point}: {status} {body}");
            }
        }
        // No record is left behind by the refused creation.
        let bundles = state.bundles.list().await?;
        ensure!(bundles.len() == 1, "{point}: {} bundles", bundles.len());
    }
    Ok(())
}

/// An upload of a blob that a collection has condemned waits until the collection is done, then
/// stores the blob anew, and a bundle of it is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_of_a_condemned_blob_waits_and_stores_it_anew() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = local(&dir)?;
    ensure_layout(storage.store.as_ref()).await?;
    let clock = ManualClock::new(chrono::Utc::now());
    let old = test_bytes(40_000, 2);
    let slot: Arc<OnceLock<Router>> = Arc::default();
    let upload: Arc<Mutex<Option<tokio::task::JoinHandle<Result<StatusCode>>>>> = Arc::default();
    let step = {
        let (old, upload) = (old.clone(), Arc::clone(&upload));
        hook(&slot, move |app| {
            let (old, upload) = (old.clone(), Arc::clone(&upload));
            async move {
                // Started while condemned; the collection goes on while it waits.
                let task = tokio::spawn(async move { Ok(put_blob(&app, &old).await?.0) });
                tokio::time::sleep(Duration::from_millis(300)).await;
                if let Ok(mut u) = upload.lock() {
                    *u = Some(task);
                }
            }
            .boxed()
        })
    };
    let hooks = Hooks {
        before_delete: Some(step),
        ..Hooks::default()
    };
    let (_, app, report) = collect_with_hooks(&storage, &clock, hooks, &slot, &old).await?;
    ensure!(report.blobs_deleted == 1, "{report:?}");
    let task = upload
        .lock()
        .ok()
        .and_then(|mut u| u.take())
        .context("the hook started the upload")?;
    let status = task.await??;
    ensure!(status == StatusCode::CREATED, "stored anew: {status}");
    let (status, body) = create(&app, &[&old]).await?;
    ensure!(status == StatusCode::CREATED, "{status} {body}");
    Ok(())
}

/// Creates a bundle of `blobs` on `app`, uploading what it is told is missing, as a client does.
async fn create_uploading(app: &Router, blobs: &[&Vec<u8>]) -> Result<(String, String)> {
    for _ in 0..20 {
        let (status, body) = create(app, blobs).await?;
        if status == StatusCode::CREATED {
            return Ok((
                body["id"].as_str().context("id")?.to_owned(),
                body["token"].as_str().context("token")?.to_owned(),
            ));
        }
        ensure!(status == StatusCode::CONFLICT, "{status} {body}");
        let missing: Vec<Digest> = serde_json::from_value(body["missing"].clone())?;
        for data in blobs.iter().filter(|d| missing.contains(&Digest::of(d))) {
            let (status, body) = put_blob(app, data).await?;
            ensure!(status.is_success(), "{status} {body}");
        }
    }
    anyhow::bail!("no bundle after 20 attempts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_creating_and_collecting_at_once_never_break_a_bundle() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = local(&dir)?;
    ensure_layout(storage.store.as_ref()).await?;
    // No grace: every blob not referenced at the mark is a candidate, fresh uploads included.
    let replicas: Vec<AppState> = (0..2)
        .map(|_| AppState::new(&storage, settings(Duration::ZERO), None))
        .collect();
    let apps: Vec<Router> = replicas.iter().map(|s| app(s.clone())).collect();
    let pool: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..24)
            .map(|i| test_bytes(1000 + (i * 397) % 3000, 100 + i as u64))
            .collect(),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collections: Vec<_> = replicas
        .iter()
        .map(|state| {
            let (lifecycle, stop) = (Arc::clone(&state.lifecycle), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut runs = 0u64;
                let mut deleted = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let report = lifecycle.run_once(false).await?;
                    deleted += report.blobs_deleted;
                    runs += 1;
                }
                Ok::<_, anyhow::Error>((runs, deleted))
            })
        })
        .collect();
    // Four creators per replica; each keeps its last bundles, deletes older ones (their blobs
    // become garbage), and checks its live bundles as it goes.
    let started = Instant::now();
    let creators: Vec<_> = (0..8)
        .map(|c| {
            let (app, pool) = (apps[c % 2].clone(), Arc::clone(&pool));
            tokio::spawn(async move {
                let mut live: Vec<(String, String, Vec<Digest>)> = Vec::new();
                let mut x = 0x9E37_79B9u64 + c as u64;
                let mut created = 0;
                while started.elapsed() < Duration::from_secs(12) || created < 50 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let picked: Vec<&Vec<u8>> = (0..1 + x % 3)
                        .map(|k| &pool[((x >> (8 * k)) % pool.len() as u64) as usize])
                        .collect();
                    let mut unique: HashMap<Digest, &Vec<u8>> = HashMap::new();
                    for data in picked {
                        unique.insert(Digest::of(data), data);
                    }
                    let blobs: Vec<&Vec<u8>> = unique.values().copied().collect();
                    let (id, token) = create_uploading(&app, &blobs).await?;
                    created += 1;
                    live.push((id, token, unique.keys().copied().collect()));
                    if live.len() > 3 {
                        let (id, token, _) = live.remove(0);
                        let delete = Request::delete(format!("/v1/bundles/{id}"))
                            .header(header::AUTHORIZATION, format!("Bearer {token}"))
                            .body(Body::empty())?;
                        ensure!(call(&app, delete).await?.0 == StatusCode::NO_CONTENT);
                    }
                    for (id, token, digests) in &live {
                        verify(&app, id, token, digests).await?;
                    }
                }
                Ok::<_, anyhow::Error>((created, live))
            })
        })
        .collect();
    let mut created = 0;
    let mut live = Vec::new();
    for creator in creators {
        let (n, l) = creator.await??;
        created += n;
        live.extend(l);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut runs = 0;
    let mut deleted = 0;
    for collection in collections {
        let (r, d) = collection.await??;
        runs += r;
        deleted += d;
    }
    // After the storm, on either replica: every live bundle downloads verified.
    for (i, (id, token, digests)) in live.iter().enumerate() {
        verify(&apps[i % 2], id, token, digests).await?;
    }
    eprintln!(
        "{created} bundles created, {runs} collections deleted {deleted} blobs, {} bundles live \
         and verified",
        live.len()
    );
    ensure!(
        created >= 400 && runs >= 100 && deleted >= 100,
        "too little happened to matter"
    );
    Ok(())
}

/// A tmpfs of `size`, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when this machine does not let us mount (not root); CI runs as root.
    fn mount(size: &str) -> Result<Option<Self>> {
        let dir = tempfile::tempdir()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()?;
        if !mounted.success() {
            let uid = std::process::Command::new("id").arg("-u").output()?.stdout;
            ensure!(
                String::from_utf8_lossy(&uid).trim() != "0",
                "root could not mount a tmpfs"
            );
            return Ok(None);
        }
        Ok(Some(Self { dir }))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Files under `root`, recursively, with their sizes.
fn files(root: &std::path::Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            } else {
                let name = entry.path().strip_prefix(root)?.display().to_string();
                out.push((name, entry.metadata()?.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_and_leaves_nothing_partial() -> Result<()> {
    let Some(tmpfs) = Tmpfs::mount("6m")? else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return Ok(());
    };
    let storage = storage::open(
        tmpfs.dir.path().to_str().context("utf-8 path")?,
        &OpenOptions::default(),
    )?;
    ensure_layout(storage.store.as_ref()).await?;
    let state = AppState::new(&storage, Settings::default(), None);
    let app = app(state.clone());
    let before = files(tmpfs.dir.path())?;
    // 8 MiB do not fit in 6 MiB: with and without a declared size.
    let big = test_bytes(8 << 20, 3);
    let (status, body) = put_blob(&app, &big).await?;
    ensure!(
        status == StatusCode::INSUFFICIENT_STORAGE && body["code"] == "storage_full",
        "{status} {body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    ensure!(message.contains("no space left"), "{message}");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(1 << 20).map(|c| Ok(c.to_vec())).collect();
    let put = Request::put(format!("/v1/blobs/{}", Digest::of(&big)))
        .body(Body::from_stream(futures::stream::iter(chunks)))?;
    let (status, _, body) = call(&app, put).await?;
    ensure!(
        status == StatusCode::INSUFFICIENT_STORAGE,
        "{status} {}",
        String::from_utf8_lossy(&body)
    );
    // Nothing partial: the directory holds what it held.
    ensure!(
        files(tmpfs.dir.path())? == before,
        "{:?}",
        files(tmpfs.dir.path())?
    );
    // The space was given back: a blob that fits is stored.
    let small = test_bytes(1 << 20, 4);
    let (status, body) = put_blob(&app, &small).await?;
    ensure!(status == StatusCode::CREATED, "{status} {body}");
    drop(app);
    drop(state);
    drop(storage);
    Ok(())
}
