//! Timers reused across requests, one small pool per worker thread.
//!
//! Every request head needs a deadline (see [`super::app`]). Creating a tokio timer, then
//! removing it from the timer wheel when the head is in, costs a lock and a wheel update each
//! way, for every request. A timer taken from the pool is re-armed instead: tokio moves a
//! pending deadline *later* with one atomic update and fixes the wheel up only when the old
//! deadline comes round, so under steady traffic re-arming costs next to nothing. (A deadline
//! moved earlier, or a timer that already fired, takes tokio's ordinary path: correct, slower.)
//!
//! A timer goes back to the pool with a no-op waker registered, so that it never keeps a
//! finished connection's task alive; the pool keeps at most [`KEEP`] timers per thread.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::time::{Instant, Sleep};

/// Timers kept per thread: enough for the connections one thread serves at a time under load;
/// beyond it, timers are dropped as usual.
pub const KEEP: usize = 256;

thread_local! {
    static POOL: RefCell<Vec<Pin<Box<Sleep>>>> = const { RefCell::new(Vec::new()) };
}

/// A timer from this thread's pool (or a new one), given back when dropped.
pub struct PooledTimer(Option<Pin<Box<Sleep>>>);

impl PooledTimer {
    /// A timer that fires at `deadline`. Must be called inside the tokio runtime.
    pub fn at(deadline: Instant) -> PooledTimer {
        let pooled = POOL
            .try_with(|p| p.try_borrow_mut().ok().and_then(|mut p| p.pop()))
            .ok()
            .flatten();
        let sleep = match pooled {
            Some(mut s) => {
                s.as_mut().reset(deadline);
                s
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        PooledTimer(Some(sleep))
    }

    /// Moves the deadline.
    pub fn reset(&mut self, deadline: Instant) {
        if let Some(s) = &mut self.0 {
            s.as_mut().reset(deadline);
        }
    }

    /// Ready once the deadline has passed; otherwise wakes the caller's task then.
    pub fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            Some(s) => s.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl Drop for PooledTimer {
    fn drop(&mut self) {
        let Some(mut s) = self.0.take() else { return };
        if s.is_elapsed() {
            return;
        }
        // Swap the registered waker for a no-op one: a pooled timer holds no task. Polled
        // outside tokio's cooperative budget, which would otherwise skip the swap when spent.
        let mut unconstrained = tokio::task::unconstrained(s.as_mut());
        let _ = Pin::new(&mut unconstrained).poll(&mut Context::from_waker(Waker::noop()));
        let _ = POOL.try_with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                if p.len() < KEEP {
                    p.push(s);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    struct Counted;
    impl std::task::Wake for Counted {
        fn wake(self: Arc<Self>) {}
    }

    #[tokio::test]
    async fn a_timer_given_back_holds_no_task_even_when_the_budget_is_spent() {
        let task = Arc::new(Counted);
        let waker = Waker::from(task.clone());
        let mut timer = PooledTimer::at(Instant::now() + Duration::from_secs(60));
        assert!(timer
            .poll_elapsed(&mut Context::from_waker(&waker))
            .is_pending());
        drop(waker);
        assert_eq!(
            Arc::strong_count(&task),
            2,
            "the timer holds the task's waker"
        );
        // Spend this task's cooperative budget: each message received takes one unit.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..1000 {
            let _ = tx.send(i);
        }
        while tokio::task::coop::has_budget_remaining() {
            let _ = std::future::poll_fn(|cx| Poll::Ready(rx.poll_recv(cx))).await;
        }
        drop(timer);
        assert_eq!(
            Arc::strong_count(&task),
            1,
            "given back without the task's waker"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reused_timer_fires_at_its_new_deadline_earlier_or_later() {
        let start = Instant::now();
        let first = PooledTimer::at(start + Duration::from_secs(5));
        drop(first);
        assert_eq!(POOL.with(|p| p.borrow().len()), 1, "given back");

        // Later than before: the quick path.
        let mut later = PooledTimer::at(start + Duration::from_secs(10));
        assert_eq!(POOL.with(|p| p.borrow().len()), 0, "taken from the pool");
        tokio::time::sleep_until(start + Duration::from_secs(6)).await;
        assert!(
            std::future::poll_fn(|cx| Poll::Ready(later.poll_elapsed(cx)))
                .await
                .is_pending()
        );
        std::future::poll_fn(|cx| later.poll_elapsed(cx)).await;
        assert_eq!(Instant::now(), start + Duration::from_secs(10));
        drop(later);
        assert_eq!(
            POOL.with(|p| p.borrow().len()),
            0,
            "a fired timer is not kept"
        );

        // Earlier than a pooled one's deadline.
        drop(PooledTimer::at(start + Duration::from_secs(60)));
        let mut earlier = PooledTimer::at(start + Duration::from_secs(11));
        std::future::poll_fn(|cx| earlier.poll_elapsed(cx)).await;
        assert_eq!(Instant::now(), start + Duration::from_secs(11));

        // Moved later while armed.
        let mut moved = PooledTimer::at(start + Duration::from_secs(12));
        moved.reset(start + Duration::from_secs(20));
        std::future::poll_fn(|cx| moved.poll_elapsed(cx)).await;
        assert_eq!(Instant::now(), start + Duration::from_secs(20));
    }
}
