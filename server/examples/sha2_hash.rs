//! Benchmark baseline: hashes a file with the same `sha2` crate the server uses, streaming in
//! 1 MiB reads, and prints `<digest> <bytes> <seconds>`. Used by `bench/server.sh`.

use std::io::Read;
use std::time::Instant;

use sha2::{Digest, Sha256};

fn main() -> std::io::Result<()> {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: sha2_hash FILE");
        std::process::exit(2);
    };
    let started = Instant::now();
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
    }
    let digest = hex::encode(hasher.finalize());
    println!(
        "sha256:{digest} {total} {:.3}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
