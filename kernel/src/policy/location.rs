//! Whether the user can change a file through its path: the rule that decides how far a manifest
//! is trusted (pure; the file system is read by `discovery`).
//!
//! A path is out of the user's reach when the file and every folder above it are owned by root
//! or by another user, and none of them is writable by the user through its group or by everyone.
//! A folder with the sticky bit (`/tmp`) lets nobody but an entry's owner replace that entry, so
//! its group and world bits do not count.

/// What the rule needs to know of one component of a path (`stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    pub uid: u32,
    pub gid: u32,
    /// The permission bits, sticky bit included (`st_mode & 0o7777`).
    pub mode: u32,
    pub is_dir: bool,
}

/// Who the user is: the kernel's effective uid and its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub groups: Vec<u32>,
}

impl User {
    /// Why the user can change `c`, or `None` when it cannot. Root owning a component does not
    /// count: root's files are the system's, even for a kernel that runs as root.
    pub fn can_write(&self, c: &Component) -> Option<&'static str> {
        let sticky = c.is_dir && c.mode & 0o1000 != 0;
        if c.uid == self.uid && c.uid != 0 {
            Some("owned by the user")
        } else if sticky {
            None
        } else if c.mode & 0o002 != 0 {
            Some("writable by everyone")
        } else if c.mode & 0o020 != 0 && self.groups.contains(&c.gid) {
            Some("writable by a group of the user")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(uid: u32, gid: u32, mode: u32, is_dir: bool) -> Component {
        Component {
            uid,
            gid,
            mode,
            is_dir,
        }
    }

    #[test]
    fn the_users_own_files_and_shared_folders_are_in_reach() {
        let user = User {
            uid: 1000,
            groups: vec![1000, 50],
        };
        assert_eq!(
            user.can_write(&c(1000, 1000, 0o444, false)),
            Some("owned by the user")
        );
        assert_eq!(user.can_write(&c(0, 0, 0o755, true)), None);
        assert_eq!(user.can_write(&c(0, 0, 0o644, false)), None);
        assert_eq!(user.can_write(&c(1001, 1001, 0o755, true)), None);
        assert_eq!(
            user.can_write(&c(0, 50, 0o2775, true)),
            Some("writable by a group of the user")
        );
        assert_eq!(user.can_write(&c(0, 51, 0o775, true)), None);
        assert_eq!(
            user.can_write(&c(0, 0, 0o777, true)),
            Some("writable by everyone")
        );
        assert_eq!(
            user.can_write(&c(0, 0, 0o666, false)),
            Some("writable by everyone")
        );
        // /tmp: world-writable but sticky, so an entry owned by another stays theirs.
        assert_eq!(user.can_write(&c(0, 0, 0o1777, true)), None);
        // The sticky bit means nothing on a file.
        assert_eq!(
            user.can_write(&c(0, 0, 0o1666, false)),
            Some("writable by everyone")
        );
    }

    #[test]
    fn a_kernel_running_as_root_trusts_roots_files_only_when_nobody_else_can_write_them() {
        let root = User {
            uid: 0,
            groups: vec![0],
        };
        assert_eq!(root.can_write(&c(0, 0, 0o755, true)), None);
        assert_eq!(
            root.can_write(&c(0, 0, 0o775, true)),
            Some("writable by a group of the user")
        );
        assert_eq!(
            root.can_write(&c(0, 0, 0o777, true)),
            Some("writable by everyone")
        );
    }
}
