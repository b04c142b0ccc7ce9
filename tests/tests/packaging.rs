//! Packaging is tested code: manifests parse, and every Flatpak permission is explained.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn every_flatpak_finish_arg_is_commented() {
    for entry in std::fs::read_dir(root().join("packaging/flatpak")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.starts_with("finish-args:"))
            .expect("finish-args");
        let mut args = 0;
        for (i, line) in lines.iter().enumerate().skip(start + 1) {
            let t = line.trim_start();
            if !line.starts_with(' ') && !t.is_empty() {
                break;
            }
            if t.starts_with("- ") {
                args += 1;
                assert!(
                    lines[i - 1].trim_start().starts_with('#'),
                    "{}: {t} has no comment above it",
                    path.display()
                );
            }
        }
        assert!(args > 0, "{}: no finish-args", path.display());
        assert!(!text.contains("--socket=session-bus") || text.contains("# Deliberately absent"));
        assert!(text.contains("--talk-name=org.agentos.Kernel"));
    }
}

#[test]
fn the_shipped_agent_manifests_parse_and_run_sandboxed() {
    for name in ["docs", "web", "sidekick"] {
        let text =
            std::fs::read_to_string(root().join(format!("packaging/agents/{name}.toml"))).unwrap();
        let m = agentos_kernel::manifest::Manifest::parse(&text)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.id, name);
        assert!(m.sandbox, "{name} should run sandboxed");
        // Each thinks through the broker: with only a remote model, it may be allowed one.
        assert!(
            m.capabilities.iter().any(|c| c.name == "model.remote"),
            "{name} should declare model.remote"
        );
    }
}

/// The D-Bus service file as installed: `@bindir@` replaced.
fn installed_service_file(bindir: &Path) -> String {
    let text = std::fs::read_to_string(root().join("packaging/dbus/org.agentos.Kernel.service"))
        .expect("service file");
    text.replace("@bindir@", &bindir.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_starts_the_kernel_when_a_client_first_calls_it() {
    use agentos_dbus_interfaces::names::KERNEL_BUS_NAME;
    agentos_tests::bounded(async {
        let mut env = agentos_tests::Env::start().await;
        assert!(env.stop_kernel("TERM").await.success());
        // Installed where the session bus looks: $XDG_DATA_HOME/dbus-1/services.
        let services = env.root().join("xdg-data/dbus-1/services");
        std::fs::create_dir_all(&services).unwrap();
        let agentosd = agentos_tests::bin("agentosd");
        std::fs::write(
            services.join("org.agentos.Kernel.service"),
            installed_service_file(agentosd.parent().unwrap()),
        )
        .unwrap();
        let dbus = zbus::fdo::DBusProxy::new(&env.conn).await.unwrap();
        dbus.reload_config().await.unwrap();
        let name = zbus::names::BusName::try_from(KERNEL_BUS_NAME).unwrap();
        assert!(!dbus.name_has_owner(name.clone()).await.unwrap());
        // The first call starts it (with its defaults: data and manifests under XDG_DATA_HOME).
        let agents = env.kernel().await.list_agents().await.unwrap();
        assert!(agents.is_empty(), "{agents:?}");
        assert!(env.root().join("xdg-data/agentos/agentos.db").exists());
        // Stop it as systemd would, and see it go.
        let pid = dbus
            .get_connection_unix_process_id(name.clone())
            .await
            .unwrap();
        let killed = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(killed.success());
        while dbus.name_has_owner(name.clone()).await.unwrap() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        while Path::new(&format!("/proc/{pid}")).exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[test]
fn the_systemd_unit_owns_the_kernels_bus_name() {
    let unit = std::fs::read_to_string(root().join("packaging/systemd/agentosd.service")).unwrap();
    assert!(unit.contains("Type=dbus"));
    assert!(unit.contains("BusName=org.agentos.Kernel\n"));
    assert!(unit.contains("ExecStart=@bindir@/agentosd\n"));
    assert!(unit.contains("RestartPreventExitStatus=3\n"));
    let service = installed_service_file(Path::new("/usr/bin"));
    assert!(service.contains("SystemdService=agentosd.service\n"));
    assert!(service.contains("Exec=/usr/bin/agentosd\n"));
}
