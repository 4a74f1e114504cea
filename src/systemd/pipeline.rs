//! Which unit job call to send next, and which job a reply is for.
//!
//! The calls of one `run_jobs` go out in the order given (dependencies
//! first: systemd handles one connection's calls in the order they arrive,
//! so each job is queued after the jobs before it, exactly as when every
//! reply was awaited before the next call), without waiting for each reply:
//! up to `window` calls are in flight, under the 128 pending replies a
//! system bus allows one connection (dbus-daemon's max_replies_per_connection).

use std::collections::HashMap;
use std::ops::Range;

/// Calls in flight at most.
pub const JOB_WINDOW: usize = 32;

#[derive(Debug)]
pub struct Pipeline {
    total: usize,
    window: usize,
    next: usize,
    /// Call serial -> index of its job.
    in_flight: HashMap<u32, usize>,
}

impl Pipeline {
    pub fn new(total: usize, window: usize) -> Pipeline {
        Pipeline {
            total,
            window: window.max(1),
            next: 0,
            in_flight: HashMap::new(),
        }
    }

    /// The job whose call goes out next, if the window has room: always the
    /// first not yet sent.
    pub fn next_to_send(&self) -> Option<usize> {
        (self.next < self.total && self.in_flight.len() < self.window).then_some(self.next)
    }

    /// The call of job [`next_to_send`](Self::next_to_send) went out as `serial`.
    pub fn sent(&mut self, serial: u32) {
        assert!(self.next < self.total, "every job was sent");
        self.in_flight.insert(serial, self.next);
        self.next += 1;
    }

    /// The job a reply to `serial` is for (`None`: not one of ours, or answered).
    pub fn replied(&mut self, serial: u32) -> Option<usize> {
        self.in_flight.remove(&serial)
    }

    /// Every call sent and answered.
    pub fn done(&self) -> bool {
        self.next == self.total && self.in_flight.is_empty()
    }

    /// Jobs whose call never went out.
    pub fn unsent(&self) -> Range<usize> {
        self.next..self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bus answering in a scrambled order: calls still go out in job
    /// order, never more than the window at once, and every reply finds
    /// its job.
    #[test]
    fn sends_in_order_within_the_window_and_maps_every_reply() {
        for (total, window) in [(0, 4), (1, 4), (10, 1), (100, 32), (7, 3)] {
            let mut p = Pipeline::new(total, window);
            let mut sent_order = Vec::new();
            let mut waiting: Vec<(u32, usize)> = Vec::new();
            let mut answered = vec![false; total];
            let mut serial = 1000u32;
            let mut turn = 0usize;
            while !p.done() {
                while let Some(i) = p.next_to_send() {
                    sent_order.push(i);
                    serial += 7;
                    waiting.push((serial, i));
                    p.sent(serial);
                    assert!(waiting.len() <= window, "window {window} exceeded");
                }
                // Answer one of those in flight, not the oldest first.
                turn += 1;
                let k = (turn * 5) % waiting.len();
                let (s, i) = waiting.remove(k);
                assert_eq!(p.replied(s), Some(i), "reply {s} maps to job {i}");
                assert_eq!(p.replied(s), None, "answered once");
                answered[i] = true;
            }
            assert_eq!(sent_order, (0..total).collect::<Vec<_>>(), "job order kept");
            assert!(answered.iter().all(|a| *a));
            assert!(p.unsent().is_empty());
            assert_eq!(p.replied(1), None, "not ours");
        }
    }

    #[test]
    fn a_full_window_waits_and_unsent_jobs_are_known() {
        let mut p = Pipeline::new(5, 2);
        p.sent(1);
        p.sent(2);
        assert_eq!(p.next_to_send(), None, "two in flight");
        assert_eq!(p.unsent(), 2..5);
        assert_eq!(p.replied(2), Some(1));
        assert_eq!(p.next_to_send(), Some(2));
    }
}
