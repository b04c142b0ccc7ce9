//! The D-Bus names of error replies, as zbus hands them over (the bus's own errors typed,
//! others by name): what the panel decides by (a portal that is not there, a principal that is
//! not an agent).

/// The D-Bus name of an error reply, if `e` is one (zbus hands the bus's own errors over
/// typed, others by name).
pub fn error_name(e: &zbus::Error) -> Option<String> {
    use zbus::DBusError as _;
    match e {
        zbus::Error::MethodError(name, ..) => Some(name.to_string()),
        zbus::Error::FDO(e) => match e.as_ref() {
            zbus::fdo::Error::ZBus(z) => error_name(z),
            other => Some(other.name().to_string()),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_replies_are_named() {
        let e = zbus::Error::FDO(Box::new(zbus::fdo::Error::ServiceUnknown("x".into())));
        assert_eq!(
            error_name(&e).as_deref(),
            Some("org.freedesktop.DBus.Error.ServiceUnknown")
        );
        let e = zbus::Error::FDO(Box::new(zbus::fdo::Error::ZBus(zbus::Error::FDO(
            Box::new(zbus::fdo::Error::UnknownObject("x".into())),
        ))));
        assert_eq!(
            error_name(&e).as_deref(),
            Some("org.freedesktop.DBus.Error.UnknownObject")
        );
        assert_eq!(error_name(&zbus::Error::InvalidReply), None);
    }
}
