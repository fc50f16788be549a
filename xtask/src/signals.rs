//! Ctrl-C / SIGTERM / SIGHUP handling and process-group signalling, with no crate: std links libc on
//! Unix anyway, so the few functions needed are declared here.

use std::sync::atomic::{AtomicI32, Ordering};

pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;

/// The last signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn kill(pid: i32, sig: i32) -> i32;
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
}

extern "C" fn on_signal(signum: i32) {
    // Only an atomic store: async-signal-safe.
    RECEIVED.store(signum, Ordering::SeqCst);
}

/// Record SIGINT, SIGTERM and SIGHUP instead of dying, so the servers are stopped first.
pub fn install() {
    let handler = on_signal as extern "C" fn(i32) as usize;
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // SAFETY: installing a handler that only stores into an atomic.
        unsafe {
            signal(sig, handler);
        }
    }
}

/// The signal that asked xtask to stop, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

pub fn interrupted() -> bool {
    received().is_some()
}

/// Send `sig` to the whole process group `pgid`. Returns false if the group no longer exists.
pub fn kill_group(pgid: u32, sig: i32) -> bool {
    // SAFETY: plain syscall wrapper.
    unsafe { kill(-(pgid as i32), sig) == 0 }
}

/// Send `sig` to one process.
pub fn kill_pid(pid: u32, sig: i32) -> bool {
    // SAFETY: plain syscall wrapper.
    unsafe { kill(pid as i32, sig) == 0 }
}

/// In a freshly forked child (`pre_exec`): get SIGTERM when xtask dies, even by SIGKILL.
/// This covers the direct child only; `TestServers` stops whole groups on every other exit path.
pub fn set_parent_death_signal() -> std::io::Result<()> {
    const PR_SET_PDEATHSIG: i32 = 1;
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe.
    if unsafe { prctl(PR_SET_PDEATHSIG, SIGTERM as u64, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
