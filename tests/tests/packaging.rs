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
    for name in ["docs", "web"] {
        let text =
            std::fs::read_to_string(root().join(format!("packaging/agents/{name}.toml"))).unwrap();
        let m = agentos_kernel::manifest::Manifest::parse(&text)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.id, name);
        assert!(m.sandbox, "{name} should run sandboxed");
    }
}
