//! Grouping of concurrent requests into one statement or transaction, for either store:
//! requests queue, and up to a few runners take whatever has queued as one group, run it,
//! answer each request, and take the next group.
//!
//! There is no timer: a group is whatever arrived while the previous ones were running, so a
//! lone request goes straight through and a busy server runs larger groups. Runners are tasks
//! of their own, so a caller that goes away never cancels the work of the others in its group.
//! A group's span (`group`, at `debug`) is a root of its own, linked to the span each of its
//! requests was submitted in, since it serves several calls at once.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;
use tracing::{Instrument, Span};

/// What a group runs.
pub trait GroupWork: Send + Sync + 'static {
    type Request: Send + 'static;
    type Answer: Send + 'static;

    /// The most requests in one group.
    const MAX_GROUP: usize;

    /// Whether `request` may join `group`; one that may not waits for a later group.
    fn fits(group: &[Self::Request], request: &Self::Request) -> bool {
        let _ = (group, request);
        true
    }

    /// Runs a group; answers each request, in the group's order.
    fn run(&self, group: &[Self::Request]) -> impl Future<Output = Vec<Self::Answer>> + Send;

    /// The answer when a request's runner vanished without answering (the runtime shut down).
    fn lost() -> Self::Answer;
}

/// A request waiting for its group: where to answer, and the span it was submitted in.
type Waiting<W> = (
    <W as GroupWork>::Request,
    (oneshot::Sender<<W as GroupWork>::Answer>, Span),
);

struct Queue<W: GroupWork> {
    waiting: Vec<Waiting<W>>,
    runners: usize,
}

/// Requests waiting for a group, and the runners taking them.
pub struct Grouped<W: GroupWork> {
    work: W,
    max_runners: usize,
    queue: Mutex<Queue<W>>,
}

impl<W: GroupWork> std::fmt::Debug for Grouped<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grouped")
            .field("work", &std::any::type_name::<W>())
            .field("max_runners", &self.max_runners)
            .finish_non_exhaustive()
    }
}

impl<W: GroupWork> Grouped<W> {
    /// Groups run by at most `max_runners` at once (each on its own connection); at least 1.
    pub fn new(work: W, max_runners: usize) -> Arc<Self> {
        Arc::new(Self {
            work,
            max_runners: max_runners.max(1),
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                runners: 0,
            }),
        })
    }

    /// Queues the request for the next group, and answers once that group has run.
    pub async fn submit(self: &Arc<Self>, request: W::Request) -> W::Answer {
        let (answer, answered) = oneshot::channel();
        // The caller's span is only worth holding on to where the group's is recorded.
        let caller = if tracing::level_enabled!(tracing::Level::DEBUG) {
            Span::current()
        } else {
            Span::none()
        };
        let start_runner = {
            let mut queue = self.lock();
            queue.waiting.push((request, (answer, caller)));
            let start = queue.runners < self.max_runners;
            if start {
                queue.runners += 1;
            }
            start
        };
        if start_runner {
            tokio::spawn(Arc::clone(self).run_groups());
        }
        answered.await.unwrap_or_else(|_| W::lost())
    }

    fn lock(&self) -> MutexGuard<'_, Queue<W>> {
        // Every change to the queue is complete before anything that could panic.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs groups while requests are waiting, then retires.
    async fn run_groups(self: Arc<Self>) {
        let mut shift = Shift {
            grouped: &self,
            over: false,
        };
        loop {
            let (requests, answers): (Vec<_>, Vec<(_, Span)>) = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    // Retiring under the lock that queued the last request: a request queued
                    // after this sees one runner fewer and starts its own.
                    queue.runners -= 1;
                    shift.over = true;
                    return;
                }
                take_group::<W>(&mut queue.waiting).into_iter().unzip()
            };
            let span = tracing::debug_span!(
                parent: None,
                "group",
                work = work_name::<W>(),
                size = requests.len()
            );
            for (_, caller) in &answers {
                span.follows_from(caller);
            }
            let outcomes = self.work.run(&requests).instrument(span).await;
            for ((answer, _), outcome) in answers.into_iter().zip(outcomes) {
                // A caller that has gone away no longer needs its answer.
                let _ = answer.send(outcome);
            }
        }
    }
}

