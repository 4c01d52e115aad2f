//! Hot reload: the policy file and every file it names are watched through their folders —
//! both the folder of the path as written and the folder its symlinks resolve to — so an
//! edit in place, a save by rename and a symlink swap (a Kubernetes ConfigMap update renames
//! `..data`, never touching `proxy.yaml` itself) are all seen. Any event in those folders is
//! debounced, then the *contents* of the watched files are compared with the last ones read:
//! only a real change reloads, so unrelated files in the folder cost one read, never a reload.
//! SIGHUP always reloads. A valid policy is swapped in atomically; an invalid one is logged
//! with line:column and counted in `gatehouse_policy_reload_total{result="error"}` while the
//! running policy keeps serving. In-flight requests and open WebSockets keep the snapshot
//! they started with.

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

/// The longest a reload waits for the files to be quiet.
const MAX_SETTLE: Duration = Duration::from_secs(2);

/// Whether an event on `path` may have changed what the policy reads.
fn is_relevant(path: &Path, watched: &HashSet<PathBuf>) -> bool {
    if watched.contains(path) {
        return true;
    }
    let dotdot = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".."));
    let symlink = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    dotdot || symlink
}

/// The reload background service.
pub struct Reloader {
    path: PathBuf,
    shared: Arc<Shared>,
    /// Digest of the watched files' contents when last read.
    seen: Mutex<Option<Vec<u8>>>,
}

impl Reloader {
    /// Watches `path` (the policy file) for the shared state.
    pub fn new(path: PathBuf, shared: Arc<Shared>) -> Self {
        let path = std::path::absolute(&path).unwrap_or(path);
        let r = Reloader {
            path,
            shared,
            seen: Mutex::new(None),
        };
        let digest = r.digest();
        if let Ok(mut seen) = r.seen.lock() {
            *seen = Some(digest);
        }
        r
    }

    /// A digest of the contents of every watched file (symlinks followed; a missing file
    /// counts as such), so a change is told apart from an event that changed nothing.
    fn digest(&self) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        let mut files: Vec<PathBuf> = self.watched().into_iter().collect();
        files.sort();
        let mut h = Sha256::new();
        for f in files {
            h.update(f.as_os_str().as_encoded_bytes());
            match std::fs::read(&f) {
                Ok(bytes) => {
                    h.update([1]);
                    h.update((bytes.len() as u64).to_le_bytes());
                    h.update(&bytes);
                }
                Err(_) => h.update([0]),
            }
        }
        h.finalize().to_vec()
    }

    /// Reloads if a watched file's contents changed since they were last read.
    fn reload_if_changed(&self) {
        let now = self.digest();
        let changed = match self.seen.lock() {
            Ok(mut seen) => {
                let changed = seen.as_ref() != Some(&now);
                *seen = Some(now);
                changed
            }
            Err(_) => true,
        };
        if changed {
            self.reload();
        } else {
            tracing::debug!("files in the watched folders changed, the policy's did not");
        }
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
                let recheck = self.shared.swap(policy);
                if recheck.checked > 0 {
                    tracing::info!(
                        sockets = recheck.checked,
                        closed = recheck.closed,
                        micros = recheck.micros as u64,
                        "open WebSockets re-checked against the new policy"
                    );
                }
                // The new policy may name other files: remember their contents as read now.
                if let Ok(mut seen) = self.seen.lock() {
                    *seen = Some(self.digest());
                }
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

/// The folders to watch: each file's own, and the folder its symlinks resolve to.
fn dirs(files: &HashSet<PathBuf>) -> HashSet<PathBuf> {
    let mut out = HashSet::new();
    for f in files {
        if let Some(p) = f.parent() {
            out.insert(p.to_path_buf());
        }
        if let Some(p) = std::fs::canonicalize(f)
            .ok()
            .and_then(|c| c.parent().map(Path::to_path_buf))
        {
            out.insert(p);
        }
    }
    out
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        // An event is a candidate when it touches a watched file, or a symlink or `..name`
        // entry in a watched folder (a symlink swap renames names we never read, such as a
        // ConfigMap's `..data`); the content digest then decides whether anything changed.
        // Other files in the folders (a log written beside the policy) are ignored, so they
        // can neither cause reloads nor keep the debounce from settling.
        let files = Arc::new(Mutex::new(self.watched()));
        let filter = files.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                if ev.kind.is_access() {
                    return;
                }
                let relevant = filter
                    .lock()
                    .map(|set| ev.paths.iter().any(|p| is_relevant(p, &set)))
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
                    // Debounce: wait until the files have been quiet for a moment (bounded, so
                    // a stream of events cannot postpone a reload for ever).
                    let settle = tokio::time::Instant::now() + MAX_SETTLE;
                    while tokio::time::Instant::now() < settle {
                        match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                            Ok(Some(())) => continue,
                            _ => break,
                        }
                    }
                    self.reload_if_changed();
                }
                _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending::<()>().await } } => {
                    tracing::info!("SIGHUP: reloading the policy");
                    if let Ok(mut seen) = self.seen.lock() {
                        *seen = Some(self.digest());
                    }
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
