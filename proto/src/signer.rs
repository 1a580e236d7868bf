//! Group-commit signing: messages that are ready at about the same time share
//! one signature.
//!
//! A worker finishing many short jobs, or a submitter placing many replicas,
//! hands each message to a [`BatchSigner`]. A background task takes
//! everything queued, signs it with one [`envelope::sign_many`] and answers
//! each caller with its own envelope. Alone, a message is signed on its own
//! (no proof, no wait); under load the queue fills while the task signs the
//! previous group. A message that may wait ([`BatchSigner::sign_within`],
//! for throughput work such as a batch's jobs and results) lets the task
//! hold its group open for a moment, so even a steady trickle of messages
//! is signed a group at a time.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::envelope::{self, Domain};
use crate::identity::Identity;
use crate::pb::SignedEnvelope;

/// Most messages signed under one root.
pub const MAX_GROUP: usize = 1024;

/// How long peergrid lets a batch's messages wait to share a signature
/// ([`BatchSigner::sign_within`]).
pub const BATCH_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// How many times the signing task yields to other ready tasks before it
/// takes a group.
const LINGER_YIELDS: usize = 3;

/// One queued message, how long it may wait for others, and where its
/// envelope goes.
struct Request {
    domain: Domain,
    payload: Vec<u8>,
    /// `None`: sign now (with whatever else is queued).
    wait_until: Option<tokio::time::Instant>,
    answer: oneshot::Sender<SignedEnvelope>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("domain", &self.domain)
            .field("bytes", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// Signs messages for one identity, many under one signature when they
/// arrive together. Cheap to clone: clones share the queue.
#[derive(Debug, Clone)]
pub struct BatchSigner {
    identity: Arc<Identity>,
    /// The queue of the running signing task; replaced when the task has
    /// gone (its runtime ended), so a signer outlives any one runtime.
    queue: Arc<Mutex<Option<mpsc::UnboundedSender<Request>>>>,
}

impl BatchSigner {
    /// A signer for `identity`. The signing task starts on first use.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity: Arc::new(identity),
            queue: Arc::new(Mutex::new(None)),
        }
    }

    /// The identity that signs.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Signs `payload` as a message of kind `domain`, sharing the signature
    /// with whatever else is queued. Must be called within a tokio runtime;
    /// fails only if the signing task's runtime shut down while this
    /// message waited in its queue.
    pub async fn sign(
        &self,
        domain: Domain,
        payload: Vec<u8>,
    ) -> Result<SignedEnvelope, SignerStopped> {
        self.queue_up(domain, payload, None).await
    }

    /// Like [`BatchSigner::sign`], but the message may wait up to `wait`
    /// for others to share its signature: for work where throughput
    /// matters more than a millisecond of latency.
    pub async fn sign_within(
        &self,
        domain: Domain,
        payload: Vec<u8>,
        wait: std::time::Duration,
    ) -> Result<SignedEnvelope, SignerStopped> {
        let until = tokio::time::Instant::now() + wait;
        self.queue_up(domain, payload, Some(until)).await
    }

    async fn queue_up(
        &self,
        domain: Domain,
        payload: Vec<u8>,
        wait_until: Option<tokio::time::Instant>,
    ) -> Result<SignedEnvelope, SignerStopped> {
        let (answer, rx) = oneshot::channel();
        let request = Request {
            domain,
            payload,
            wait_until,
            answer,
        };
        let unsent = {
            let mut queue = self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let request = match queue.as_ref() {
                Some(running) => running.send(request).err().map(|e| e.0),
                None => Some(request),
            };
            // No task yet, or its runtime is gone: start one in this one.
            request.and_then(|request| {
                let (sender, receiver) = mpsc::unbounded_channel();
                tokio::spawn(run(Arc::clone(&self.identity), receiver));
                let unsent = sender.send(request).err().map(|e| e.0);
                *queue = Some(sender);
                unsent
            })
        };
        if let Some(request) = unsent {
            return Ok(envelope::sign(
                &self.identity,
                request.domain,
                request.payload,
            ));
        }
        rx.await.map_err(|_| SignerStopped)
    }
}

/// The signing task's runtime shut down with a message still queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the signing task stopped (its runtime shut down) before signing")]
pub struct SignerStopped;

