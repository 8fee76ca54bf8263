//! `--save DIR`: every delivery kept as an HTTP request dump, for `replay`.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

use crate::{capture::Capture, failure::Failure};

/// Writes one file per delivery: `<run start>-<sequence>-<webhook-id>.http`, so that a
/// directory lists in arrival order.
pub struct Saver {
    dir: PathBuf,
    run: String,
    sequence: AtomicU64,
    warned: AtomicBool,
}

impl Saver {
    /// Creates `dir` if needed.
    pub fn new(dir: &Path) -> Result<Self, Failure> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Failure::bad_input(format!("cannot create --save {}: {e}", dir.display()))
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            run: chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                .format("%Y%m%dT%H%M%S")
                .to_string(),
            sequence: AtomicU64::new(1),
            warned: AtomicBool::new(false),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves `capture`; the path, or `None` (with one warning on stderr) when it cannot.
    pub fn save(&self, capture: &Capture, webhook_id: Option<&str>) -> Option<PathBuf> {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let id: String = webhook_id
            .unwrap_or("no-id")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        let path = self
            .dir
            .join(format!("{}-{sequence:05}-{id}.http", self.run));
        match std::fs::write(&path, capture.to_bytes()) {
            Ok(()) => Some(path),
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "warning: cannot save deliveries in {}: {e}",
                        self.dir.display()
                    );
                }
                None
            }
        }
    }
}
