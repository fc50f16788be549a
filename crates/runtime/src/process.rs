//! Process-wide settings that must be in place before any thread exists.

use crate::config::SextantConfig;

/// Applies the settings that libraries read once per process, from the environment, on first use:
/// the local models' inference threads (`[providers.local] threads`, which candle, running the
/// local embedder, sizes its thread pool from). Call it first thing in `main`, before the async runtime starts threads; a
/// `CANDLE_NUM_THREADS` already set wins.
pub fn configure_process(config: &SextantConfig) {
    if let Some(threads) = config.providers.local.threads
        && std::env::var_os("CANDLE_NUM_THREADS").is_none()
    {
        // SAFETY: called before other threads exist (the function's contract), so nothing reads
        // the environment concurrently.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", threads.to_string()) };
    }
}
