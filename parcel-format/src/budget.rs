//! A byte budget for a thread that runs ahead of its consumer: the writer's
//! file readers may have at most so many bytes of chunks on their way to the
//! packer, however many (small) chunks that is.
//!
//! A channel bounds messages, not bytes. Bounding the readers by message
//! count alone forced a choice between too little read-ahead for small files
//! (two messages a file, so a reader stalled after a few dozen of them) and too
//! much memory for large chunks; the channel now takes many messages and this
//! budget bounds their bytes.
//!
//! std has no counting semaphore; a mutex and a condition variable make one.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Bytes in flight from one producer to one consumer, at most `limit` of
/// them (or a single larger piece on its own).
pub(crate) struct ByteBudget {
    state: Mutex<State>,
    freed: Condvar,
    limit: usize,
}

struct State {
    in_flight: usize,
    closed: bool,
}

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> ByteBudget {
        ByteBudget {
            state: Mutex::new(State {
                in_flight: 0,
                closed: false,
            }),
            freed: Condvar::new(),
            limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the two fields inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `n` bytes of the budget, waiting until the consumer has given
    /// enough back. A piece larger than the whole budget goes alone, once
    /// nothing else is in flight. Returns false, at once, when the budget is
    /// closed (the consumer stopped).
    ///
    /// Never waits for ever while the consumer reads: what is in flight is
    /// waiting in the channel, and the consumer gives it back as it takes it.
    /// A consumer that stops must close the budget, however it stops (the
    /// writer does so from a drop guard, so a panic is covered too).
    pub(crate) fn take(&self, n: usize) -> bool {
        let mut state = self.lock();
        while !state.closed && state.in_flight > 0 && state.in_flight + n > self.limit {
            state = self.freed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.closed {
            return false;
        }
        state.in_flight += n;
        true
    }

    /// Gives back `n` bytes the consumer has taken off the channel.
    pub(crate) fn give(&self, n: usize) {
        let mut state = self.lock();
        state.in_flight = state.in_flight.saturating_sub(n);
        drop(state);
        self.freed.notify_one();
    }

    /// Closes the budget: every `take`, waiting or to come, returns false.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::sync_channel;
    use std::time::Duration;

    #[test]
    fn a_producer_waits_until_the_consumer_gives_bytes_back() {
        let budget = ByteBudget::new(100);
        let queued = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let (tx, rx) = sync_channel::<usize>(1000);
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..50 {
                    assert!(budget.take(30));
                    let now = queued.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tx.send(30).unwrap();
                }
            });
            for _ in 0..50 {
                std::thread::sleep(Duration::from_micros(200));
                let n = rx.recv().unwrap();
                queued.fetch_sub(1, Ordering::SeqCst);
                budget.give(n);
            }
        });
        // 30-byte pieces in a 100-byte budget: never more than 3 in flight
        // (without the budget the producer would have queued all 50).
        let peak = peak.load(Ordering::SeqCst);
        assert!(
            (1..=3).contains(&peak),
            "{peak} pieces were in flight at once"
        );
    }

    #[test]
    fn a_piece_larger_than_the_budget_goes_alone() {
        let budget = ByteBudget::new(10);
        assert!(budget.take(1000));
        budget.give(1000);
        assert!(budget.take(5));
    }

    #[test]
    fn closing_releases_a_waiting_producer() {
        let budget = ByteBudget::new(10);
        assert!(budget.take(10));
        std::thread::scope(|s| {
            let waiting = s.spawn(|| budget.take(1));
            std::thread::sleep(Duration::from_millis(20));
            budget.close();
            assert!(!waiting.join().unwrap());
        });
        assert!(!budget.take(1));
    }
}
