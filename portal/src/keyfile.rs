//! One reader of the key-file format GLib's `GKeyFile` reads and the Desktop Entry spec describes:
//! `.portal` files, `portals.conf`, `.desktop` files, `/.flatpak-info`. It follows GLib where the
//! spec leaves room, because the files it reads are written for GLib readers (xdg-desktop-portal,
//! flatpak, gio):
//!
//! - blank lines and lines starting with `#` (after leading whitespace) are comments;
//! - `[Group]` starts a group; a group seen again continues the first one;
//! - `key = value`: whitespace around `=` is dropped, whitespace after the value is kept;
//! - a key seen again in a group replaces the earlier value (the later one wins);
//! - a key before any group, or a line that is none of the above, makes the whole file invalid;
//! - `Name[de]` is a key of its own; [`KeyFile::locale_string`] picks a translation;
//! - values are unescaped when read (`\s \n \t \r \\`; `\;` in lists), so one stray escape makes
//!   that value invalid, not the file.

/// A parsed key file: its groups in the order they first appear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFile {
    groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    name: String,
    /// Keys in the order they first appear, with their raw (still escaped) values.
    entries: Vec<(String, String)>,
}

/// Why a file is not a key file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("the file is not UTF-8")]
    NotUtf8,
    #[error("line {line}: a key before the first group")]
    KeyOutsideGroup { line: usize },
    #[error("line {line}: invalid group name")]
    InvalidGroupName { line: usize },
    #[error("line {line}: invalid key name")]
    InvalidKeyName { line: usize },
    #[error("line {line}: neither a group, a key=value pair nor a comment")]
    InvalidLine { line: usize },
}

/// Why a value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    #[error("no key {key} in group [{group}]")]
    NotFound { group: String, key: String },
    #[error("[{group}] {key}: invalid escape sequence \\{escape}")]
    InvalidEscape {
        group: String,
        key: String,
        escape: char,
    },
    #[error("[{group}] {key}: an escape character at the end of the value")]
    EscapeAtEnd { group: String, key: String },
    #[error("[{group}] {key}: not a boolean")]
    NotBoolean { group: String, key: String },
}

