//! The status table: one watch channel per service name, holding only the latest
//! status, and the handle that sets them.
//!
//! A service name's entry, as a state machine (`Absent` is no entry at all):
//!
//! ```text
//!   from       event                           to
//!   Absent     set_serving_status(s)           Known(s)
//!   Absent     a Watch starts                  Unknown
//!   Unknown    set_serving_status(s)           Known(s)
//!   Unknown    its last watcher leaves         Absent
//!   Known(s)   set_serving_status(t)           Known(t)
//!   Known(s)   clear_status, watched           Unknown
//!   Known(s)   clear_status, not watched       Absent
//! ```
//!
//! `Unknown` entries exist only while a `Watch` waits for a name nobody set, so the
//! table is bounded by the names the program sets plus the watch calls in flight
//! (which the server's stream limits bound); a client cannot grow it by watching
//! random names and leaving.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::ServingStatus;

/// Sets the serving status of the services a health service reports. Cheap to clone;
/// every clone sets the same table. Made by [`crate::register`] (or
/// [`HealthReporter::new`] for a [`crate::HealthService`] registered by hand).
#[derive(Clone, Debug)]
pub struct HealthReporter {
    table: Arc<Mutex<Table>>,
}

#[derive(Debug)]
struct Table {
    /// `None`: unknown, kept only while watched (see the module diagram).
    services: HashMap<String, watch::Sender<Option<ServingStatus>>>,
    /// After [`HealthReporter::shutdown`]: every status NOT_SERVING, updates ignored.
    shut_down: bool,
}

impl Default for HealthReporter {
    fn default() -> HealthReporter {
        HealthReporter::new()
    }
}

impl HealthReporter {
    /// A table where the whole server (`""`) is SERVING and no service is known
    /// (grpc-go `health.NewServer`).
    pub fn new() -> HealthReporter {
        let reporter = HealthReporter {
            table: Arc::new(Mutex::new(Table {
                services: HashMap::new(),
                shut_down: false,
            })),
        };
        reporter.set_serving_status("", ServingStatus::Serving);
        reporter
    }

    /// Sets `service`'s status (`""`: the whole server) and tells its watchers.
    /// Ignored after [`HealthReporter::shutdown`] until [`HealthReporter::resume`].
    pub fn set_serving_status(&self, service: &str, status: ServingStatus) {
        let mut table = self.lock();
        if table.shut_down {
            return;
        }
        table.set(service, Some(status));
    }

    /// Forgets `service`: `Check` answers NOT_FOUND and watchers see SERVICE_UNKNOWN.
    /// Ignored after [`HealthReporter::shutdown`].
    pub fn clear_status(&self, service: &str) {
        let mut table = self.lock();
        if table.shut_down {
            return;
        }
        table.set(service, None);
    }

    /// Every known service, `""` included, becomes NOT_SERVING, and later updates are
    /// ignored (grpc-go `health.Server.Shutdown`). [`crate::register`] calls it when
    /// the server is asked to stop.
    pub fn shutdown(&self) {
        let mut table = self.lock();
        table.shut_down = true;
        for sender in table.services.values() {
            sender.send_if_modified(|status| match status {
                Some(s) if *s != ServingStatus::NotServing => {
                    *s = ServingStatus::NotServing;
                    true
                }
                _ => false,
            });
        }
    }

    /// Every known service becomes SERVING and updates are taken again (grpc-go
    /// `health.Server.Resume`).
    pub fn resume(&self) {
        let mut table = self.lock();
        table.shut_down = false;
        for sender in table.services.values() {
            sender.send_if_modified(|status| match status {
                Some(s) if *s != ServingStatus::Serving => {
                    *s = ServingStatus::Serving;
                    true
                }
                _ => false,
            });
        }
    }

    /// `service`'s status, `None` when unknown.
    pub fn status(&self, service: &str) -> Option<ServingStatus> {
        self.lock()
            .services
            .get(service)
            .and_then(|sender| *sender.borrow())
    }

    /// Every known service and its status, sorted by name.
    pub fn statuses(&self) -> Vec<(String, ServingStatus)> {
        let table = self.lock();
        let mut out: Vec<(String, ServingStatus)> = table
            .services
            .iter()
            .filter_map(|(name, sender)| Some((name.clone(), (*sender.borrow())?)))
            .collect();
        out.sort();
        out
    }

