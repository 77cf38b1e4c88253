//! One load per key at a time: concurrent requests for the same speech (text + language) or the
//! same URL share one TTS process or download. The first caller leads and runs the load; the
//! others follow and get its result. A leader that is dropped mid-load (its call ended) hands
//! the load to one of its followers. A std mutex guards the map, never across an `.await`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::cache::CacheKey;
use super::AudioError;

/// What a load published: audio, or the error every follower shares.
type Outcome = Option<Result<Arc<[i16]>, Arc<AudioError>>>;

#[derive(Default)]
pub(super) struct Inflight {
    loads: Mutex<HashMap<CacheKey, watch::Receiver<Outcome>>>,
}

enum Role {
    Leader(watch::Sender<Outcome>),
    Follower(watch::Receiver<Outcome>),
}

impl Inflight {
    fn lock(&self) -> MutexGuard<'_, HashMap<CacheKey, watch::Receiver<Outcome>>> {
        self.loads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `load` for `key` unless a load for it is running; then waits for that one.
    /// `load` should put its result in the cache, so callers after it find it there.
    pub(super) async fn once<F>(&self, key: CacheKey, load: F) -> Result<Arc<[i16]>, AudioError>
    where
        F: Future<Output = Result<Arc<[i16]>, AudioError>>,
    {
        let mut load = Some(load);
        loop {
            let role = {
                let mut loads = self.lock();
                match loads.get(&key) {
                    Some(rx) => Role::Follower(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        loads.insert(key.clone(), rx);
                        Role::Leader(tx)
                    }
                }
            };
            match role {
                Role::Follower(mut rx) => match rx.wait_for(Option::is_some).await {
                    Ok(outcome) => {
                        return match outcome.clone() {
                            Some(Ok(audio)) => Ok(audio),
                            Some(Err(shared)) => Err(AudioError::Shared(shared)),
                            None => continue,
                        }
                    }
                    // The leader was dropped without a result: lead (or follow) anew.
                    Err(_) => continue,
                },
                Role::Leader(tx) => {
                    let Some(load) = load.take() else {
                        // Unreachable: a caller leads at most once, then returns.
                        continue;
                    };
                    let guard = Leading {
                        inflight: self,
                        key: &key,
                        tx: &tx,
                    };
                    let result = load.await;
                    drop(guard); // newcomers from now on find the cache (or load again)
                    return match result {
                        Ok(audio) => {
                            let _ = tx.send(Some(Ok(audio.clone())));
                            Ok(audio)
                        }
                        // Nobody waits: the caller gets the error itself, not a shared one.
                        Err(e) if tx.receiver_count() == 0 => Err(e),
                        Err(e) => {
                            let shared = Arc::new(e);
                            let _ = tx.send(Some(Err(shared.clone())));
                            Err(AudioError::Shared(shared))
                        }
                    };
                }
            }
        }
    }

    #[cfg(test)]
    pub(super) fn running(&self) -> usize {
        self.lock().len()
    }
}

/// Removes the leader's entry when it finishes or is dropped mid-load.
struct Leading<'a> {
    inflight: &'a Inflight,
    key: &'a CacheKey,
    tx: &'a watch::Sender<Outcome>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut loads = self.inflight.lock();
        if loads
            .get(self.key)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            loads.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn key(n: u32) -> CacheKey {
        CacheKey::Url(format!("http://example.test/{n}.wav"))
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_loads_of_one_key_run_once_and_share_the_result() {
        let inflight = Arc::new(Inflight::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut waiting = Vec::new();
        for _ in 0..5 {
            let (inflight, runs) = (inflight.clone(), runs.clone());
            waiting.push(tokio::spawn(async move {
                inflight
                    .once(key(1), async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok(Arc::from(vec![1i16, 2]))
                    })
                    .await
            }));
        }
        for w in waiting {
            assert_eq!(&*w.await.unwrap().unwrap(), &[1, 2]);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(inflight.running(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn followers_share_an_error_and_a_dropped_leader_hands_over() {
        let inflight = Arc::new(Inflight::default());
        let failing = || async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Err::<Arc<[i16]>, _>(AudioError::EmptyTtsCommand)
        };
        let (a, b) = tokio::join!(
            inflight.once(key(2), failing()),
            inflight.once(key(2), failing())
        );
        let errors = [a.unwrap_err(), b.unwrap_err()];
        assert!(errors.iter().any(
            |e| matches!(e, AudioError::Shared(s) if matches!(**s, AudioError::EmptyTtsCommand))
        ));
        assert!(errors
            .iter()
            .all(|e| e.to_string() == "media.tts_command is empty"));
        // A lone caller gets its own error, unwrapped.
        let alone = inflight.once(key(3), failing()).await.unwrap_err();
        assert!(matches!(alone, AudioError::EmptyTtsCommand), "{alone:?}");

        // The leader gives up (dropped); its follower then runs its own load.
        let leader = {
            let inflight = inflight.clone();
            tokio::spawn(async move {
                inflight
                    .once(
                        key(4),
                        std::future::pending::<Result<Arc<[i16]>, AudioError>>(),
                    )
                    .await
            })
        };
        tokio::task::yield_now().await;
        let follower = {
            let inflight = inflight.clone();
            tokio::spawn(async move {
                inflight
                    .once(key(4), async { Ok(Arc::from(vec![9i16])) })
                    .await
            })
        };
        tokio::task::yield_now().await;
        // The follower is waiting on the leader's load, not running its own.
        assert_eq!(inflight.running(), 1);
        assert!(!follower.is_finished());
        leader.abort();
        assert_eq!(&*follower.await.unwrap().unwrap(), &[9]);
        assert_eq!(inflight.running(), 0);
    }
}