impl KeyFile {
    /// Parse key-file bytes (they must be UTF-8, as GLib requires).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        Self::parse(std::str::from_utf8(bytes).map_err(|_| ParseError::NotUtf8)?)
    }

    /// Parse key-file text.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut file = KeyFile::default();
        let mut current: Option<usize> = None;
        for (index, raw) in text.split('\n').enumerate() {
            let line_no = index + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let line = raw.trim_start_matches(|c: char| c.is_ascii_whitespace());
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = group_header(line) {
                if !is_group_name(name) {
                    return Err(ParseError::InvalidGroupName { line: line_no });
                }
                current = Some(file.group_index(name).unwrap_or_else(|| {
                    file.groups.push(Group {
                        name: name.to_string(),
                        entries: Vec::new(),
                    });
                    file.groups.len() - 1
                }));
                continue;
            }
            let Some((key, value)) = line.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return Err(ParseError::InvalidLine { line: line_no });
            };
            let Some(group) = current else {
                return Err(ParseError::KeyOutsideGroup { line: line_no });
            };
            let key = key.trim_end_matches(|c: char| c.is_ascii_whitespace());
            if !is_key_name(key) {
                return Err(ParseError::InvalidKeyName { line: line_no });
            }
            let value = value.trim_start_matches(|c: char| c.is_ascii_whitespace());
            let entries = &mut file.groups[group].entries;
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some(entry) => entry.1 = value.to_string(),
                None => entries.push((key.to_string(), value.to_string())),
            }
        }
        Ok(file)
    }

    fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }

    /// The group names, in the order they first appear.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|g| g.name.as_str())
    }

    /// Whether the file has this group.
    pub fn has_group(&self, group: &str) -> bool {
        self.group_index(group).is_some()
    }

    /// The keys of a group (localized ones included), in the order they first appear.
    pub fn keys<'a>(&'a self, group: &str) -> impl Iterator<Item = &'a str> {
        self.group_index(group)
            .map(|i| self.groups[i].entries.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|(k, _)| k.as_str())
    }

    /// The value as written, escapes and all.
    pub fn raw(&self, group: &str, key: &str) -> Option<&str> {
        let group = &self.groups[self.group_index(group)?];
        group
            .entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn raw_or_missing(&self, group: &str, key: &str) -> Result<&str, ValueError> {
        self.raw(group, key).ok_or_else(|| ValueError::NotFound {
            group: group.to_string(),
            key: key.to_string(),
        })
    }

    /// A string value, unescaped (`\;` stays as it is, as GLib leaves it).
    pub fn string(&self, group: &str, key: &str) -> Result<String, ValueError> {
        let raw = self.raw_or_missing(group, key)?;
        let mut pieces = unescape(raw, false).map_err(|e| e.at(group, key))?;
        Ok(pieces.pop().unwrap_or_default())
    }

    /// A list of strings separated by `;` (a last `;` ends the list; `\;` is a `;` in an item).
    pub fn string_list(&self, group: &str, key: &str) -> Result<Vec<String>, ValueError> {
        let raw = self.raw_or_missing(group, key)?;
        unescape(raw, true).map_err(|e| e.at(group, key))
    }

    /// A boolean: `true`/`1` or `false`/`0`, as GLib reads them.
    pub fn boolean(&self, group: &str, key: &str) -> Result<bool, ValueError> {
        let raw = self.raw_or_missing(group, key)?;
        match raw.trim_end_matches(|c: char| c.is_ascii_whitespace()) {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(ValueError::NotBoolean {
                group: group.to_string(),
                key: key.to_string(),
            }),
        }
    }

    /// The translation of `key` for `locale` (`lang_COUNTRY.ENCODING@MODIFIER`, as in `LC_MESSAGES`),
    /// matched as the Desktop Entry spec says: `lang_COUNTRY@MODIFIER`, `lang_COUNTRY`,
    /// `lang@MODIFIER`, `lang`, then the untranslated key.
    pub fn locale_string(
        &self,
        group: &str,
        key: &str,
        locale: &str,
    ) -> Result<String, ValueError> {
        // `lang_COUNTRY.ENCODING@MODIFIER`: the encoding plays no part.
        let (rest, modifier) = match locale.split_once('@') {
            Some((rest, m)) => (rest, Some(m)),
            None => (locale, None),
        };
        let lang_country = rest.split_once('.').map_or(rest, |(lc, _)| lc);
        let (lang, has_country) = match lang_country.split_once('_') {
            Some((lang, _)) => (lang, true),
            None => (lang_country, false),
        };
        let mut candidates = Vec::new();
        if has_country {
            candidates.extend(modifier.map(|m| format!("{lang_country}@{m}")));
            candidates.push(lang_country.to_string());
        }
        candidates.extend(modifier.map(|m| format!("{lang}@{m}")));
        if !lang.is_empty() {
            candidates.push(lang.to_string());
        }
        for c in candidates {
            let localized = format!("{key}[{c}]");
            if self.raw(group, &localized).is_some() {
                return self.string(group, &localized);
            }
        }
        self.string(group, key)
    }
}

/// The name between `[` and `]` when the line is a group header (whitespace may follow `]`).
fn group_header(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let end = rest.find(']')?;
    rest[end + 1..]
        .chars()
        .all(|c| c == ' ' || c == '\t')
        .then(|| &rest[..end])
}

/// A group name: not empty, no `[`, `]` or control characters.
fn is_group_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c == '[' || c == ']' || c.is_control())
}

/// A key name as GLib accepts it: not empty, no `=`, `[` or `]`, not starting or ending with a
/// space; optionally followed by `[locale]` of letters, digits and `-_.@`.
fn is_key_name(key: &str) -> bool {
    let (base, locale) = match key.find('[') {
        Some(i) => (&key[..i], Some(&key[i + 1..])),
        None => (key, None),
    };
    let base_ok = !base.is_empty()
        && !base.starts_with(' ')
        && !base.ends_with(' ')
        && !base.contains([']', '=']);
    let locale_ok = locale.is_none_or(|l| {
        l.strip_suffix(']').is_some_and(|l| {
            l.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        })
    });
    base_ok && locale_ok
}

/// An escape error before it knows where it happened.
enum Unescape {
    Invalid(char),
    AtEnd,
}

