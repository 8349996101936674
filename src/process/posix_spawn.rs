//! Starting one program through glibc's `posix_spawn`.
//!
//! Why not `std::process::Command`: autopilot must set up the child (its own
//! process group, the terminal, the signal dispositions and mask autopilot
//! inherited) before it execs, and `Command` can only do that through
//! `pre_exec`, which makes it `fork` the whole process: the kernel copies
//! autopilot's page tables and every page either side writes afterwards is
//! copied again. `posix_spawn` starts the child in autopilot's own memory
//! (`CLONE_VM | CLONE_VFORK`) and glibc's attributes and file actions do
//! every step of that setup in the child: `POSIX_SPAWN_SETPGROUP`,
//! `posix_spawn_file_actions_addtcsetpgrp_np` (glibc 2.35+),
//! `POSIX_SPAWN_SETSIGDEF` and `POSIX_SPAWN_SETSIGMASK`. No crate wraps
//! these attributes (std's own use of `posix_spawn` hard-codes an empty mask
//! and a default SIGPIPE), hence this small wrapper.
//!
//! The program is looked up in `PATH` here, as `execvp` would with the
//! child's environment (`/bin:/usr/bin` without one), because glibc's
//! `posix_spawnp` would read autopilot's own `PATH`. Unlike `execvp`, a file
//! without a `#!` line is not handed to `/bin/sh`: it fails with ENOEXEC,
//! as it does under ContainerPilot (Go's `exec` does not retry either).
//!
//! A child whose exec fails is reaped by glibc itself (`waitpid` on that pid
//! before `posix_spawn` returns the error); it was never registered with the
//! reaper, so nothing waits for it twice.
//!
//! This module owns only the system calls of one start; [`super::spawn`]
//! decides what to start and registers it with the reaper.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use crate::signals;

/// What `execvp` searches when the environment has no `PATH`.
const DEFAULT_PATH: &[u8] = b"/bin:/usr/bin";

/// One start: what to run, with which environment, and how the standard
/// streams and the terminal are set up.
pub(super) struct Launch<'a> {
    pub argv: &'a [OsString],
    /// The child's whole environment; `None` passes autopilot's own.
    pub env: Option<&'a crate::environment::Table>,
    /// Keep autopilot's stdin (otherwise `/dev/null`).
    pub inherit_stdin: bool,
    /// Make the child's group the terminal's foreground group (stdin).
    pub take_terminal: bool,
    /// The write ends of the stdout and stderr pipes, dup'ed onto 1 and 2.
    pub output: Option<(&'a OwnedFd, &'a OwnedFd)>,
}

/// Starts the program and returns its pid. Errors are the errno of the
/// failed step in the child (ENOENT, EACCES, ENOEXEC…) or of the lookup.
pub(super) fn launch(launch: &Launch<'_>) -> io::Result<Pid> {
    let argv = c_strings(launch.argv.iter().map(|arg| arg.as_bytes()))?;
    let (envp, path_variable) = match launch.env {
        Some(table) => (
            environment_entries(table.iter()),
            table.get(OsStr::new("PATH")).cloned(),
        ),
        None => (
            environment_entries(std::env::vars_os()),
            std::env::var_os("PATH"),
        ),
    };
    let envp = envp?;
    let program = launch
        .argv
        .first()
        .map_or(OsStr::new(""), OsString::as_os_str);
    let setup = Setup::new(launch)?;
    let mut denied = false;
    for candidate in candidates(program, path_variable.as_ref().map(|p| p.as_bytes())) {
        // Every spawn starts a process, even one whose exec fails: `PATH`
        // entries that hold no such file are skipped before that.
        match std::fs::metadata(&candidate) {
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
                denied = true;
                continue;
            }
            Err(_) => continue,
            Ok(_) => {}
        }
        let path = CString::new(candidate.into_os_string().into_vec())?;
        match setup.spawn(&path, &argv, &envp) {
            Ok(pid) => return Ok(pid),
            Err(error) => match error.raw_os_error() {
                // execvp's rules: keep looking past a missing file, remember
                // a denied one.
                Some(libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV) => {}
                Some(libc::EACCES) => denied = true,
                _ => return Err(error),
            },
        }
    }
    Err(io::Error::from_raw_os_error(if denied {
        libc::EACCES
    } else {
        libc::ENOENT
    }))
}

/// The paths to try, in order: the program itself when it names a path
/// (contains a `/`), otherwise each `PATH` entry joined with it (an empty
/// entry is the current directory).
pub(crate) fn candidates(program: &OsStr, path_variable: Option<&[u8]>) -> Vec<PathBuf> {
    if program.is_empty() {
        return Vec::new();
    }
    if program.as_bytes().contains(&b'/') {
        return vec![PathBuf::from(program)];
    }
    path_variable
        .unwrap_or(DEFAULT_PATH)
        .split(|byte| *byte == b':')
        .map(|dir| {
            let dir = if dir.is_empty() { b"." as &[u8] } else { dir };
            Path::new(OsStr::from_bytes(dir)).join(program)
        })
        .collect()
}

/// A NUL-terminated array of C strings that keeps its strings alive.
struct CStrings {
    _owned: Vec<CString>,
    pointers: Vec<*mut libc::c_char>,
}

