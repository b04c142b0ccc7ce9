//! A Flatpak sandbox without Flatpak, as flatpak 1.14 builds one: `xdg-dbus-proxy` inside a
//! bubblewrap that carries the app's `/.flatpak-info`, and the app in a second bubblewrap that
//! sees only the proxy's socket as its session bus.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::env::Env;
use crate::TIMEOUT;

/// The read-only system parts every sandbox gets.
fn system_args(cmd: &mut Command) {
    cmd.args([
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
    ])
    .args([
        "--symlink",
        "usr/bin",
        "/bin",
        "--ro-bind",
        "/etc",
        "/etc",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ])
    .arg("--die-with-parent");
}

/// A running emulated Flatpak app (the proxy and the app are stopped on drop).
pub struct FlatpakApp {
    proxy: Child,
    app: Option<Child>,
}

impl FlatpakApp {
    /// Wait (bounded) for the app to exit and collect what it printed.
    pub async fn finish(mut self) -> std::process::Output {
        let mut app = self.app.take().expect("the app");
        let deadline = std::time::Instant::now() + TIMEOUT;
        while app.try_wait().expect("wait for the app").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = app.kill();
                panic!(
                    "the sandboxed app did not exit in time: {:?}",
                    app.wait_with_output()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        app.wait_with_output().expect("collect the app's output")
    }
}

impl Drop for FlatpakApp {
    fn drop(&mut self) {
        if let Some(mut app) = self.app.take() {
            let _ = app.kill();
            let _ = app.wait();
        }
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
    }
}

impl Env {
    /// A bus connection as the Flatpak app `app_id`: through that app's xdg-dbus-proxy, which
    /// runs in the app's sandbox, so the bus reports the proxy and the kernel reads the app's
    /// `/.flatpak-info`, as for any Flatpak app. The app itself only sleeps.
    pub async fn app_connection(&self, app_id: &str) -> (FlatpakApp, zbus::Connection) {
        // Like a client inside a Flatpak, zbus must not pipeline its handshake through the
        // proxy; it reads FLATPAK_ID to know. (Processes the tests start get a cleared
        // environment.)
        std::env::set_var("FLATPAK_ID", "org.example.Tests");
        let app = self
            .flatpak(app_id, Path::new("/usr/bin/sleep"), &["600"])
            .await;
        let socket = self.root().join(format!("flatpak-{app_id}")).join("bus");
        let conn =
            zbus::connection::Builder::address(format!("unix:path={}", socket.display()).as_str())
                .expect("proxy address")
                .build()
                .await
                .expect("connect through the app's proxy");
        (app, conn)
    }

    /// Run `program args` as the Flatpak app `app_id`.
    pub async fn flatpak(&self, app_id: &str, program: &Path, args: &[&str]) -> FlatpakApp {
        let dir = self.root().join(format!("flatpak-{app_id}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let info = dir.join("flatpak-info");
        std::fs::write(
            &info,
            format!("[Application]\nname={app_id}\n\n[Instance]\ninstance-id=1\n"),
        )
        .expect("info");
        let socket = dir.join("bus");
        let _ = std::fs::remove_file(&socket);
        let mut proxy = Command::new("bwrap");
        system_args(&mut proxy);
        proxy
            .arg("--bind")
            .arg(self.root())
            .arg(self.root())
            .arg("--ro-bind")
            .arg(&info)
            .arg("/.flatpak-info")
            .args(["--", "xdg-dbus-proxy", &self.address])
            .arg(&socket)
            .args([
                "--filter",
                &format!("--own={app_id}.*"),
                "--talk=org.agentos.Kernel",
            ])
            .args([
                "--call=org.freedesktop.portal.*=*",
                "--broadcast=org.freedesktop.portal.*=@/org/freedesktop/portal/*",
            ]);
        let proxy = self.service(&mut proxy);
        let deadline = std::time::Instant::now() + TIMEOUT;
        // Listening, not only bound: the socket's file exists a moment before it takes
        // connections.
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "xdg-dbus-proxy did not start"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let bin_dir: PathBuf = program.parent().expect("program dir").to_path_buf();
        let mut app = Command::new("bwrap");
        system_args(&mut app);
        app.args([
            "--tmpfs",
            "/tmp",
            "--unshare-pid",
            "--unshare-ipc",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
        ])
        .arg("--ro-bind")
        .arg(&bin_dir)
        .arg(&bin_dir)
        .arg("--ro-bind")
        .arg(&info)
        .arg("/.flatpak-info")
        // As Flatpak does when the Documents portal runs: the app's view of it.
        .arg("--bind-try")
        .arg(self.root().join("run/doc/by-app").join(app_id))
        .arg("/run/flatpak/doc")
        .args(["--dir", "/run/flatpak", "--ro-bind"])
        .arg(&socket)
        .arg("/run/flatpak/bus")
        .args([
            "--setenv",
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/run/flatpak/bus",
        ])
        // As Flatpak does; zbus reads it to avoid pipelining its handshake, which the proxy
        // cannot handle.
        .args(["--setenv", "FLATPAK_ID", app_id, "--"])
        .arg(program)
        .args(args);
        app.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let app = self.service(&mut app);
        FlatpakApp {
            proxy,
            app: Some(app),
        }
    }
}
