//! Code packages: any bytes are either a valid package or refused, never a panic, and a
//! refused package leaves nothing behind.
#![no_main]

use holactl_engine::code::{unpack, PackageLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let dest = dir.path().join("out");
    let limits = PackageLimits {
        max_unpacked: 1 << 20,
        max_files: 64,
    };
    if unpack(data, &dest, limits).is_err() {
        assert!(!dest.exists(), "a refused package left files behind");
    }
});
