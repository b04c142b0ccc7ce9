//! The broker's watch, started with its first request: it starts what may start when the
//! scheduler's next deadline comes (a held slot released, background work come of age), and
//! cancels a task's requests when the task ends. With no deadline pending it sleeps without a
//! timer.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use super::service::Broker;
use crate::clock::Clock;
use crate::events::Event;

/// Run until the kernel's event stream ends (the kernel went away).
pub async fn watch(
    broker: Arc<Broker>,
    clock: Arc<dyn Clock>,
    mut events: UnboundedReceiver<Arc<Event>>,
) {
    loop {
        let now = clock.now_ms();
        let deadline = broker.next_deadline(now);
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep(Duration::from_millis(at.saturating_sub(now))).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.recv() => match event.as_deref() {
                None => return,
                Some(Event::TaskChanged(task)) if task.state.is_terminal() => {
                    broker.cancel_task(task.id, clock.now_ms());
                }
                Some(_) => {}
            },
            () = broker.wake.notified() => {}
            () = sleep => broker.pump(clock.now_ms()),
        }
    }
}
