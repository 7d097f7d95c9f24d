//! The `curanet` binary.

// mimalloc: the server allocates many small strings per request on one thread and frees some
// on another (the audit writer); glibc's allocator spends much of its time there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    curanet_http::cli::main()
}
