//! The rcomet binary: mimalloc as the global allocator, the command line and config file turned into
//! a `Startup`, then the server's whole life in `server::run`. No logic here.
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    let startup = match rcomet::config::from_args(std::env::args_os()) {
        Ok(s) => s,
        Err(e) => e.exit(),
    };
    std::process::exit(rcomet::server::run(startup));
}
