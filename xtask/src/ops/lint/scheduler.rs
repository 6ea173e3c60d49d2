//! Running a DAG of charts in topological order, in parallel, in batches.
//!
//! A chart becomes ready the moment the last chart it depends on has
//! finished (no waiting for a whole level). Whenever a worker is free it takes
//! a share of everything that is ready as one batch: with `idle` free workers
//! and `r` ready charts it takes `ceil(r / idle)`. So 200 independent service
//! charts on two cores become two batches of 100, each checked by a handful of
//! tool processes, instead of 200 x 4 processes; and a lone ready chart still
//! starts at once. `max_batch = 1` turns batching off (one chart per unit),
//! which the differential tests use as the reference.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

struct State {
    /// For each chart still waiting: how many of its dependencies are unfinished.
    waiting: BTreeMap<usize, usize>,
    ready: BTreeSet<usize>,
    running: usize,
    next_batch: usize,
}

/// Runs `work(batch_id, charts)` for every chart of `nodes`, respecting
/// `dependencies` (edges to charts outside `nodes` are treated as satisfied).
/// `work` returns true when every chart of the batch passed; after a failed
/// batch with `fail_fast`, nothing new starts. Returns the charts never run.
pub fn run<F>(
    jobs: usize,
    max_batch: usize,
    nodes: &BTreeSet<usize>,
    dependencies: &dyn Fn(usize) -> Vec<usize>,
    fail_fast: bool,
    work: F,
) -> BTreeSet<usize>
where
    F: Fn(usize, Vec<usize>) -> bool + Sync,
{
    let jobs = jobs.max(1);
    let mut dependents: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut waiting = BTreeMap::new();
    let mut ready = BTreeSet::new();
    for &node in nodes {
        let deps: Vec<usize> = dependencies(node).into_iter().filter(|d| nodes.contains(d) && *d != node).collect();
        for &d in &deps {
            dependents.entry(d).or_default().push(node);
        }
        if deps.is_empty() {
            ready.insert(node);
        } else {
            waiting.insert(node, deps.len());
        }
    }
    let state = Mutex::new(State { waiting, ready, running: 0, next_batch: 0 });
    let stop = AtomicBool::new(false);
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(jobs).build() {
        Ok(pool) => pool,
        Err(_) => rayon::ThreadPoolBuilder::new().build().expect("a default thread pool"),
    };
    pool.scope(|scope| dispatch(scope, &state, &dependents, jobs, max_batch, fail_fast, &stop, &work));

    let state = state.into_inner().unwrap_or_else(|e| e.into_inner());
    state.waiting.keys().chain(state.ready.iter()).copied().collect()
}

#[allow(clippy::too_many_arguments)]
fn dispatch<'s, F>(
    scope: &rayon::Scope<'s>,
    state: &'s Mutex<State>,
    dependents: &'s BTreeMap<usize, Vec<usize>>,
    jobs: usize,
    max_batch: usize,
    fail_fast: bool,
    stop: &'s AtomicBool,
    work: &'s F,
) where
    F: Fn(usize, Vec<usize>) -> bool + Sync,
{
    let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
    while guard.running < jobs
        && !guard.ready.is_empty()
        && !stop.load(Ordering::SeqCst)
        && !crate::exec::process::interrupted()
    {
        let idle = jobs - guard.running;
        let take = guard.ready.len().div_ceil(idle).min(max_batch.max(1));
        let batch: Vec<usize> = guard.ready.iter().take(take).copied().collect();
        for chart in &batch {
            guard.ready.remove(chart);
        }
        guard.running += 1;
        let id = guard.next_batch;
        guard.next_batch += 1;
        scope.spawn(move |scope| {
            let passed = work(id, batch.clone());
            if !passed && fail_fast {
                stop.store(true, Ordering::SeqCst);
            }
            {
                let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
                guard.running -= 1;
                for chart in &batch {
                    for &dependent in dependents.get(chart).map(Vec::as_slice).unwrap_or_default() {
                        if let Some(count) = guard.waiting.get_mut(&dependent) {
                            *count -= 1;
                            if *count == 0 {
                                guard.waiting.remove(&dependent);
                                guard.ready.insert(dependent);
                            }
                        }
                    }
                }
            }
            dispatch(scope, state, dependents, jobs, max_batch, fail_fast, stop, work);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn dependents_wait_and_ready_charts_are_shared_between_workers() {
        // 0 <- 1, 0 <- 2, {1,2} <- 3, and 4 independent.
        let deps = |n: usize| match n {
            1 | 2 => vec![0],
            3 => vec![1, 2],
            _ => vec![],
        };
        let nodes: BTreeSet<usize> = (0..5).collect();
        let log = Mutex::new(Vec::new());
        let epoch = Instant::now();
        let left = run(2, usize::MAX, &nodes, &deps, false, |_, batch| {
            let start = epoch.elapsed();
            std::thread::sleep(Duration::from_millis(30));
            log.lock().unwrap().push((batch, start, epoch.elapsed()));
            true
        });
        assert!(left.is_empty());
        let log = log.into_inner().unwrap();
        let span = |n: usize| log.iter().find(|(b, _, _)| b.contains(&n)).map(|(_, s, e)| (*s, *e)).unwrap();
        for (chart, dep) in [(1, 0), (2, 0), (3, 1), (3, 2)] {
            assert!(span(chart).0 >= span(dep).1, "{chart} started before {dep} finished");
        }
        // 0 and 4 are ready together with two idle workers: one batch each.
        assert_ne!(span(0), span(4));
    }

    #[test]
    fn fail_fast_stops_new_batches() {
        let nodes: BTreeSet<usize> = (0..3).collect();
        let deps = |n: usize| if n == 0 { vec![] } else { vec![n - 1] };
        let left = run(1, 1, &nodes, &deps, true, |_, _| false);
        assert_eq!(left, [1, 2].into_iter().collect());
    }
}
