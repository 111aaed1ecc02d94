//! Running work a few at a time.

use std::future::Future;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

/// Runs the futures `work` yields, at most `at_once` at a time (at least one), taking the next
/// from the iterator only when one finishes. After the first failure no new one starts; those
/// running finish (each commits or rolls back on its own), and the first error is returned.
pub(crate) async fn run_at_most<F, E>(
    at_once: usize,
    work: impl IntoIterator<Item = F>,
) -> Result<(), E>
where
    F: Future<Output = Result<(), E>>,
{
    let mut pending = work.into_iter();
    let mut running = FuturesUnordered::new();
    let mut first_error = None;
    loop {
        while first_error.is_none() && running.len() < at_once.max(1) {
            let Some(next) = pending.next() else { break };
            running.push(next);
        }
        match running.next().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => break,
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test]
    async fn at_most_n_run_at_once_and_nothing_starts_after_a_failure() {
        let (running, peak, started) = (Cell::new(0), Cell::new(0), Cell::new(0));
        let work = (0..10).map(|i| {
            let (running, peak, started) = (&running, &peak, &started);
            async move {
                started.set(started.get() + 1);
                running.set(running.get() + 1);
                peak.set(peak.get().max(running.get()));
                tokio::task::yield_now().await;
                running.set(running.get() - 1);
                if i == 4 { Err(i) } else { Ok(()) }
            }
        });
        assert_eq!(run_at_most(3, work).await, Err(4));
        assert_eq!(peak.get(), 3);
        // Number 4 runs beside at most two others (5 and 6 at the latest); once its failure is
        // seen nothing new starts, so 7, 8 and 9 never do.
        assert!((5..=7).contains(&started.get()), "{}", started.get());

        let all = (0..7).map(|_| async { Ok::<(), ()>(()) });
        assert_eq!(run_at_most(0, all).await, Ok(()));
    }
}
