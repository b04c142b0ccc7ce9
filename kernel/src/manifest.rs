//! Agent manifests (`<id>.toml`): who an agent is, what it runs, what it may ask for.
//!
//! ```toml
//! id = "docs"
//! name = "Documents"
//! description = "Finds and reads your documents"
//! exec = "agentos-agent-docs"          # absolute, or looked up in the kernel's agent dirs
//! capabilities = ["files.list", "files.read"]
//! handles = ["find documents"]
//! sandbox = true                       # the default; `false` is honoured only for a manifest
//!                                      # in a location the user cannot write (see `discovery`)
//! ```

use std::path::{Path, PathBuf};

use agentos_dbus_interfaces::{names, Capability};
use serde::Deserialize;

/// Largest manifest file read.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

/// A validated agent manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub id: String,
    pub name: String,
    pub description: String,
    pub exec: String,
    pub capabilities: Vec<&'static Capability>,
    pub handles: Vec<String>,
    /// What the manifest asks for; whether the agent runs sandboxed is decided where the
    /// manifest was found (`AgentRegistry::discover`).
    pub sandbox: bool,
}

fn sandboxed_by_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
    exec: String,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    handles: Vec<String>,
    #[serde(default = "sandboxed_by_default")]
    sandbox: bool,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Manifest {
    /// Read and validate a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let read_err = |source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        if meta.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        Manifest::parse(&text).map_err(|message| ManifestError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parse and validate manifest text; the error says what is wrong in words.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| e.message().to_string())?;
        if !names::is_valid_agent_id(&raw.id) {
            return Err(format!(
                "id {:?} is not a valid agent id ([A-Za-z0-9._-], up to 255)",
                raw.id
            ));
        }
        let short = |field: &str, value: &str, max: usize| {
            if value.trim().is_empty() && field != "description" {
                Err(format!("{field} is empty"))
            } else if value.len() > max {
                Err(format!("{field} is longer than {max} bytes"))
            } else if value
                .chars()
                .any(|c| c.is_control() || crate::consent::is_bidi_control(c))
            {
                Err(format!("{field} contains control characters"))
            } else {
                Ok(())
            }
        };
        short("name", &raw.name, 256)?;
        short("description", &raw.description, 1024)?;
        short("exec", &raw.exec, 4096)?;
        let capabilities = raw
            .capabilities
            .iter()
            .map(|c| Capability::lookup(c).ok_or_else(|| format!("unknown capability {c:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        for h in &raw.handles {
            short("handles entry", h, 256)?;
        }
        Ok(Manifest {
            id: raw.id,
            name: raw.name,
            description: raw.description,
            exec: raw.exec,
            capabilities,
            handles: raw.handles,
            sandbox: raw.sandbox,
        })
    }

    pub fn declares(&self, capability: &Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// A SHA-256 of the parsed content (hex): two manifests that say the same thing have the
    /// same fingerprint, whatever their layout or comments.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::json!([
            self.id,
            self.name,
            self.description,
            self.exec,
            self.capability_names(),
            self.handles,
            self.sandbox,
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    pub fn capability_names(&self) -> Vec<String> {
        self.capabilities
            .iter()
            .map(|c| c.name.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "docs"
name = "Documents"
description = "Finds documents"
exec = "/usr/libexec/agentos/agentos-agent-docs"
capabilities = ["files.list", "files.read"]
handles = ["find documents"]
"#;

    #[test]
    fn parses_a_good_manifest() {
        let m = Manifest::parse(GOOD).unwrap();
        assert_eq!(m.id, "docs");
        assert!(m.declares(Capability::lookup("files.read").unwrap()));
        assert!(!m.declares(Capability::lookup("web.fetch").unwrap()));
        assert!(m.sandbox, "sandboxed unless it says otherwise");
        let unsandboxed = Manifest::parse(&format!("{GOOD}sandbox = false\n")).unwrap();
        assert!(!unsandboxed.sandbox);
    }

    #[test]
    fn the_fingerprint_follows_the_content_not_the_layout() {
        let m = Manifest::parse(GOOD).unwrap();
        let relaid =
            Manifest::parse(&format!("# a comment\n{}", GOOD.replace(" = ", "="))).unwrap();
        assert_eq!(m.fingerprint(), relaid.fingerprint());
        assert_eq!(m.fingerprint().len(), 64);
        let other = Manifest::parse(&GOOD.replace("/usr/libexec", "/opt")).unwrap();
        assert_ne!(m.fingerprint(), other.fingerprint());
        let unsandboxed = Manifest::parse(&format!("{GOOD}sandbox = false\n")).unwrap();
        assert_ne!(m.fingerprint(), unsandboxed.fingerprint());
    }

    #[test]
    fn refuses_bad_manifests_with_reasons() {
        assert!(Manifest::parse("id = 'x'")
            .unwrap_err()
            .contains("missing field"));
        let bad_id = GOOD.replace("\"docs\"", "\"../evil\"");
        assert!(Manifest::parse(&bad_id)
            .unwrap_err()
            .contains("not a valid agent id"));
        let bad_cap = GOOD.replace("files.read", "root.all");
        assert!(Manifest::parse(&bad_cap)
            .unwrap_err()
            .contains("unknown capability"));
        let extra = format!("{GOOD}\nsetuid = true\n");
        assert!(Manifest::parse(&extra).is_err());
        let ctrl = GOOD.replace("Documents", "Docu\u{202e}ments");
        assert!(Manifest::parse(&ctrl).is_err());
        assert!(Manifest::parse("\0\0garbage").is_err());
    }
}
