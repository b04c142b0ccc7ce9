//! Fuzzing the agent manifest parser ([`Manifest::parse`]): arbitrary text, TOML-shaped token
//! soup, deep nesting, byte-level mutations of a good manifest, and manifests built from
//! arbitrary field values. It must never panic nor allocate out of proportion to its input (a
//! manifest file is read only up to 64 KiB); what it accepts must hold every documented rule;
//! and a manifest built from fields is accepted exactly when the rules say so, else refused with
//! the documented reason for the first field that breaks them.
//!
//! Stable Rust has no libFuzzer here, so these are property tests with a bounded number of cases
//! (a few seconds in CI). To fuzz longer, raise the count, e.g.
//! `PROPTEST_CASES=100000 cargo test -p agentos-kernel --test fuzz_manifest --release`.

// The only unsafe code here is the counting allocator, which forwards to the system's.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use agentos_dbus_interfaces::Capability;
use agentos_kernel::manifest::Manifest;
use proptest::prelude::*;

/// The largest manifest the kernel reads (`Manifest::load` refuses larger files).
const MAX_MANIFEST: usize = 64 * 1024;

/// Cases per property: `PROPTEST_CASES` if set, else `default` (kept small for CI).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The system allocator, counting the bytes live on each thread and their peak.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: no panic while the thread is being torn down.
    let _ = LIVE.try_with(|l| {
        let now = l.get() + delta;
        l.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract; counting
// touches only const-initialized thread-locals and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: `ptr` came from `System` with `layout`; the caller checked `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Parse `text`, checking the allocation bound; returns what the parser said.
fn parse(text: &str) -> Result<Manifest, String> {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let parsed = Manifest::parse(text);
    let peak = (PEAK.with(Cell::get) - base).max(0) as usize;
    // Linear in the input, never what a length or count inside the text claims: the TOML
    // parser keeps about 50 bytes of tokens per byte of input (up to 80 on deep nesting).
    let bound = 128 * text.len() + 256 * 1024;
    assert!(
        peak <= bound,
        "parsing {} bytes held {peak} bytes at once",
        text.len()
    );
    parsed
}

/// A character no manifest text field may hold: a control character or a bidi control.
fn forbidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The reason the rules give for refusing a text field, if any (`may_be_empty`: description).
fn text_fault(field: &str, value: &str, max: usize, may_be_empty: bool) -> Option<String> {
    if value.trim().is_empty() && !may_be_empty {
        Some(format!("{field} is empty"))
    } else if value.len() > max {
        Some(format!("{field} is longer than {max} bytes"))
    } else if value.chars().any(forbidden) {
        Some(format!("{field} contains control characters"))
    } else {
        None
    }
}

/// What an accepted manifest must hold, whatever text it came from.
fn check_accepted(m: &Manifest) -> Result<(), TestCaseError> {
    prop_assert!(valid_id(&m.id), "id {:?}", m.id);
    prop_assert!(text_fault("name", &m.name, 256, false).is_none(), "{m:?}");
    prop_assert!(text_fault("description", &m.description, 1024, true).is_none());
    prop_assert!(text_fault("exec", &m.exec, 4096, false).is_none(), "{m:?}");
    for h in &m.handles {
        prop_assert!(
            text_fault("handles entry", h, 256, false).is_none(),
            "{h:?}"
        );
    }
    for c in &m.capabilities {
        prop_assert!(Capability::lookup(c.name).is_some());
    }
    Ok(())
}

/// `s` as a TOML basic string.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| quoted(s)).collect();
    format!("[{}]", items.join(", "))
}

/// Manifest fields, each of which may break the rules.
#[derive(Debug, Clone)]
struct Fields {
    id: String,
    name: String,
    description: Option<String>,
    exec: String,
    capabilities: Vec<String>,
    handles: Vec<String>,
    sandbox: Option<bool>,
}

impl Fields {
    fn text(&self) -> String {
        let mut t = format!(
            "id = {}\nname = {}\nexec = {}\n",
            quoted(&self.id),
            quoted(&self.name),
            quoted(&self.exec)
        );
        if let Some(d) = &self.description {
            t.push_str(&format!("description = {}\n", quoted(d)));
        }
        t.push_str(&format!("capabilities = {}\n", list(&self.capabilities)));
        t.push_str(&format!("handles = {}\n", list(&self.handles)));
        if let Some(s) = self.sandbox {
            t.push_str(&format!("sandbox = {s}\n"));
        }
        t
    }

    /// The documented reason to refuse these fields, checked in the documented order.
    fn fault(&self) -> Option<String> {
        if !valid_id(&self.id) {
            return Some("is not a valid agent id".into());
        }
        let description = self.description.as_deref().unwrap_or("");
        text_fault("name", &self.name, 256, false)
            .or_else(|| text_fault("description", description, 1024, true))
            .or_else(|| text_fault("exec", &self.exec, 4096, false))
            .or_else(|| {
                self.capabilities
                    .iter()
                    .find(|c| Capability::lookup(c).is_none())
                    .map(|c| format!("unknown capability {c:?}"))
            })
            .or_else(|| {
                self.handles
                    .iter()
                    .find_map(|h| text_fault("handles entry", h, 256, false))
            })
    }
}

/// Text that is usually valid for a field, sometimes empty, blank, long, or with a control or
/// bidi character in it.
fn field_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "[A-Za-z0-9 ._/-]{1,40}",
        1 => Just(String::new()),
        1 => "[ \t]{1,4}",
        1 => (max - 2..max + 3).prop_map(|n| "x".repeat(n)),
        1 => ("[a-z]{0,10}", prop::sample::select(vec![
            '\u{0}', '\n', '\u{7f}', '\u{85}', '\u{202e}', '\u{2066}', '\u{200f}', '\u{061c}',
        ]), "[a-z]{0,10}").prop_map(|(a, c, b)| format!("{a}{c}{b}")),
        1 => any::<String>(),
    ]
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "[A-Za-z0-9][A-Za-z0-9._-]{0,30}",
        1 => Just(String::new()),
        1 => "[._-][A-Za-z0-9]{0,5}",
        1 => "\\.\\./[a-z]{1,5}",
        1 => (254usize..258).prop_map(|n| "a".repeat(n)),
        1 => any::<String>(),
    ]
}

