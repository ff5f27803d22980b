//! The snapshot file (`server.snapshot`): read at start and split among the workers by each
//! channel's home, written at a graceful stop from every worker's hub. Writing goes to a
//! temporary file in the same directory, synced, then renamed over the old one, so a crash
//! mid-write never leaves a broken snapshot. A missing file is a first start; a foreign or
//! damaged one is refused with one log line and the server starts empty. A snapshot that was
//! read is removed, so a crash later never brings back states older than what clients saw.
//!
//! Depends on: comet (the snapshot format, homes, hubs).

use crate::comet::hub::Hub;
use crate::comet::route::home_worker;
use crate::comet::snapshot::{self, SavedChannel};
use std::io::Write;
use std::path::Path;

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

/// Writes every hub's channels to `path` (through a temporary file and a rename).
pub fn save(path: &Path, hubs: &[Hub]) {
    let channels: Vec<SavedChannel> = hubs.iter().flat_map(Hub::save).collect();
    let bytes = snapshot::encode(&channels);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
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
