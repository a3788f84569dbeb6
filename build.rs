//! Build script: only the Node binding (feature `node`) needs one, for
//! napi-build's linker setup; every other build does nothing here.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "node")]
    napi_build::setup();
}