fn capability() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec![
            "files.read", "files.list", "web.fetch", "agent.delegate", "agent.call",
        ]).prop_map(String::from),
        1 => "[a-z]{1,8}\\.[a-z]{1,8}",
        1 => any::<String>(),
    ]
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        id(),
        field_text(256),
        prop::option::of(field_text(1024)),
        field_text(4096),
        prop::collection::vec(capability(), 0..4),
        prop::collection::vec(field_text(256), 0..3),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(id, name, description, exec, capabilities, handles, sandbox)| Fields {
                id,
                name,
                description,
                exec,
                capabilities,
                handles,
                sandbox,
            },
        )
}

const GOOD: &str = r#"id = "docs"
name = "Documents"
description = "Finds documents"
exec = "/usr/libexec/agentos/agentos-agent-docs"
capabilities = ["files.list", "files.read"]
handles = ["find documents"]
sandbox = true
"#;

/// Pieces TOML is made of, for text that gets past the tokenizer more often than random bytes.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "id",
            "name",
            "exec",
            "description",
            "capabilities",
            "handles",
            "sandbox",
            "=",
            " ",
            "\n",
            "\"",
            "'",
            "\"\"\"",
            "'''",
            "[",
            "]",
            "[[",
            "]]",
            "{",
            "}",
            ",",
            ".",
            "#",
            "\\",
            "\\u",
            "\\U0010FFFF",
            "\\uD800",
            "true",
            "false",
            "1979-05-27T07:32:00Z",
            "0x7f",
            "1e400",
            "-0",
            "inf",
            "nan",
            "\r\n",
            "\t",
            "\u{feff}",
            "\u{202e}",
        ])
        .prop_map(String::from),
        "[a-z.]{1,6}",
        any::<char>().prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// Any text at all: an answer, never a panic; what is accepted holds the rules.
    #[test]
    fn arbitrary_text_is_answered_and_what_is_accepted_holds_the_rules(text in any::<String>()) {
        if let Ok(m) = parse(&text) {
            check_accepted(&m)?;
        }
    }

    /// TOML-shaped token soup, often after a good manifest's first lines.
    #[test]
    fn token_soup_is_answered_and_what_is_accepted_holds_the_rules(
        prefix in prop::sample::select(vec![0usize, 2, 4, 7]),
        tokens in prop::collection::vec(token(), 0..200),
    ) {
        let head: String = GOOD.lines().take(prefix).map(|l| format!("{l}\n")).collect();
        let text = format!("{head}{}", tokens.concat());
        if let Ok(m) = parse(&text) {
            check_accepted(&m)?;
        }
    }

    /// A good manifest with bytes overwritten, inserted, deleted or cut (and made text again).
    #[test]
    fn mutated_good_manifests_are_answered_and_what_is_accepted_holds_the_rules(
        edits in prop::collection::vec(
            (0u8..4, any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..8)),
            1..8,
        ),
    ) {
        let mut bytes = GOOD.as_bytes().to_vec();
        for (kind, at, piece) in edits {
            let at = at.index(bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => bytes[at] = piece[0],
                1 => { bytes.splice(at..at, piece); }
                2 => { bytes.drain(at..(at + piece.len()).min(bytes.len())); }
                _ => bytes.truncate(at),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(m) = parse(&text) {
            check_accepted(&m)?;
        }
    }

    /// A manifest built from arbitrary fields is accepted exactly when every rule holds, with
    /// the fields as written; otherwise the reason names the first rule broken.
    #[test]
    fn manifests_from_fields_are_judged_by_the_documented_rules(f in fields()) {
        let text = f.text();
        match (parse(&text), f.fault()) {
            (Ok(m), None) => {
                check_accepted(&m)?;
                prop_assert_eq!(&m.id, &f.id);
                prop_assert_eq!(&m.name, &f.name);
                prop_assert_eq!(&m.description, &f.description.clone().unwrap_or_default());
                prop_assert_eq!(&m.exec, &f.exec);
                prop_assert_eq!(m.capability_names(), f.capabilities.clone());
                prop_assert_eq!(&m.handles, &f.handles);
                prop_assert_eq!(m.sandbox, f.sandbox.unwrap_or(true));
            }
            (Err(e), Some(why)) => prop_assert!(e.contains(&why), "{e:?} should say {why:?}"),
            (Ok(m), Some(why)) => prop_assert!(false, "accepted {m:?} though {why}"),
            (Err(e), None) => prop_assert!(false, "refused good fields {f:?}: {e}"),
        }
    }

    /// A field the format does not know is refused, whatever its name and value.
    #[test]
    fn unknown_fields_are_refused(key in "[a-z_]{1,12}", value in prop::sample::select(vec![
        "true", "1", "\"x\"", "[]", "{}",
    ])) {
        prop_assume!(!["id", "name", "description", "exec", "capabilities", "handles", "sandbox"]
            .contains(&key.as_str()));
        let text = format!("{GOOD}{key} = {value}\n");
        let e = parse(&text).unwrap_err();
        prop_assert!(e.contains("unknown field"), "{e}");
    }
}

/// Nesting as deep as a manifest file may hold (64 KiB of brackets or braces) ends in an answer
/// on a test thread's stack, without a stack overflow.
#[test]
fn deep_nesting_up_to_the_file_limit_is_refused_without_overflowing_the_stack() {
    let depth = MAX_MANIFEST / 2 - 16;
    for (open, close) in [("[", "]"), ("{ a = ", "}")] {
        let text = format!("x = {}{}", open.repeat(depth), close.repeat(depth));
        let text = &text[..text.len().min(MAX_MANIFEST)];
        assert!(parse(text).is_err());
    }
    let dotted = format!("{} = 1", vec!["a"; MAX_MANIFEST / 2 - 8].join("."));
    assert!(parse(&dotted).is_err());
    let tables = "[a]\n".repeat(MAX_MANIFEST / 4);
    assert!(parse(&tables).is_err());
}
