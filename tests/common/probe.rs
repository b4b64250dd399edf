//! A backend wrapper for tests of concurrent paths: it can hold a sync in flight until the test
//! releases it, counts syncs of one file that overlap, records which files were memory-mapped,
//! and runs a hook at a chosen directory listing.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use statelog::backend::{Backend, DirLock, FileHandle, LockMode, ReadAt};

type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct GateState {
    /// The next sync blocks until released.
    armed: bool,
    /// The next removal of a segment file (`*.seg`) blocks until released.
    armed_remove: bool,
    held: bool,
    release: bool,
    /// Syncs running now, per file, and the most seen at once.
    inside: HashMap<PathBuf, usize>,
    max_overlap: usize,
}

/// Shared state of a [`Probe`] and its files.
#[derive(Default)]
pub struct Control {
    s: Mutex<GateState>,
    cv: Condvar,
    lists: AtomicUsize,
    hook_at: AtomicUsize,
    hook: Mutex<Option<Hook>>,
    sealed_opens: Mutex<Vec<PathBuf>>,
}

impl Control {
    /// The next `sync_data` of any file blocks (inside the call) until [`release`].
    pub fn hold_next_sync(&self) {
        let mut s = self.s.lock().unwrap();
        s.armed = true;
        s.held = false;
        s.release = false;
    }

    /// The next `remove` of a segment file blocks (inside the call) until [`release`].
    pub fn hold_next_segment_remove(&self) {
        let mut s = self.s.lock().unwrap();
        s.armed_remove = true;
        s.held = false;
        s.release = false;
    }

    /// Waits until a held sync (or segment removal) is inside its call.
    pub fn wait_held(&self) {
        let mut s = self.s.lock().unwrap();
        while !s.held {
            s = self.cv.wait(s).unwrap();
        }
    }

    /// Lets the held sync go on.
    pub fn release(&self) {
        let mut s = self.s.lock().unwrap();
        s.release = true;
        self.cv.notify_all();
    }

    /// The most syncs of one file that ran at once.
    pub fn max_overlap(&self) -> usize {
        self.s.lock().unwrap().max_overlap
    }

    /// Runs `hook` at the `n`th directory listing from now (1 = the next).
    pub fn on_list(&self, n: usize, hook: impl FnOnce() + Send + 'static) {
        self.hook_at
            .store(self.lists.load(Ordering::SeqCst) + n, Ordering::SeqCst);
        *self.hook.lock().unwrap() = Some(Box::new(hook));
    }

    /// The files opened memory-mapped, in order.
    pub fn sealed_opens(&self) -> Vec<PathBuf> {
        self.sealed_opens.lock().unwrap().clone()
    }

    /// Holds this call (inside it) until released if `armed` says it is the armed one.
    fn hold_if(&self, armed: impl FnOnce(&mut GateState) -> bool) {
        let mut s = self.s.lock().unwrap();
        if armed(&mut s) {
            s.held = true;
            self.cv.notify_all();
            while !s.release {
                s = self.cv.wait(s).unwrap();
            }
        }
    }

    fn remove(&self, path: &Path, f: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let segment = path.extension().is_some_and(|e| e == "seg");
        self.hold_if(|s| segment && std::mem::take(&mut s.armed_remove));
        f()
    }

    fn sync(&self, path: &Path, f: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        self.hold_if(|s| {
            let n = s.inside.entry(path.to_path_buf()).or_insert(0);
            *n += 1;
            let n = *n;
            s.max_overlap = s.max_overlap.max(n);
            std::mem::take(&mut s.armed)
        });
        let r = f();
        let mut s = self.s.lock().unwrap();
        if let Some(n) = s.inside.get_mut(path) {
            *n -= 1;
        }
        r
    }
}

/// A backend that forwards to another, under a test's [`Control`].
pub struct Probe {
    pub inner: Arc<dyn Backend>,
    pub control: Arc<Control>,
}

impl Probe {
    pub fn wrap_backend(inner: Arc<dyn Backend>) -> (Arc<dyn Backend>, Arc<Control>) {
        let control = Arc::new(Control::default());
        let probe = Probe {
            inner,
            control: control.clone(),
        };
        (Arc::new(probe), control)
    }
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Probe")
    }
}

struct ProbeFile {
    inner: Arc<dyn FileHandle>,
    path: PathBuf,
    control: Arc<Control>,
}

impl std::fmt::Debug for ProbeFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeFile")
    }
}

impl ReadAt for ProbeFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl FileHandle for ProbeFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.control.sync(&self.path, || self.inner.sync_data())
    }
    fn sync_all(&self) -> io::Result<()> {
        self.control.sync(&self.path, || self.inner.sync_all())
    }
    fn preallocate(&self, len: u64) -> io::Result<()> {
        self.inner.preallocate(len)
    }
}

impl Probe {
    fn wrap(&self, path: &Path, f: Arc<dyn FileHandle>) -> Arc<dyn FileHandle> {
        Arc::new(ProbeFile {
            inner: f,
            path: path.to_path_buf(),
            control: self.control.clone(),
        })
    }
}

impl Backend for Probe {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        Ok(self.wrap(path, self.inner.open(path)?))
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadAt>> {
        self.inner.open_read(path)
    }
    fn open_sealed(&self, path: &Path) -> io::Result<Arc<dyn ReadAt>> {
        self.control
            .sealed_opens
            .lock()
            .unwrap()
            .push(path.to_path_buf());
        self.inner.open_sealed(path)
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        Ok(self.wrap(path, self.inner.create(path)?))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.control.remove(path, || self.inner.remove(path))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let n = self.control.lists.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.control.hook_at.load(Ordering::SeqCst) {
            let hook = self.control.hook.lock().unwrap().take();
            if let Some(h) = hook {
                h();
            }
        }
        self.inner.list(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn lock(&self, dir: &Path, mode: LockMode) -> statelog::Result<DirLock> {
        self.inner.lock(dir, mode)
    }
}
