//! Running child commands: foreground runs that Ctrl-C can interrupt, exit codes, display.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::signals;

/// Run `cmd` to completion; if xtask is asked to stop meanwhile, forward the signal to the child,
/// give it 10 s, then kill it. (On a terminal's Ctrl-C the child got SIGINT itself already.)
pub fn run_interruptible(cmd: &mut Command) -> Result<ExitStatus> {
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", display_command(cmd)))?;
    wait_interruptible(&mut child)
}

pub fn wait_interruptible(child: &mut Child) -> Result<ExitStatus> {
    let mut forwarded_at: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if let Some(sig) = signals::received() {
            match forwarded_at {
                None => {
                    // The child shares xtask's process group: signal just the child.
                    signals::kill_pid(child.id(), sig);
                    forwarded_at = Some(Instant::now());
                }
                Some(t) if t.elapsed() > Duration::from_secs(10) => {
                    let _ = child.kill();
                }
                Some(_) => {}
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The exit code to pass on: the child's, or 128 + signal when it was killed by one.
pub fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return u8::try_from(code).unwrap_or(1);
    }
    if let Some(sig) = status.signal() {
        return u8::try_from(128 + sig).unwrap_or(1);
    }
    1
}

/// `PROGRAM ARG…` for messages.
pub fn display_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether cargo arguments already choose the packages (`-p`, `--package`, `--workspace`, `--all`),
/// in which case xtask must not add `--workspace`. Arguments after `--` belong to the test binary.
pub fn selects_packages(args: &[String]) -> bool {
    args.iter().take_while(|a| *a != "--").any(|a| {
        a == "--workspace" || a == "--all" || a.starts_with("--package") || a.starts_with("-p")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn package_selection() {
        assert!(!selects_packages(&args(&[])));
        assert!(!selects_packages(&args(&["some_filter", "--", "-p"])));
        assert!(selects_packages(&args(&["-p", "sextant-agent", "filter"])));
        assert!(selects_packages(&args(&["-psextant-agent"])));
        assert!(selects_packages(&args(&["--package=sextant-agent"])));
        assert!(selects_packages(&args(&[
            "--workspace",
            "--exclude",
            "xtask"
        ])));
    }
}
