//! Grouping of concurrent requests into one statement: requests queue, and up to a few runners
//! take whatever has queued as one group, run it, answer each request, and take the next group.
//!
//! There is no timer: a group is whatever arrived while the previous ones were running, so a
//! lone request goes straight through and a busy server runs larger groups. Runners are tasks
//! of their own, so a caller that goes away never cancels the work of the others in its group.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// What a group runs.
pub(crate) trait GroupWork: Send + Sync + 'static {
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

struct Queue<W: GroupWork> {
    waiting: Vec<(W::Request, oneshot::Sender<W::Answer>)>,
    runners: usize,
}

/// Requests waiting for a group, and the runners taking them.
pub(crate) struct Grouped<W: GroupWork> {
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
    pub(crate) fn new(work: W, max_runners: usize) -> Arc<Self> {
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
    pub(crate) async fn submit(self: &Arc<Self>, request: W::Request) -> W::Answer {
        let (answer, answered) = oneshot::channel();
        let start_runner = {
            let mut queue = self.lock();
            queue.waiting.push((request, answer));
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
        loop {
            let (requests, answers): (Vec<_>, Vec<_>) = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.runners -= 1;
                    return;
                }
                take_group::<W>(&mut queue.waiting).into_iter().unzip()
            };
            let outcomes = self.work.run(&requests).await;
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                // A caller that has gone away no longer needs its answer.
                let _ = answer.send(outcome);
            }
        }
    }
}

/// The next group, oldest requests first.
fn take_group<W: GroupWork>(
    waiting: &mut Vec<(W::Request, oneshot::Sender<W::Answer>)>,
) -> Vec<(W::Request, oneshot::Sender<W::Answer>)> {
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