/// A runner's shift. Should it end early (the group's work panicked: the group's callers are
/// answered `lost` as their senders drop), the runner still retires, and hands the queue on to a
/// fresh runner, so that one failure never leaves requests waiting for nobody.
struct Shift<'a, W: GroupWork> {
    grouped: &'a Arc<Grouped<W>>,
    over: bool,
}

impl<W: GroupWork> Drop for Shift<'_, W> {
    fn drop(&mut self) {
        if self.over {
            return;
        }
        // Outside a runtime (it is shutting down) nothing can run; the next request starts a
        // runner of its own.
        let runtime = tokio::runtime::Handle::try_current().ok();
        let restart = {
            let mut queue = self.grouped.lock();
            let restart = runtime.is_some() && !queue.waiting.is_empty();
            if !restart {
                queue.runners -= 1;
            }
            restart
        };
        if let (true, Some(runtime)) = (restart, runtime) {
            runtime.spawn(Arc::clone(self.grouped).run_groups());
        }
    }
}

/// The work's type name without its path (`UpdateGroups`), for the group's span.
fn work_name<W>() -> &'static str {
    let name = std::any::type_name::<W>();
    name.rsplit("::").next().unwrap_or(name)
}

/// The next group, oldest requests first.
fn take_group<W: GroupWork>(waiting: &mut Vec<Waiting<W>>) -> Vec<Waiting<W>> {
    let mut group = Vec::with_capacity(waiting.len().min(W::MAX_GROUP));
    let mut requests: Vec<W::Request> = Vec::new();
    let mut left = Vec::new();
    for (request, answer) in waiting.drain(..) {
        if requests.len() < W::MAX_GROUP && W::fits(&requests, &request) {
            requests.push(request);
            group.push(answer);
        } else {
            left.push((request, answer));
        }
    }
    *waiting = left;
    requests.into_iter().zip(group).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Doubles numbers, recording the size of each group; its first group panics if asked to.
    struct Doubling {
        groups: Mutex<Vec<usize>>,
        panic_first: bool,
    }

    impl Doubling {
        fn new(panic_first: bool) -> Self {
            Self {
                groups: Mutex::new(Vec::new()),
                panic_first,
            }
        }
    }

    impl GroupWork for Doubling {
        type Request = u32;
        type Answer = Option<u32>;

        const MAX_GROUP: usize = 4;

        fn fits(group: &[u32], request: &u32) -> bool {
            !group.contains(request)
        }

        async fn run(&self, group: &[u32]) -> Vec<Option<u32>> {
            let first = {
                let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
                groups.push(group.len());
                groups.len() == 1
            };
            assert!(!(first && self.panic_first), "the first group fails");
            group.iter().map(|n| Some(n * 2)).collect()
        }

        fn lost() -> Option<u32> {
            None
        }
    }

    async fn submit_together(
        grouped: &Arc<Grouped<Doubling>>,
        requests: &[u32],
    ) -> Vec<Option<u32>> {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, &request) in requests.iter().enumerate() {
            let grouped = Arc::clone(grouped);
            tasks.spawn(async move { (index, grouped.submit(request).await) });
        }
        let mut answers = tasks.join_all().await;
        answers.sort_by_key(|(index, _)| *index);
        answers.into_iter().map(|(_, answer)| answer).collect()
    }

    #[tokio::test]
    async fn requests_queued_together_run_in_groups_of_at_most_the_limit_each_answered() {
        let grouped = Grouped::new(Doubling::new(false), 1);
        // 3 appears twice: its second request waits for a later group.
        let answers = submit_together(&grouped, &[1, 2, 3, 3, 4, 5, 6, 7, 8]).await;
        assert_eq!(
            answers,
            [1, 2, 3, 3, 4, 5, 6, 7, 8].map(|n| Some(n * 2)).to_vec()
        );
        let groups = grouped.work.groups.lock().unwrap().clone();
        assert_eq!(groups, [4, 4, 1], "queued before the first group was taken");
        assert_eq!(grouped.lock().runners, 0, "the runner retired");
    }

    #[tokio::test]
    async fn a_group_that_panics_answers_lost_and_the_queue_goes_on() {
        let grouped = Grouped::new(Doubling::new(true), 1);
        let answers = submit_together(&grouped, &[1, 2, 3, 4, 5, 6]).await;
        assert_eq!(answers, [None, None, None, None, Some(10), Some(12)]);
        assert_eq!(
            grouped.submit(7).await,
            Some(14),
            "a later request is served"
        );
        assert_eq!(grouped.lock().runners, 0);
    }
}
