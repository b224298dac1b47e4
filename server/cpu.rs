//! CPU-heavy work (rendering a blueprint, checking it against the policy rules) runs on tokio's
//! blocking pool, at most one job per core at a time: it never holds an async worker thread,
//! and a burst of previews queues instead of piling up.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Semaphore;

/// The bound on CPU-heavy jobs running at once.
#[derive(Debug)]
pub struct CpuPool {
    permits: Arc<Semaphore>,
}

impl CpuPool {
    /// One permit per core.
    pub fn new() -> CpuPool {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        CpuPool {
            permits: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Runs `job` on the blocking pool once a permit is free.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .context("the CPU pool is closed")?;
        tokio::task::spawn_blocking(job)
            .await
            .context("a rendering or policy job failed")
    }
}

impl Default for CpuPool {
    fn default() -> Self {
        CpuPool::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn jobs_run_off_the_async_thread_and_return_their_value() {
        let pool = CpuPool::new();
        let here = std::thread::current().id();
        let (value, there) = pool
            .run(|| (6 * 7, std::thread::current().id()))
            .await
            .unwrap_or((0, here));
        assert_eq!(value, 42);
        assert_ne!(here, there, "the job ran on the async thread");
    }
}
