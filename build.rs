//! Compiles the XDP program in `bpf/` into a libbpf-cargo skeleton (`$OUT_DIR/xlb.skel.rs`).

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "bpf/xlb.bpf.c";

fn main() {
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo")).join("xlb.skel.rs");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("target arch is set by cargo");
    // Debian keeps asm/types.h under the multiarch directory, which clang -target bpf
    // does not search by itself.
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args([multiarch.as_str(), "-Ibpf", "-O2", "-g", "-Wall"])
        .build_and_generate(&out)
        .expect("building the XDP program failed: are clang, llvm and libelf-dev installed? (scripts/setup.sh)");
    println!("cargo:rerun-if-changed=bpf");
}
