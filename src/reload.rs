//! Hot reload: the policy file and every file it names are watched (their folders, so editors
//! that save by rename are seen), changes are debounced, and SIGHUP forces a reload. A valid
//! policy is swapped in atomically; an invalid one is logged with line:column and counted in
//! `gatehouse_policy_reload_total{result="error"}` while the running policy keeps serving.
//! In-flight requests and open WebSockets keep the snapshot they started with.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use notify::{RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config;
use crate::runtime::Shared;

/// How long the files must be quiet before a reload: editors write in several steps.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The reload background service.
pub struct Reloader {
    path: PathBuf,
    shared: Arc<Shared>,
}

impl Reloader {
    /// Watches `path` (the policy file) for the shared state.
    pub fn new(path: PathBuf, shared: Arc<Shared>) -> Self {
        let path = std::path::absolute(&path).unwrap_or(path);
        Reloader { path, shared }
    }

    /// Reloads now; returns whether the new policy was swapped in.
    pub fn reload(&self) -> bool {
        let before = self.shared.policy();
        match config::load(&self.path) {
            Ok(policy) => {
                if policy.server.listeners != before.server.listeners
                    || policy.server.admin != before.server.admin
                {
                    tracing::warn!(
                        "listener addresses changed in the policy: they take effect on restart"
                    );
                }
                self.shared.swap(policy);
                self.shared.metrics.reloads.with_label_values(&["ok"]).inc();
                tracing::info!(file = %self.path.display(), "policy reloaded");
                true
            }
            Err(errors) => {
                self.shared
                    .metrics
                    .reloads
                    .with_label_values(&["error"])
                    .inc();
                tracing::error!(file = %self.path.display(), "policy reload failed; the running policy stays in force:\n{errors}");
                false
            }
        }
    }

    fn watched(&self) -> HashSet<PathBuf> {
        let p = self.shared.policy();
        let mut set: HashSet<PathBuf> = p
            .watched_files
            .iter()
            .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone()))
            .collect();
        set.insert(self.path.clone());
        set
    }
}

fn dirs(files: &HashSet<PathBuf>) -> HashSet<PathBuf> {
    files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect()
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let files = Arc::new(Mutex::new(self.watched()));
        let filter = files.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                if ev.kind.is_access() {
                    return;
                }
                let relevant = filter
                    .lock()
                    .map(|set| ev.paths.iter().any(|p| set.contains(p)))
                    .unwrap_or(true);
                if relevant {
                    let _ = tx.send(());
                }
            }
        });
        let mut watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(error = %e, "cannot watch the policy file; reload with SIGHUP");
                None
            }
        };
        let mut watched_dirs = HashSet::new();
        let mut rewatch = |watcher: &mut Option<notify::RecommendedWatcher>,
                           set: &HashSet<PathBuf>| {
            if let Some(w) = watcher {
                for d in dirs(set) {
                    if !watched_dirs.contains(&d) {
                        match w.watch(&d, RecursiveMode::NonRecursive) {
                            Ok(()) => {
                                watched_dirs.insert(d);
                            }
                            Err(e) => {
                                tracing::warn!(dir = %d.display(), error = %e, "cannot watch folder")
                            }
                        }
                    }
                }
            }
        };
        if let Ok(set) = files.lock() {
            rewatch(&mut watcher, &set);
        }
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP");
                None
            }
        };
        loop {
            tokio::select! {
                got = rx.recv() => {
                    if got.is_none() { break; }
                    // Debounce: wait until the files have been quiet for a moment.
                    while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
                    self.reload();
                }
                _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending::<()>().await } } => {
                    tracing::info!("SIGHUP: reloading the policy");
                    self.reload();
                }
                _ = shutdown.changed() => break,
            }
            let set = self.watched();
            rewatch(&mut watcher, &set);
            if let Ok(mut f) = files.lock() {
                *f = set;
            }
        }
    }
}
