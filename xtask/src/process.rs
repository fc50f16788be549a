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

/// Runs `cmd` to completion; an error says which command failed and how.
pub fn run_checked(cmd: &mut Command) -> Result<()> {
    let shown = display_command(cmd);
    let status = run_interruptible(cmd)?;
    if !status.success() {
        anyhow::bail!("`{shown}` failed ({status})");
    }
    Ok(())
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

/// `cargo test` arguments that also run the `#[ignore]`d tests, which are the ones that need the
/// servers xtask has started: `--include-ignored` goes after the single `--` that separates cargo's
/// arguments from the test binaries' (added when absent), unless the caller already chose which
/// ignored tests run (`--ignored` and `--include-ignored` exclude each other).
pub fn with_ignored_tests(args: &[String]) -> Vec<String> {
    let mut args = args.to_vec();
    let separator = args.iter().position(|a| a == "--");
    let chosen = separator.is_some_and(|at| {
        args[at + 1..]
            .iter()
            .any(|a| a == "--ignored" || a == "--include-ignored")
    });
    if !chosen {
        if separator.is_none() {
            args.push("--".to_owned());
        }
        args.push("--include-ignored".to_owned());
    }
    args
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

    #[test]
    fn ignored_tests_are_included_after_the_one_separator() {
        assert_eq!(
            with_ignored_tests(&args(&[])),
            args(&["--", "--include-ignored"])
        );
        assert_eq!(
            with_ignored_tests(&args(&["-p", "sextant-agent", "filter"])),
            args(&["-p", "sextant-agent", "filter", "--", "--include-ignored"])
        );
        assert_eq!(
            with_ignored_tests(&args(&["-p", "sextant-agent", "--", "--nocapture"])),
            args(&[
                "-p",
                "sextant-agent",
                "--",
                "--nocapture",
                "--include-ignored"
            ])
        );
        assert_eq!(
            with_ignored_tests(&args(&["--"])),
            args(&["--", "--include-ignored"])
        );
        // A test binary's own `--` (after the separator) is not a second separator.
        assert_eq!(
            with_ignored_tests(&args(&["--", "--exact", "--", "x"])),
            args(&["--", "--exact", "--", "x", "--include-ignored"])
        );
        for chosen in ["--ignored", "--include-ignored"] {
            let given = args(&["filter", "--", chosen]);
            assert_eq!(with_ignored_tests(&given), given);
        }
        // Before the separator these are not test-binary arguments.
        assert_eq!(
            with_ignored_tests(&args(&["--ignored"])),
            args(&["--ignored", "--", "--include-ignored"])
        );
    }
}
