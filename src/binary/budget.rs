//! How many bytes of ELF files are held in memory at once, across every layer being
//! read: analysing a binary (or rewriting it to measure a strip) needs it whole, and
//! two layers read side by side must not each hold one at the limit. A reservation
//! waits until the bytes fit; one file never exceeds the limit (larger ones are not
//! read into memory at all), so waiting always ends.

use std::sync::{Condvar, Mutex, OnceLock};

struct Budget {
    used: Mutex<u64>,
    freed: Condvar,
}

fn budget() -> &'static Budget {
    static BUDGET: OnceLock<Budget> = OnceLock::new();
    BUDGET.get_or_init(|| Budget {
        used: Mutex::new(0),
        freed: Condvar::new(),
    })
}

/// Bytes held until dropped.
pub struct Reservation {
    bytes: u64,
}

/// Waits until `bytes` more fit within `limit` (at once when nothing else is held).
pub fn reserve(bytes: u64, limit: u64) -> Reservation {
    let budget = budget();
    let mut used = budget
        .used
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    while *used > 0 && used.saturating_add(bytes) > limit {
        used = budget
            .freed
            .wait(used)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    *used += bytes;
    Reservation { bytes }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let budget = budget();
        let mut used = budget
            .used
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *used = used.saturating_sub(self.bytes);
        budget.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_wait_for_room() {
        let first = reserve(60, 100);
        let waiter = std::thread::spawn(|| {
            let _second = reserve(60, 100);
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "120 bytes fit in a budget of 100");
        drop(first);
        waiter.join().expect("the second reservation went through");
    }
}
