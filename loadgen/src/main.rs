//! rcomet-loadgen: load generator for iComet-compatible servers (filled in by its own issue).
fn main() {
    eprintln!("rcomet-loadgen: not built yet");
    std::process::exit(2);
}
