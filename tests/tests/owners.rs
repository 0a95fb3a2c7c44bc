//! Owner tracking through `kube`'s real client and watcher, against the pods' watch recorded from
//! a real kube-apiserver (`tests/fixtures/k8s/api/15-*`, `16-*`, `11-*`, `10-*`), served by a
//! loopback double that releases the recorded lines one at a time; and the lifecycle deciding
//! from it, with a clock the test moves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use sparkstage_api::bundles::Owner;
use sparkstage_server::clock::{Clock, ManualClock};
use sparkstage_server::lifecycle::kube_owners::{KubeOwners, WatchSpec};
use sparkstage_server::lifecycle::owners::{OwnerState, Owners};
use sparkstage_server::storage::{self, OpenOptions};
use sparkstage_server::{AppState, Injected, Settings, app, ensure_layout};
use sparkstage_tests::conformance::{call, post, put_blob, test_bytes};
use sparkstage_tests::kube_double::{KubeDouble, Recorded, recorded_watch};

/// The recorded pod carries `fixture-watch=true` in namespace `fixtures`: tracking follows that
/// label here as it follows `sparkstage.io/bundle` in the server.
const LABEL: &str = "fixture-watch";

fn owner(namespace: &str) -> Owner {
    Owner {
        namespace: Some(namespace.to_owned()),
        labels: BTreeMap::from([(LABEL.to_owned(), "true".to_owned())]),
        spark_app_id: None,
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let started = Instant::now();
    while !done() {
        ensure!(started.elapsed() < Duration::from_secs(15), "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// A bundle of one small blob owned by `owner`; its id and token.
async fn bundle(app: &Router, owner: &Owner, seed: u64) -> Result<(String, String)> {
    let data = test_bytes(1000, seed);
    ensure!(put_blob(app, &data).await?.0 == StatusCode::CREATED);
    let entries = json!([{"name": "a.jar", "digest": sparkstage_api::Digest::of(&data), "size": 1000, "kind": "jar"}]);
    let (status, body) = post(
        app,
        "/v1/bundles",
        json!({"entries": entries, "owner": owner, "ttl": "1d"}),
    )
    .await?;
    ensure!(status == StatusCode::CREATED, "{status} {body}");
    Ok((
        body["id"].as_str().context("id")?.to_owned(),
        body["token"].as_str().context("token")?.to_owned(),
    ))
}

/// A pod reads the manifest: the bundle's first download.
async fn download(app: &Router, id: &str, token: &str) -> Result<()> {
    let get = Request::get(format!("/v1/bundles/{id}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())?;
    let (status, _, _) = call(app, get).await?;
    ensure!(status == StatusCode::OK, "{status}");
    Ok(())
}

/// One sweep now: the ids deleted, with their reasons.
async fn sweep(state: &AppState) -> Result<Vec<(String, String)>> {
    let report = state.lifecycle.run_once(false).await?;
    Ok(report
        .bundles
        .into_iter()
        .map(|b| (b.id, b.reason.to_string()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_tracking_follows_the_recorded_watch_and_deletes_only_what_it_sees() -> Result<()> {
    let double = KubeDouble::start("15-pods-list-before-watch").await?;
    double.namespace_missing("no-such-namespace");
    double.hold_lists();
    let lines = recorded_watch()?;
    ensure!(lines.len() == 6, "{} recorded lines", lines.len());
    let watch = double.next_watch();
    let clock = ManualClock::new(chrono::Utc::now());
    let spec = WatchSpec {
        selector: LABEL.to_owned(),
        bundle_label: LABEL.to_owned(),
    };
    let (owners, _task) = KubeOwners::start(double.client()?, spec, Arc::new(clock.clone()));
    let fixtures = owner("fixtures");
    // The fork's form: no bundle label, matched by its labels (the recorded pod gets `extra=1`
    // in its second MODIFIED); an owner without labels never matches anything.
    let fork = Owner {
        namespace: Some("fixtures".into()),
        labels: BTreeMap::from([("extra".to_owned(), "1".to_owned())]),
        spark_app_id: None,
    };
    let unlabelled = Owner {
        labels: BTreeMap::new(),
        ..fork.clone()
    };

    // Before the first list is complete, the cluster cannot be seen.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ensure!(owners.state(&fixtures) == OwnerState::Unknown);
    let synced_at = clock.now();
    double.open_lists();
    until("the empty list is seen", || {
        owners.state(&fixtures) == OwnerState::Gone { since: synced_at }
    })
    .await?;

    let storage = storage::open("memory://", &OpenOptions::default())?;
    ensure_layout(storage.store.as_ref()).await?;
    let state = AppState::with(
        &storage,
        Settings::default(),
        None,
        Injected {
            clock: Arc::new(clock.clone()),
            owners: Arc::clone(&owners) as Arc<dyn Owners>,
            ..Injected::default()
        },
    );
    let app = app(state.clone());
    let (unused, _) = bundle(&app, &fixtures, 1).await?;
    let (used, used_token) = bundle(&app, &fixtures, 2).await?;

    // ADDED: the pod exists; its bundle is downloaded.
    watch.send(lines[0].clone())?;
    until("ADDED is seen", || {
        owners.state(&fixtures) == OwnerState::Pods(1)
    })
    .await?;
    ensure!(owners.state(&fork) == OwnerState::Gone { since: synced_at });
    ensure!(owners.state(&unlabelled) == OwnerState::Unknown);
    download(&app, &used, &used_token).await?;
    // Past the initial access timeout: a bundle with a pod is kept, downloaded or not.
    clock.advance(Duration::from_secs(31 * 60));
    ensure!(sweep(&state).await?.is_empty());
    // Three MODIFIED (an annotation, a label, deletionTimestamp set): still one pod.
    for line in &lines[1..4] {
        watch.send(line.clone())?;
    }
    until("the new label is seen", || {
        owners.state(&fork) == OwnerState::Pods(1)
    })
    .await?;
    ensure!(owners.state(&fixtures) == OwnerState::Pods(1));

    // DELETED, then a BOOKMARK: no pod since now.
    clock.advance(Duration::from_secs(60));
    let deleted_at = clock.now();
    watch.send(lines[4].clone())?;
    watch.send(lines[5].clone())?;
    until("DELETED is seen", || {
        owners.state(&fixtures) == OwnerState::Gone { since: deleted_at }
    })
    .await?;
    ensure!(owners.state(&fork) == OwnerState::Gone { since: deleted_at });
    // The never-downloaded bundle goes at once (created 32 min ago); the downloaded one waits
    // for the owner grace.
    ensure!(sweep(&state).await? == [(unused.clone(), "unused".to_owned())]);
    clock.advance(Duration::from_secs(4 * 60));
    ensure!(sweep(&state).await?.is_empty(), "within the owner grace");
    clock.advance(Duration::from_secs(61));
    ensure!(sweep(&state).await? == [(used, "owner_gone".to_owned())]);

    // A namespace that is gone (the recorded 404): its bundle goes at once. One the double cannot
    // tell about is not gone.
    ensure!(owners.namespace_gone("no-such-namespace").await);
    ensure!(!owners.namespace_gone("fixtures").await);
    let (orphan, _) = bundle(&app, &owner("no-such-namespace"), 3).await?;
    ensure!(sweep(&state).await? == [(orphan, "namespace_gone".to_owned())]);

    // The API refuses (the recorded 403) and the watch ends: nothing is deleted on an owner's
    // account while the cluster cannot be seen, however late it gets.
    let (waiting, _) = bundle(&app, &fixtures, 4).await?;
    double.break_with(Recorded::load("10-secret-create-forbidden")?);
    drop(watch);
    until("the failure is seen", || {
        owners.state(&fixtures) == OwnerState::Unknown
    })
    .await?;
    clock.advance(Duration::from_secs(2 * 3600));
    ensure!(sweep(&state).await?.is_empty(), "deleted while blind");
    // Mended: after the backoff the watch lists again, and the bundle nobody downloaded goes.
    let _watch = double.next_watch();
    double.mend();
    until("the list is seen again", || {
        matches!(owners.state(&fixtures), OwnerState::Gone { .. })
    })
    .await?;
    ensure!(sweep(&state).await? == [(waiting, "unused".to_owned())]);
    Ok(())
}