/// `NAME=value` entries for `envp`.
fn environment_entries<N: AsRef<OsStr>, V: AsRef<OsStr>>(
    vars: impl Iterator<Item = (N, V)>,
) -> io::Result<CStrings> {
    c_strings(vars.map(|(name, value)| {
        let (name, value) = (name.as_ref().as_bytes(), value.as_ref().as_bytes());
        [name, b"=", value].concat()
    }))
}

fn c_strings<T: Into<Vec<u8>>>(items: impl Iterator<Item = T>) -> io::Result<CStrings> {
    let owned = items
        .map(CString::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte in argument"))?;
    let mut pointers: Vec<*mut libc::c_char> =
        owned.iter().map(|s| s.as_ptr().cast_mut()).collect();
    pointers.push(std::ptr::null_mut());
    Ok(CStrings {
        _owned: owned,
        pointers,
    })
}

/// The attributes and file actions of one start, destroyed with it.
struct Setup {
    attributes: libc::posix_spawnattr_t,
    actions: libc::posix_spawn_file_actions_t,
}

impl Setup {
    fn new(launch: &Launch<'_>) -> io::Result<Box<Setup>> {
        // Boxed: glibc's objects must not move once initialised.
        // SAFETY: zeroed storage, initialised by the init calls right below.
        let mut setup: Box<Setup> = Box::new(unsafe { std::mem::zeroed() });
        let (defaults, mask) = signals::inherited_for_child();
        // SAFETY: every call gets the objects initialised here; the error
        // codes are checked by `check`.
        unsafe {
            check(libc::posix_spawnattr_init(&mut setup.attributes))?;
            check(libc::posix_spawn_file_actions_init(&mut setup.actions))?;
            let flags = libc::POSIX_SPAWN_SETPGROUP
                | libc::POSIX_SPAWN_SETSIGDEF
                | libc::POSIX_SPAWN_SETSIGMASK;
            check(libc::posix_spawnattr_setflags(
                &mut setup.attributes,
                flags as libc::c_short,
            ))?;
            check(libc::posix_spawnattr_setpgroup(&mut setup.attributes, 0))?;
            check(libc::posix_spawnattr_setsigdefault(
                &mut setup.attributes,
                &defaults,
            ))?;
            check(libc::posix_spawnattr_setsigmask(
                &mut setup.attributes,
                &mask,
            ))?;
            if !launch.inherit_stdin {
                check(libc::posix_spawn_file_actions_addopen(
                    &mut setup.actions,
                    libc::STDIN_FILENO,
                    c"/dev/null".as_ptr(),
                    libc::O_RDONLY,
                    0,
                ))?;
            }
            if launch.take_terminal {
                // Runs after the child joined its new group, with every
                // signal blocked (so no SIGTTOU stops it).
                check(libc::posix_spawn_file_actions_addtcsetpgrp_np(
                    &mut setup.actions,
                    libc::STDIN_FILENO,
                ))?;
            }
            if let Some((stdout, stderr)) = launch.output {
                for (pipe, target) in [(stdout, libc::STDOUT_FILENO), (stderr, libc::STDERR_FILENO)]
                {
                    check(libc::posix_spawn_file_actions_adddup2(
                        &mut setup.actions,
                        pipe.as_raw_fd(),
                        target,
                    ))?;
                }
            }
        }
        Ok(setup)
    }

    fn spawn(&self, path: &CString, argv: &CStrings, envp: &CStrings) -> io::Result<Pid> {
        let mut pid: libc::pid_t = 0;
        // SAFETY: initialised attributes and actions, NUL-terminated arrays
        // of C strings that outlive the call.
        check(unsafe {
            libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                &self.actions,
                &self.attributes,
                argv.pointers.as_ptr(),
                envp.pointers.as_ptr(),
            )
        })?;
        Ok(Pid::from_raw(pid))
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // SAFETY: both were initialised in `Setup::new` (a failed init leaves
        // zeroed storage, which destroy only frees nothing from).
        unsafe {
            libc::posix_spawnattr_destroy(&mut self.attributes);
            libc::posix_spawn_file_actions_destroy(&mut self.actions);
        }
    }
}

/// posix_spawn's functions return the error number instead of setting errno.
fn check(code: libc::c_int) -> io::Result<()> {
    match code {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_searched_in_path_and_an_empty_entry_is_the_current_directory() {
        let found = candidates(OsStr::new("app"), Some(b"/usr/bin::/opt/x"));
        assert_eq!(
            found,
            [
                PathBuf::from("/usr/bin/app"),
                PathBuf::from("./app"),
                PathBuf::from("/opt/x/app")
            ]
        );
    }

    #[test]
    fn a_path_is_used_as_it_is_and_without_path_execvp_default_applies() {
        assert_eq!(
            candidates(OsStr::new("./run.sh"), Some(b"/bin")),
            [PathBuf::from("./run.sh")]
        );
        assert_eq!(
            candidates(OsStr::new("sh"), None),
            [PathBuf::from("/bin/sh"), PathBuf::from("/usr/bin/sh")]
        );
        assert!(candidates(OsStr::new(""), None).is_empty());
    }
}
