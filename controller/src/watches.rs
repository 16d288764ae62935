//! One watch per kind, each feeding the shared [`Index`] and the work queue.
//!
//! Watches run on every replica, leader or not, so a standby that takes over has warm caches.
//! A re-list (after a disconnect or an expired resourceVersion) ends with `InitDone`: objects
//! the index knew but the list no longer has were deleted while we were not watching, and are
//! removed then. Errors are retried by the watcher's own backoff; an object that does not
//! convert is logged and skipped (see `index`), never ending the watch.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cloudgate_translate::model::ObjKey;
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use tokio::sync::watch;

use crate::index::{obj_key, Index, Triggers, Watched, WorkKey};
use crate::queue::WorkQueue;

/// Counts watches still doing their first list; flips `synced` when the last one is done.
pub struct SyncTracker {
    pending: AtomicUsize,
    synced: watch::Sender<bool>,
}

impl SyncTracker {
    pub fn new(watches: usize, synced: watch::Sender<bool>) -> Self {
        SyncTracker { pending: AtomicUsize::new(watches), synced }
    }

    fn done_one(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.synced.send_replace(true);
            tracing::info!("all caches synced");
        }
    }
}

pub struct WatchCtx {
    pub index: Arc<Mutex<Index>>,
    pub queue: Arc<WorkQueue<WorkKey>>,
    pub sync: Arc<SyncTracker>,
}

pub async fn run(client: Client, kind: Watched, ar: ApiResource, ctx: Arc<WatchCtx>) {
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut known: BTreeSet<ObjKey> = BTreeSet::new();
    let mut relisted: Option<BTreeSet<ObjKey>> = None;
    let mut first_sync = true;
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(kind = kind.kind(), error = %e, "watch error; retrying with backoff");
                continue;
            }
        };
        let triggers = match ev {
            Event::Init => {
                relisted = Some(BTreeSet::new());
                Triggers::new()
            }
            Event::InitApply(obj) => {
                let k = obj_key(&obj);
                if let Some(seen) = relisted.as_mut() {
                    seen.insert(k.clone());
                }
                known.insert(k);
                apply(&ctx, kind, &obj)
            }
            Event::InitDone => {
                let seen = relisted.take().unwrap_or_default();
                let gone: Vec<ObjKey> = known.difference(&seen).cloned().collect();
                let mut t = Triggers::new();
                {
                    let mut ix = ctx.index.lock().unwrap_or_else(|p| p.into_inner());
                    for k in &gone {
                        tracing::debug!(kind = kind.kind(), object = %k, "deleted while not watching");
                        t.extend(ix.delete(kind, k));
                    }
                }
                known = seen;
                if first_sync {
                    first_sync = false;
                    tracing::debug!(kind = kind.kind(), objects = known.len(), "initial list done");
                    ctx.sync.done_one();
                }
                t
            }
            Event::Apply(obj) => {
                known.insert(obj_key(&obj));
                apply(&ctx, kind, &obj)
            }
            Event::Delete(obj) => {
                let k = obj_key(&obj);
                known.remove(&k);
                ctx.index.lock().unwrap_or_else(|p| p.into_inner()).delete(kind, &k)
            }
        };
        for t in triggers {
            ctx.queue.add(t);
        }
    }
    tracing::error!(kind = kind.kind(), "watch stream ended");
}

fn apply(ctx: &WatchCtx, kind: Watched, obj: &DynamicObject) -> Triggers {
    let result = ctx.index.lock().unwrap_or_else(|p| p.into_inner()).apply(kind, obj);
    match result {
        Ok(t) => t,
        Err(why) => {
            tracing::warn!(kind = kind.kind(), object = %obj_key(obj), error = %why, "object does not fit its schema; skipped");
            Triggers::new()
        }
    }
}
