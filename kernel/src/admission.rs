//! Calls in flight per bus connection: each slow call of a bus client (a delegation that may
//! wait for the user, a call into an agent) holds a ticket while it runs; past the limit, the
//! client's next call is refused at once (`QuotaExceeded`), so one client cannot park unbounded
//! work in the kernel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use agentos_dbus_interfaces::Error;

/// Calls in flight, by client (a unique bus name).
pub struct Admission {
    limit: u32,
    in_flight: Mutex<HashMap<String, u32>>,
}

/// One admitted call; the client's count goes down when it is dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    client: String,
}

impl Admission {
    pub fn new(limit: u32) -> Arc<Admission> {
        Arc::new(Admission {
            limit,
            in_flight: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admit one more call of `client`, or refuse it when it has `limit` in flight already.
    pub fn enter(self: &Arc<Self>, client: &str) -> Result<Ticket, Error> {
        let mut map = self.lock();
        let n = map.entry(client.to_string()).or_default();
        if *n >= self.limit {
            return Err(Error::QuotaExceeded(format!(
                "{} calls of this connection are still running (at most {}); wait for their replies",
                n, self.limit
            )));
        }
        *n += 1;
        Ok(Ticket {
            admission: Arc::clone(self),
            client: client.to_string(),
        })
    }

    /// How many calls of `client` run now.
    pub fn in_flight(&self, client: &str) -> u32 {
        self.lock().get(client).copied().unwrap_or(0)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut map = self.admission.lock();
        if let Some(n) = map.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_in_flight_are_bounded_per_client_and_come_back() {
        let a = Admission::new(2);
        let one = a.enter(":1.5").unwrap();
        let two = a.enter(":1.5").unwrap();
        assert!(matches!(a.enter(":1.5"), Err(Error::QuotaExceeded(_))));
        let other = a.enter(":1.6").unwrap();
        drop(one);
        let three = a.enter(":1.5").unwrap();
        assert_eq!(a.in_flight(":1.5"), 2);
        drop((two, three, other));
        assert_eq!(a.in_flight(":1.5"), 0);
        assert!(a.lock().is_empty());
    }
}
