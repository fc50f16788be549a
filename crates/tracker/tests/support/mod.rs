//! Test support shared by this crate's integration tests. The servers `cargo xtask test` starts
//! are found through `sextant_testkit`.

/// A name no earlier run on the same server used.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}
