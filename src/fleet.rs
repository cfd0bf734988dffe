//! Work on many hosts at once: at most `forks` at a time, results in input order.
//! A slow or dead host holds up only its own slot.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

/// Runs `work` on every item, at most `forks` at once; results in item order. A task that
/// panics (a bug) yields `on_panic(index, message)` for its item instead of ending the run.
pub async fn bounded<T, R, F, Fut>(
    items: Vec<T>,
    forks: usize,
    work: F,
    on_panic: impl Fn(usize, String) -> R,
) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = R> + Send,
{
    let permits = Arc::new(Semaphore::new(forks.max(1)));
    let mut tasks = Vec::with_capacity(items.len());
    for item in items {
        let permits = permits.clone();
        let work = work.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            work(item).await
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for (index, task) in tasks.into_iter().enumerate() {
        match task.await {
            Ok(r) => out.push(r),
            // A panic in one host's task is a bug: that host fails, the others go on.
            Err(e) => {
                let message = if e.is_panic() {
                    let payload = e.into_panic();
                    payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into())
                } else {
                    "the task was cancelled".into()
                };
                out.push(on_panic(index, message));
            }
        }
    }
    out
}

/// How an SSH failure counts for a host: a lost or impossible connection is "unreachable",
/// anything else (refused key, sudo, ...) is a failure.
pub fn problem_of(e: postfleet_ssh::SshError) -> postfleet_core::outcome::HostProblem {
    use postfleet_core::outcome::HostProblem;
    if e.is_lost_connection() {
        HostProblem::Unreachable(e.to_string())
    } else {
        HostProblem::Failed(e.to_string())
    }
}

/// The SSH target of an inventory host.
pub fn target(host: &postfleet_core::inventory::Host) -> postfleet_ssh::Target {
    let c = &host.connection;
    postfleet_ssh::Target {
        address: c.address.clone(),
        port: c.port,
        user: c.user.clone(),
        key_files: c.key_files.clone(),
        certificate_files: Vec::new(),
        become_root: c.become_root,
        known_hosts: c.known_hosts.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn keeps_order_and_bounds_concurrency() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (r, p) = (running.clone(), peak.clone());
        let out = bounded(
            (0..20).collect(),
            3,
            move |i: u64| {
                let (r, p) = (r.clone(), p.clone());
                async move {
                    let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20 - i)).await;
                    r.fetch_sub(1, Ordering::SeqCst);
                    i * 2
                }
            },
            |_, _| unreachable!("no task panics"),
        )
        .await;
        assert_eq!(out, (0..20).map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_panicking_task_fails_its_item_only() {
        let out = bounded(
            (0..5).collect(),
            2,
            |i: u32| async move {
                if i == 2 {
                    panic!("bug on item {i}");
                }
                Ok(i)
            },
            |index, message| Err(format!("{index}: {message}")),
        )
        .await;
        assert_eq!(
            out,
            [
                Ok(0),
                Ok(1),
                Err("2: bug on item 2".to_string()),
                Ok(3),
                Ok(4)
            ]
        );
    }
}
