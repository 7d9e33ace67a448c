//! What the worker process does before it reads anything, and once it has
//! read its secrets: a known signal state, and nothing secret left where a
//! task could read it.
//!
//! - **Signals, as tini does.** A parent may start the worker with signals
//!   blocked or ignored (a shell's background job, a supervisor that blocks
//!   SIGTERM around `fork`), and both are inherited across `exec`, by the
//!   worker and by every task it starts. [`reset_signals`] clears the mask
//!   and puts every ignored signal back to its default, then blocks the
//!   signals the worker handles until its handlers are in place
//!   ([`crate::signals::Signals::install`] unblocks them and takes any that
//!   arrived meanwhile), so a SIGTERM sent the moment the worker starts is
//!   neither lost nor fatal.
//! - **Secrets out of `/proc`.** [`seal`] makes the process non-dumpable, so
//!   a task running as another user cannot open its `/proc/PID/environ`,
//!   `cmdline` or `mem`; and it overwrites, in the process's own memory, the
//!   values of the secret environment variables and a payload given as an
//!   argument: `/proc/PID/environ` and `cmdline` read that memory, not the
//!   copies the worker keeps, so a task running as the *same* user (root in
//!   most containers) finds nothing there either.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

/// Signals the worker handles and passes on to the task's process group
/// ([`crate::signals`]). Never SIGCHLD or job-control ones.
pub const FORWARDED: [Signal; 6] =
    [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2];

/// Signals whose state the runtime or the kernel owns: never reset.
const LEFT_ALONE: [Signal; 7] = [
    Signal::SIGKILL,
    Signal::SIGSTOP,
    // Rust's runtime ignores SIGPIPE on purpose; a child's is reset at spawn.
    Signal::SIGPIPE,
    // Rust's runtime reports stack overflows through these.
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGILL,
    Signal::SIGFPE,
];

/// Put every inherited ignored signal back to its default, and block exactly
/// the signals the worker handles (nothing else), so that one arriving
/// before the handlers exist waits for them. Call first thing, on the main
/// thread, before any other thread exists: threads inherit the mask.
pub fn reset_signals() {
    for sig in Signal::iterator().filter(|s| !LEFT_ALONE.contains(s)) {
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: installing SIG_DFL runs no code of ours in a signal context.
        match unsafe { sigaction(sig, &default) } {
            // Someone (a program embedding the worker) installed a handler: keep it.
            Ok(previous) if matches!(previous.handler(), SigHandler::Handler(_) | SigHandler::SigAction(_)) => {
                // SAFETY: restores exactly what was there.
                let _ = unsafe { sigaction(sig, &previous) };
            }
            _ => {}
        }
    }
    if let Err(e) = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&handled()), None) {
        tracing::warn!(error = %e, "cannot reset the signal mask");
    }
}

/// Make the process non-dumpable and wipe the values of `secret_vars` and of
/// the argument `secret_arg` (a payload given on the command line) from the
/// memory `/proc/self/environ` and `/proc/self/cmdline` show. The worker has
/// its own copies by now; the variables are also removed from its
/// environment, so no child inherits them.
pub fn seal(secret_vars: &[&str], secret_arg: Option<&str>) {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %e, "cannot make the worker non-dumpable; a task of the same user can read its /proc entries");
    }
    let Some(regions) = Regions::of_this_process() else {
        tracing::warn!("cannot find this process's argument and environment memory; secrets stay in /proc/self");
        return;
    };
    if let Some(arg) = secret_arg.filter(|a| !a.is_empty()) {
        regions.wipe_arg(arg);
    }
    regions.wipe_env_values(secret_vars);
    for name in secret_vars {
        // SAFETY (edition 2024 makes this unsafe): called before the runtime
        // starts, while this is the only thread that reads the environment.
        std::env::remove_var(name);
    }
}

/// Where the kernel keeps this process's arguments and environment: the
/// `arg_start`..`arg_end` and `env_start`..`env_end` of `/proc/self/stat`,
/// addresses in our own (writable) stack.
struct Regions {
    args: (usize, usize),
    env: (usize, usize),
}

