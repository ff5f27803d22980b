//! The rcomet binary: mimalloc as the global allocator, then hand over to the library. No logic.
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {}
