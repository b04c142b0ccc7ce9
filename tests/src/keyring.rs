//! A real Secret Service for a test: gnome-keyring-daemon on the test's private bus, started as
//! TESTING.md says (its default "login" collection created unlocked with a known password), and
//! stopped by its pid.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Env, TIMEOUT};

/// The password of the test's login keyring.
pub const PASSWORD: &str = "test-password";

/// The Secret Service's well-known name.
pub const NAME: &str = "org.freedesktop.secrets";

/// A running gnome-keyring-daemon; killed when dropped.
#[derive(Debug)]
pub struct Keyring {
    pid: u32,
}

impl Keyring {
    /// `printf 'test-password' | gnome-keyring-daemon --replace --unlock --components=secrets`
    /// in the test's environment, then wait until it owns `org.freedesktop.secrets`. The daemon
    /// forks and the process started exits, so its pid is asked of the bus.
    pub async fn start(env: &Env) -> Keyring {
        let mut launcher = env.service(
            Command::new("gnome-keyring-daemon")
                .args(["--replace", "--unlock", "--components=secrets"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let mut stdin = launcher.stdin.take().expect("stdin");
        stdin
            .write_all(PASSWORD.as_bytes())
            .expect("the keyring's password");
        drop(stdin);
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while launcher.try_wait().expect("wait").is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "gnome-keyring-daemon did not fork in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        env.wait_for_name(NAME).await;
        let dbus = zbus::fdo::DBusProxy::new(&env.conn)
            .await
            .expect("dbus proxy");
        let name = zbus::names::BusName::try_from(NAME).expect("name");
        let pid = dbus
            .get_connection_unix_process_id(name)
            .await
            .expect("the keyring's pid");
        Keyring { pid }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.pid.to_string())
            .stderr(Stdio::null())
            .status();
    }
}