impl Regions {
    fn of_this_process() -> Option<Self> {
        let stat = String::from_utf8(read_proc("/proc/self/stat", 1024).ok()?).ok()?;
        // Fields after the command name, which may hold spaces: `(comm) state ppid ...`.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<usize> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
        // Fields 48..=51 of stat(5), counted from 1 with pid and comm as 1 and 2.
        let field = |n: usize| fields.get(n - 3).copied().filter(|&v| v != 0);
        let regions = Self { args: (field(48)?, field(49)?), env: (field(50)?, field(51)?) };
        (regions.args.0 < regions.args.1 && regions.env.0 < regions.env.1).then_some(regions)
    }

    /// Zero every argument whose text is exactly `arg` (its terminating NUL kept).
    fn wipe_arg(&self, arg: &str) {
        self.wipe_matching(self.args, "/proc/self/cmdline", |entry| (entry == arg.as_bytes()).then_some(0));
    }

    /// Zero the value of each `NAME=value` of `names` (the name and `=` kept), in one pass.
    fn wipe_env_values(&self, names: &[&str]) {
        let prefixes: Vec<String> = names.iter().map(|name| format!("{name}=")).collect();
        self.wipe_matching(self.env, "/proc/self/environ", |entry| {
            prefixes.iter().find(|p| entry.starts_with(p.as_bytes())).map(|p| p.len())
        });
    }

    /// For each NUL-terminated entry in `region` (which `shown_in` shows)
    /// that `keep` picks, zero its bytes after the first `keep` ones.
    fn wipe_matching(&self, (start, end): (usize, usize), shown_in: &str, keep: impl Fn(&[u8]) -> Option<usize>) {
        // Read through /proc rather than raw pointers: the kernel says what
        // the region holds, with no guess about its layout.
        let Ok(copy) = read_proc(shown_in, end - start) else { return };
        let copy = &copy[..copy.len().min(end - start)];
        let mut offset = 0;
        for entry in copy.split(|&b| b == 0) {
            if let Some(kept) = keep(entry) {
                let from = start + offset + kept;
                let len = entry.len() - kept;
                // SAFETY: `from..from + len` lies inside this process's
                // argument or environment block (checked against its end
                // below), which the kernel maps writable on our stack; only
                // the bytes of a value are zeroed, never its terminator.
                if from + len < end {
                    unsafe { std::ptr::write_bytes(from as *mut u8, 0, len) };
                }
            }
            offset += entry.len() + 1;
        }
    }
}

/// A `/proc` file in one `read`: a buffer of `expected` bytes (and one more, to see the end)
/// given up front, where `std::fs::read` would start small and double, one system call each,
/// and the kernel would render the file again up to the offset of each.
pub(crate) fn read_proc(path: &str, expected: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(expected + 1);
    std::fs::File::open(path)?.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Unblock the handled signals on this thread and say which cancelling ones
/// arrived while they were blocked. Called once the handlers exist (or,
/// for a tool command, instead of them).
pub(crate) fn unblock_handled() -> Vec<Signal> {
    let pending = pending_signals();
    if let Err(e) = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&handled()), None) {
        tracing::warn!(error = %e, "cannot unblock the worker's signals");
    }
    pending.into_iter().filter(|s| matches!(s, Signal::SIGTERM | Signal::SIGINT)).collect()
}

/// The signals the worker's handlers take: blocked until they exist.
fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for sig in FORWARDED {
        set.add(sig);
    }
    set
}

fn pending_signals() -> Vec<Signal> {
    let mut set = std::mem::MaybeUninit::<nix::libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set that sigpending then fills.
    let set = unsafe {
        nix::libc::sigemptyset(set.as_mut_ptr());
        if nix::libc::sigpending(set.as_mut_ptr()) != 0 {
            return Vec::new();
        }
        set.assume_init()
    };
    // SAFETY: sigismember reads the initialised set.
    FORWARDED.into_iter().filter(|s| unsafe { nix::libc::sigismember(&set, *s as i32) } == 1).collect()
}
