//! comet (in progress)
