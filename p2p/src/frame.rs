//! Where one D-Bus message ends in a byte stream, and how many fds it carries: what a reader
//! needs to hand a message, and only its own fds, to zbus when it has read past it.

use zbus::zvariant::serialized::{Context, Data};
use zbus::zvariant::{Endian, Value};

/// Bytes of the fixed part of every message: endianness, type, flags, version, body length,
/// serial, and the length of the header fields array.
pub(crate) const FIXED: usize = 16;

/// The longest message the D-Bus specification allows (2^27 bytes), as zbus enforces.
pub(crate) const MAX_MESSAGE: usize = 128 * 1024 * 1024;

/// The header field that counts a message's fds.
const UNIX_FDS: u8 = 9;

/// What the fixed part tells about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    pub endian: Endian,
    /// The header's length up to the end of its fields (before the padding to the body).
    pub header_len: usize,
    /// The whole message's length.
    pub len: usize,
}

/// Reads the fixed part (the first [`FIXED`] bytes of `bytes`).
pub(crate) fn frame(bytes: &[u8]) -> Result<Frame, zbus::Error> {
    let fixed: &[u8; FIXED] = bytes
        .get(..FIXED)
        .and_then(|b| b.try_into().ok())
        .ok_or(zbus::Error::InvalidField)?;
    let endian = match fixed[0] {
        b'l' => Endian::Little,
        b'B' => Endian::Big,
        _ => return Err(zbus::Error::IncorrectEndian),
    };
    let u32_at = |i: usize| {
        let b = [fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]];
        (match endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }) as usize
    };
    let (body_len, fields_len) = (u32_at(4), u32_at(12));
    let header_len = FIXED
        .checked_add(fields_len)
        .ok_or(zbus::Error::ExcessData)?;
    let len = header_len
        .checked_next_multiple_of(8)
        .and_then(|h| h.checked_add(body_len))
        .ok_or(zbus::Error::ExcessData)?;
    if len > MAX_MESSAGE {
        return Err(zbus::Error::ExcessData);
    }
    Ok(Frame {
        endian,
        header_len,
        len,
    })
}

/// How many fds a whole message says it carries (its `UNIX_FDS` header field, 0 without one).
pub(crate) fn unix_fds(message: &[u8], frame: Frame) -> Result<usize, zbus::Error> {
    // The fields array starts with its length, at offset 12; alignment counts from the start.
    let fields = message
        .get(FIXED - 4..frame.header_len)
        .ok_or(zbus::Error::InvalidField)?;
    let data = Data::new(fields, Context::new_dbus(frame.endian, FIXED - 4));
    let (fields, _): (Vec<(u8, Value<'_>)>, _) = data.deserialize()?;
    for (code, value) in fields {
        if code == UNIX_FDS {
            return match value {
                Value::U32(n) => Ok(n as usize),
                _ => Err(zbus::Error::InvalidField),
            };
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn call(fds: usize) -> Vec<u8> {
        let files: Vec<_> = (0..fds).map(|_| tempfile::tempfile().unwrap()).collect();
        let body: Vec<zbus::zvariant::Fd<'_>> = files.iter().map(|f| f.as_fd().into()).collect();
        let msg = zbus::Message::method_call("/org/agentos/Kernel", "Call")
            .unwrap()
            .interface("org.agentos.Test1")
            .unwrap()
            .build(&("a string to pad the body", body))
            .unwrap();
        msg.data().to_vec()
    }

    #[test]
    fn frames_and_fd_counts_match_what_zbus_wrote() {
        for fds in [0, 1, 3] {
            let bytes = call(fds);
            let f = frame(&bytes).unwrap();
            assert_eq!(f.len, bytes.len());
            assert_eq!(unix_fds(&bytes, f).unwrap(), fds);
        }
    }

    #[test]
    fn bad_fixed_parts_are_refused() {
        let mut bytes = call(0);
        assert!(frame(&bytes[..10]).is_err());
        bytes[0] = b'x';
        assert!(matches!(frame(&bytes), Err(zbus::Error::IncorrectEndian)));
        let mut huge = call(0);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(frame(&huge), Err(zbus::Error::ExcessData)));
        let mut fields = call(1);
        let f = frame(&fields).unwrap();
        // Cut the header fields short: the count cannot be read.
        fields[12..16].copy_from_slice(&3u32.to_le_bytes());
        let short = Frame {
            header_len: FIXED + 3,
            ..f
        };
        assert!(unix_fds(&fields, short).is_err());
    }
}
