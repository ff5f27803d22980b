//! The snapshot file (`server.snapshot`): read at start and split among the workers by each
//! channel's home, written at a graceful stop from every worker's hub. Writing goes to a
//! temporary file in the same directory, synced, then renamed over the old one, so a crash
//! mid-write never leaves a broken snapshot. A missing file is a first start; a foreign or
//! damaged one is refused with one log line and the server starts empty. A snapshot that was
//! read is removed, so a crash later never brings back states older than what clients saw.
//! At start, `check_writable` tells whether the stop will be able to write it at all.
//!
//! Depends on: comet (the snapshot format, homes, hubs).

use crate::comet::hub::Hub;
use crate::comet::route::home_worker;
use crate::comet::snapshot::{self, SavedChannel};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Reads the snapshot at `path` and returns each worker's channels (index = worker id).
pub fn load(path: &Path, workers: usize) -> Vec<Vec<SavedChannel>> {
    let mut per_worker: Vec<Vec<SavedChannel>> = (0..workers).map(|_| Vec::new()).collect();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log::info!("snapshot {}: none yet, starting empty", path.display());
            return per_worker;
        }
        Err(e) => {
            log::error!(
                "snapshot {}: cannot read ({e}); starting empty",
                path.display()
            );
            return per_worker;
        }
    };
    let channels = match snapshot::decode(&bytes) {
        Ok(channels) => channels,
        Err(e) => {
            log::error!("snapshot {}: refused, {e}; starting empty", path.display());
            return per_worker;
        }
    };
    log::info!(
        "snapshot {}: {} channels restored",
        path.display(),
        channels.len()
    );
    // Used once: a crash before the next graceful stop must not bring these states back.
    if let Err(e) = std::fs::remove_file(path) {
        log::warn!(
            "snapshot {}: not removed after reading: {e}",
            path.display()
        );
    }
    for ch in channels {
        let home = home_worker(&ch.name, workers);
        if let Some(list) = per_worker.get_mut(home) {
            list.push(ch);
        }
    }
    per_worker
}

/// Puts a worker's share of the snapshot into its hub; returns how many did not fit.
pub fn restore(hub: &mut Hub, channels: &[SavedChannel]) -> usize {
    channels
        .iter()
        .filter(|ch| hub.restore(ch).is_err())
        .count()
}

/// The temporary file a snapshot is written to before it is renamed to `path`.
fn temporary(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Whether a graceful stop will be able to write the snapshot at `path`: its directory must
/// take a new file (the temporary file `save` writes, created here and removed at once). The
/// error is the warning to log at start, which names the directory and what it costs.
pub fn check_writable(path: &Path) -> Result<(), String> {
    let tmp = temporary(path);
    match std::fs::File::create(&tmp) {
        Ok(file) => {
            drop(file);
            let _ = std::fs::remove_file(&tmp);
            Ok(())
        }
        Err(e) => {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "does not exist".to_string(),
                std::io::ErrorKind::NotADirectory => "is not a directory".to_string(),
                _ => format!("is not writable ({e})"),
            };
            Err(format!(
                "snapshot {}: the directory {} {why}: the channels will not be saved at stop, \
                 so a restart loses every channel's seq and epoch",
                path.display(),
                dir.display()
            ))
        }
    }
}

/// Writes every hub's channels to `path` (through a temporary file and a rename).
pub fn save(path: &Path, hubs: &[Hub]) {
    let channels: Vec<SavedChannel> = hubs.iter().flat_map(Hub::save).collect();
    let bytes = snapshot::encode(&channels);
    let tmp = temporary(path);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    match written {
        Ok(()) => log::info!(
            "snapshot {}: {} channels saved",
            path.display(),
            channels.len()
        ),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            log::error!("snapshot {}: not written: {e}", path.display());
        }
    }
}
