//! A terminal of the test's own (a pty), as a user's, for `docker run -it`.

use std::process::{Command, Stdio};
use std::time::Instant;

use super::{DEADLINE, POLL_INTERVAL};

/// A terminal of the test's own, as a user's: what `docker run -it` attached
/// to it prints, and the keys typed into it.
pub(crate) struct Terminal {
    keyboard: std::fs::File,
    screen: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Terminal {
    /// Runs `command` with the terminal as its stdin, stdout and stderr.
    pub(crate) fn attach(command: &mut Command) -> (Terminal, std::process::Child) {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let side = |fd: &std::os::fd::OwnedFd| Stdio::from(fd.try_clone().expect("dup the pty"));
        let child = command
            .stdin(side(&pty.slave))
            .stdout(side(&pty.slave))
            .stderr(side(&pty.slave))
            .spawn()
            .expect("run the attached command");
        drop(pty.slave);
        let keyboard = std::fs::File::from(pty.master);
        let mut display = keyboard.try_clone().expect("dup the pty");
        let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let written = screen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // Ends with EIO once the last process holding the terminal is gone.
            while let Ok(read @ 1..) = std::io::Read::read(&mut display, &mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..read]);
                written.lock().expect("the screen").push_str(&text);
            }
        });
        (Terminal { keyboard, screen }, child)
    }

    pub(crate) fn screen(&self) -> String {
        self.screen.lock().expect("the screen").clone()
    }

    pub(crate) fn wait_for(&self, text: &str) {
        let start = Instant::now();
        while !self.screen().contains(text) {
            assert!(
                start.elapsed() < DEADLINE,
                "the terminal never showed {text:?}; it shows:\n{}",
                self.screen()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    pub(crate) fn type_keys(&mut self, keys: &[u8]) {
        std::io::Write::write_all(&mut self.keyboard, keys).expect("type on the terminal");
    }
}

/// Waits, at most [`DEADLINE`], for `child` to exit, and returns its code.
pub(crate) fn exit_code_of(child: &mut std::process::Child) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for docker") {
            return status.code();
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("docker run -it did not end within {DEADLINE:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