impl Unescape {
    fn at(self, group: &str, key: &str) -> ValueError {
        let (group, key) = (group.to_string(), key.to_string());
        match self {
            Unescape::Invalid(escape) => ValueError::InvalidEscape { group, key, escape },
            Unescape::AtEnd => ValueError::EscapeAtEnd { group, key },
        }
    }
}

/// Undo the escapes; as a list, split at unescaped `;`. A plain string comes back as one piece.
fn unescape(raw: &str, list: bool) -> Result<Vec<String>, Unescape> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                None => return Err(Unescape::AtEnd),
                Some('s') => current.push(' '),
                Some('n') => current.push('\n'),
                Some('t') => current.push('\t'),
                Some('r') => current.push('\r'),
                Some('\\') => current.push('\\'),
                Some(';') if list => current.push(';'),
                Some(';') => current.push_str("\\;"),
                Some(other) => return Err(Unescape::Invalid(other)),
            },
            ';' if list => pieces.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if !list || !current.is_empty() {
        pieces.push(current);
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kf(text: &str) -> KeyFile {
        KeyFile::parse(text).unwrap()
    }

    #[test]
    fn groups_comments_and_whitespace_around_equals() {
        let f = kf("# leading comment\n\n[portal]\n  # indented comment\nDBusName = org.x.Y\n\tUseIn=gnome\r\n[other]\nk=v\n");
        assert_eq!(f.groups().collect::<Vec<_>>(), ["portal", "other"]);
        assert_eq!(f.string("portal", "DBusName").unwrap(), "org.x.Y");
        assert_eq!(f.string("portal", "UseIn").unwrap(), "gnome");
        assert_eq!(f.string("other", "k").unwrap(), "v");
        assert!(f.has_group("other") && !f.has_group("Other"));
    }

    #[test]
    fn trailing_whitespace_of_a_value_is_kept_as_glib_keeps_it() {
        let f = kf("[g]\na=x  \nb=\\sy\n");
        assert_eq!(f.string("g", "a").unwrap(), "x  ");
        assert_eq!(f.string("g", "b").unwrap(), " y");
    }

    #[test]
    fn group_headers_allow_trailing_blanks_only() {
        assert!(kf("[g]  \t\nk=v\n").has_group("g"));
        assert_eq!(
            KeyFile::parse("[g] x\n"),
            Err(ParseError::InvalidLine { line: 1 })
        );
        assert_eq!(
            KeyFile::parse("[]\n"),
            Err(ParseError::InvalidGroupName { line: 1 })
        );
        assert_eq!(
            KeyFile::parse("[a[b]\n"),
            Err(ParseError::InvalidGroupName { line: 1 })
        );
    }

    #[test]
    fn keys_outside_a_group_and_stray_lines_are_errors() {
        assert_eq!(
            KeyFile::parse("# c\nk=v\n[g]\n"),
            Err(ParseError::KeyOutsideGroup { line: 2 })
        );
        assert_eq!(
            KeyFile::parse("[g]\nk=v\njunk\n"),
            Err(ParseError::InvalidLine { line: 3 })
        );
        assert_eq!(
            KeyFile::parse("[g]\n=v\n"),
            Err(ParseError::InvalidLine { line: 2 })
        );
        assert_eq!(
            KeyFile::parse("[g]\n k x =v\n"),
            Ok(kf("[g]\nk x=v\n")),
            "spaces inside a key are accepted, as GLib does"
        );
        assert_eq!(
            KeyFile::parse("[g]\nk]=v\n"),
            Err(ParseError::InvalidKeyName { line: 2 })
        );
        assert_eq!(
            KeyFile::from_bytes(b"[g]\nk=\xff\n"),
            Err(ParseError::NotUtf8)
        );
    }

    #[test]
    fn later_keys_win_and_repeated_groups_merge() {
        let f = kf("[a]\nk=1\nj=x\n[b]\nk=2\n[a]\nk=3\nl=4\n");
        assert_eq!(f.groups().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(f.string("a", "k").unwrap(), "3");
        assert_eq!(f.keys("a").collect::<Vec<_>>(), ["k", "j", "l"]);
        assert_eq!(f.string("b", "k").unwrap(), "2");
    }

    #[test]
    fn escapes() {
        let f = kf("[g]\na=x\\sy\\nz\\tw\\rv\\\\u\nb=a\\;b\nbad=\\q\nend=x\\\n");
        assert_eq!(f.string("g", "a").unwrap(), "x y\nz\tw\rv\\u");
        assert_eq!(f.string("g", "b").unwrap(), "a\\;b");
        assert!(matches!(
            f.string("g", "bad"),
            Err(ValueError::InvalidEscape { escape: 'q', .. })
        ));
        assert!(matches!(
            f.string("g", "end"),
            Err(ValueError::EscapeAtEnd { .. })
        ));
        assert!(matches!(
            f.string("g", "nope"),
            Err(ValueError::NotFound { .. })
        ));
        assert!(matches!(
            f.string("h", "a"),
            Err(ValueError::NotFound { .. })
        ));
    }

    #[test]
    fn string_lists() {
        let f = kf("[g]\na=x;y;\nb=x;y\nc=x\\;y;z\\s;\nd=\ne=;\nf=x;;y\ng=x; y\n");
        let list = |k| f.string_list("g", k).unwrap();
        assert_eq!(list("a"), ["x", "y"]);
        assert_eq!(list("b"), ["x", "y"]);
        assert_eq!(list("c"), ["x;y", "z "]);
        assert!(list("d").is_empty());
        assert_eq!(list("e"), [""]);
        assert_eq!(list("f"), ["x", "", "y"]);
        assert_eq!(
            list("g"),
            ["x", " y"],
            "items are not trimmed, as GLib does"
        );
    }

    #[test]
    fn booleans() {
        let f = kf("[g]\na=true\nb=0\nc=True\nd=false \n");
        assert!(f.boolean("g", "a").unwrap());
        assert!(!f.boolean("g", "b").unwrap());
        assert!(matches!(
            f.boolean("g", "c"),
            Err(ValueError::NotBoolean { .. })
        ));
        assert!(!f.boolean("g", "d").unwrap());
    }

    #[test]
    fn localized_keys_are_distinct_and_matched_by_locale() {
        let f = kf("[Desktop Entry]\nName=Files\nName[de]=Dateien\nName[de_CH]=Dateie\nName[sr@latin]=Datoteke\nName[pt_BR]=Arquivos\n");
        assert_eq!(f.string("Desktop Entry", "Name").unwrap(), "Files");
        assert_eq!(f.string("Desktop Entry", "Name[de]").unwrap(), "Dateien");
        let name = |l| f.locale_string("Desktop Entry", "Name", l).unwrap();
        assert_eq!(name("de_CH.UTF-8"), "Dateie");
        assert_eq!(name("de_AT.UTF-8"), "Dateien");
        assert_eq!(name("de"), "Dateien");
        assert_eq!(name("sr_RS@latin"), "Datoteke");
        assert_eq!(name("sr_RS.UTF-8@latin"), "Datoteke");
        assert_eq!(name("pt"), "Files");
        assert_eq!(name("pt_BR"), "Arquivos");
        assert_eq!(name("C"), "Files");
        assert_eq!(
            KeyFile::parse("[g]\nName[de=x\n"),
            Err(ParseError::InvalidKeyName { line: 2 })
        );
        assert_eq!(
            KeyFile::parse("[g]\nName[d e]=x\n"),
            Err(ParseError::InvalidKeyName { line: 2 })
        );
    }

    #[test]
    fn a_desktop_entry() {
        let f = kf("[Desktop Entry]\nType=Application\nName=Text Editor\nExec=gnome-text-editor %U\nMimeType=text/plain;text/x-c;\nDBusActivatable=true\n\n[Desktop Action new-window]\nName=New Window\nExec=gnome-text-editor --new-window\n");
        let g = "Desktop Entry";
        assert_eq!(f.string(g, "Exec").unwrap(), "gnome-text-editor %U");
        assert_eq!(
            f.string_list(g, "MimeType").unwrap(),
            ["text/plain", "text/x-c"]
        );
        assert!(f.boolean(g, "DBusActivatable").unwrap());
        assert_eq!(
            f.string("Desktop Action new-window", "Exec").unwrap(),
            "gnome-text-editor --new-window"
        );
    }
}