    /// A receiver of `service`'s status, creating an unknown entry when there is
    /// none; the guard removes that entry again when it is the last watcher of a
    /// service that is still unknown.
    pub(crate) fn watch(&self, service: &str) -> Watcher {
        let mut table = self.lock();
        let receiver = match table.services.get(service) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = watch::channel(None);
                table.services.insert(service.to_owned(), sender);
                receiver
            }
        };
        Watcher {
            receiver: Some(receiver),
            service: service.to_owned(),
            table: self.table.clone(),
        }
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
        self.lock().services.len()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Nothing panics while the lock is held, so a poisoned table is whole.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Table {
    fn set(&mut self, service: &str, status: Option<ServingStatus>) {
        match self.services.get(service) {
            Some(sender) => {
                if status.is_none() && sender.receiver_count() == 0 {
                    self.services.remove(service);
                } else {
                    sender.send_replace(status);
                }
            }
            None if status.is_some() => {
                self.services
                    .insert(service.to_owned(), watch::channel(status).0);
            }
            None => {}
        }
    }
}

/// One `Watch` call's view of a service's status.
pub(crate) struct Watcher {
    /// `Some` until drop.
    receiver: Option<watch::Receiver<Option<ServingStatus>>>,
    service: String,
    table: Arc<Mutex<Table>>,
}

impl Watcher {
    /// The latest status (`None`: unknown), marking it seen.
    pub(crate) fn latest(&mut self) -> Option<ServingStatus> {
        self.receiver
            .as_mut()
            .and_then(|receiver| *receiver.borrow_and_update())
    }

    /// Completes when the status changed since [`Watcher::latest`]; pending forever
    /// if its entry went away (which needs every receiver gone, so not while this
    /// one lives).
    pub(crate) async fn changed(&mut self) {
        let changed = match self.receiver.as_mut() {
            Some(receiver) => receiver.changed().await.is_ok(),
            None => false,
        };
        if !changed {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let forget = table
            .services
            .get(&self.service)
            .is_some_and(|sender| sender.borrow().is_none() && sender.receiver_count() == 0);
        if forget {
            table.services.remove(&self.service);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_shutdown_and_resume() {
        let r = HealthReporter::new();
        assert_eq!(r.status(""), Some(ServingStatus::Serving));
        assert_eq!(r.status("a"), None);
        r.set_serving_status("a", ServingStatus::NotServing);
        r.shutdown();
        assert_eq!(r.status(""), Some(ServingStatus::NotServing));
        r.set_serving_status("a", ServingStatus::Serving);
        assert_eq!(
            r.status("a"),
            Some(ServingStatus::NotServing),
            "ignored after shutdown"
        );
        r.resume();
        assert_eq!(
            r.statuses(),
            [
                (String::new(), ServingStatus::Serving),
                ("a".to_owned(), ServingStatus::Serving)
            ]
        );
    }

    #[test]
    fn unknown_entries_live_only_while_watched() {
        let r = HealthReporter::new();
        let mut w = r.watch("ghost");
        assert_eq!(w.latest(), None);
        assert_eq!(r.entries(), 2);
        drop(w);
        assert_eq!(
            r.entries(),
            1,
            "the last watcher of an unknown name removes it"
        );

        let w = r.watch("known");
        r.set_serving_status("known", ServingStatus::Serving);
        drop(w);
        assert_eq!(r.entries(), 2, "a known service stays");
        r.clear_status("known");
        assert_eq!(r.entries(), 1, "cleared without watchers: gone");
        assert!(r.statuses().iter().all(|(name, _)| name.is_empty()));
    }

    #[tokio::test]
    async fn a_slow_watcher_sees_the_latest_status_only() {
        let r = HealthReporter::new();
        let mut w = r.watch("s");
        assert_eq!(w.latest(), None);
        for status in [
            ServingStatus::Serving,
            ServingStatus::NotServing,
            ServingStatus::Serving,
            ServingStatus::NotServing,
        ] {
            r.set_serving_status("s", status);
        }
        w.changed().await;
        assert_eq!(w.latest(), Some(ServingStatus::NotServing));
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), w.changed());
        assert!(pending.await.is_err(), "one update pending, not four");
    }
}
