//! The reaper lease (`lease.reaper` in the nodes bucket): of all survivors, only its holder
//! declares lost nodes. Taken with create-if-absent, renewed by its holder every heartbeat with
//! update-at-expected-revision; the bucket's TTL (`max_age` = `cluster.node_timeout_ms`) makes
//! it expire when its holder stops renewing, and then the next node to try takes it. A holder
//! whose renewal's acknowledgement was lost reads the lease back and keeps it if it names it.

use async_nats::jetstream::kv;

/// The lease's key in the nodes bucket.
pub const KEY: &str = "lease.reaper";

/// One node's side of the lease.
pub struct Lease {
    kv: kv::Store,
    /// Who this node is in the lease's value (`<node_id>/<incarnation>`).
    holder: String,
    /// The revision this node last wrote, while it holds the lease.
    held: Option<u64>,
}

impl Lease {
    pub fn new(kv: kv::Store, holder: String) -> Lease {
        Lease {
            kv,
            holder,
            held: None,
        }
    }

    /// Renews the lease if this node holds it, else takes it if free; true when this node holds
    /// it now. A NATS error counts as not holding (the lease is never assumed).
    pub async fn hold(&mut self) -> bool {
        let value = bytes::Bytes::from(self.holder.clone().into_bytes());
        if let Some(revision) = self.held.take() {
            if let Ok(next) = self.kv.update(KEY, value.clone(), revision).await {
                self.held = Some(next);
                return true;
            }
        }
        match self.kv.create(KEY, value).await {
            Ok(revision) => {
                self.held = Some(revision);
                true
            }
            Err(_) => self.adopt().await,
        }
    }

    /// A renewal or take whose acknowledgement was lost may still have been written: when the
    /// lease names this node (this run), it holds it at the revision read.
    async fn adopt(&mut self) -> bool {
        match self.kv.entry(KEY).await {
            Ok(Some(e))
                if e.operation == kv::Operation::Put
                    && e.value.as_ref() == self.holder.as_bytes() =>
            {
                self.held = Some(e.revision);
                true
            }
            _ => false,
        }
    }

    /// Changes who this node is (after a rejoin) and drops the lease if held.
    pub fn rename(&mut self, holder: String) {
        self.holder = holder;
        self.held = None;
    }

    /// Gives the lease up (graceful leave), so another node takes it at once.
    pub async fn release(&mut self) {
        if let Some(revision) = self.held.take() {
            let _ = self.kv.delete_expect_revision(KEY, Some(revision)).await;
        }
    }
}