/// The signing task: takes everything queued, waits while every message
/// in the group may still wait, signs the group.
async fn run(identity: Arc<Identity>, mut queue: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = queue.recv().await {
        // Let the tasks that are ready run first: under load, some of them
        // queue messages that can join this group. Idle, this costs
        // nothing (nothing else is ready).
        for _ in 0..LINGER_YIELDS {
            tokio::task::yield_now().await;
        }
        let mut group = vec![first];
        take_queued(&mut queue, &mut group);
        while group.len() < MAX_GROUP
            && let Some(until) = patience(&group)
        {
            match tokio::time::timeout_at(until, queue.recv()).await {
                Ok(Some(next)) => {
                    group.push(next);
                    take_queued(&mut queue, &mut group);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let (messages, answers): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|r| ((r.domain, r.payload), r.answer))
            .unzip();
        for (signed, answer) in envelope::sign_many(&identity, messages)
            .into_iter()
            .zip(answers)
        {
            // A caller that gave up (timed out) no longer wants it.
            let _ = answer.send(signed);
        }
    }
}

/// Moves what is queued into `group`, up to [`MAX_GROUP`].
fn take_queued(queue: &mut mpsc::UnboundedReceiver<Request>, group: &mut Vec<Request>) {
    while group.len() < MAX_GROUP
        && let Ok(next) = queue.try_recv()
    {
        group.push(next);
    }
}

/// Until when the whole group may wait: the earliest of its messages'
/// limits, or `None` if one must be signed now.
fn patience(group: &[Request]) -> Option<tokio::time::Instant> {
    group
        .iter()
        .try_fold(None, |earliest: Option<tokio::time::Instant>, r| {
            let until = r.wait_until?;
            Some(Some(earliest.map_or(until, |e| e.min(until))))
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_messages_share_a_signature_and_each_verifies() {
        let id = Identity::generate();
        let signer = BatchSigner::new(id.clone());
        let alone = signer
            .sign(Domain::Result, b"alone".to_vec())
            .await
            .expect("signed");
        assert!(alone.proof.is_none(), "a lone message is signed plainly");
        assert_eq!(
            envelope::verify(&alone, Domain::Result).unwrap().signer,
            id.peer_id()
        );

        let calls = (0..50u32)
            .map(|i| {
                let signer = signer.clone();
                tokio::spawn(
                    async move { signer.sign(Domain::Result, i.to_le_bytes().to_vec()).await },
                )
            })
            .collect::<Vec<_>>();
        let mut signed = Vec::new();
        for call in calls {
            signed.push(call.await.expect("task").expect("signed"));
        }
        for (i, env) in (0..50u32).zip(&signed) {
            let verified = envelope::verify(env, Domain::Result).expect("verifies");
            assert_eq!(verified.payload, i.to_le_bytes());
            assert_eq!(verified.signer, id.peer_id());
            assert!(envelope::verify(env, Domain::Job).is_err());
        }
        let distinct: std::collections::HashSet<_> = signed.iter().map(|e| &e.signature).collect();
        assert!(
            distinct.len() < 50,
            "no two of 50 concurrent messages shared a signature"
        );
    }

    #[tokio::test]
    async fn messages_that_may_wait_share_a_signature_and_one_that_may_not_ends_the_wait() {
        let id = Identity::generate();
        let signer = BatchSigner::new(id.clone());
        let wait = std::time::Duration::from_secs(30);
        // A trickle: each message arrives after the last has been queued,
        // and all of them may wait.
        let mut waiting = Vec::new();
        for i in 0..5u8 {
            let signer = signer.clone();
            waiting.push(tokio::spawn(async move {
                signer.sign_within(Domain::Result, vec![i], wait).await
            }));
            tokio::task::yield_now().await;
        }
        // One that may not wait signs the group at once (the test would
        // otherwise sit out the 30 s).
        let started = std::time::Instant::now();
        let now = signer.sign(Domain::Result, vec![9]).await.expect("signed");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        for (i, task) in (0..5u8).zip(waiting) {
            let env = task.await.expect("task").expect("signed");
            assert_eq!(env.signature, now.signature, "message {i} joined the group");
            assert_eq!(envelope::verify(&env, Domain::Result).unwrap().payload, [i]);
        }
    }

    #[tokio::test]
    async fn a_message_waits_no_longer_than_it_may() {
        let signer = BatchSigner::new(Identity::generate());
        let started = std::time::Instant::now();
        let env = signer
            .sign_within(Domain::Job, vec![1], std::time::Duration::from_millis(20))
            .await
            .expect("signed");
        assert!(env.proof.is_none(), "alone, it is signed plainly");
        assert!(started.elapsed() >= std::time::Duration::from_millis(20));
    }

    #[test]
    fn a_signer_outlives_the_runtime_that_started_its_task() {
        let id = Identity::generate();
        let signer = BatchSigner::new(id.clone());
        for round in 0..3u8 {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let env = runtime
                .block_on(signer.sign(Domain::Job, vec![round]))
                .expect("signed");
            assert_eq!(
                envelope::verify(&env, Domain::Job).unwrap().payload,
                [round]
            );
        }
    }
}
