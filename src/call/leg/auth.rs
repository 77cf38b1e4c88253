//! Digest authentication of the requests an outgoing leg sends through a trunk with
//! credentials (RFC 3261 §22.2–22.3): a 401/407 to our INVITE, BYE or refreshing re-INVITE is
//! answered once ([`crate::call::auth::DigestClient`]) by the same request again with the next
//! CSeq, a new branch, the same Call-ID and From tag; the challenge's own transaction has
//! already ACKed it. The hooks in `outgoing.rs`, `in_dialog.rs` and `refresh.rs` call these.

use std::sync::Arc;

use tokio::time::Instant;

use super::{Env, Leg, Phase};
use crate::call::auth::{is_challenge, new_cnonce, AuthHeader, DigestClient};
use crate::call::trunk::TrunkCredentials;
use crate::sip::message::{RequestBuilder, TransactionKey};
use crate::sip::transaction::ClientNonInviteTransaction;

/// The challenge state of one outgoing leg's requests.
pub(crate) struct LegAuth {
    credentials: Arc<TrunkCredentials>,
    invite: DigestClient,
    /// What the INVITE (its CANCEL and ACKs too) carries since it was challenged.
    invite_header: Option<AuthHeader>,
    bye: DigestClient,
    refresh: DigestClient,
    /// What the current refreshing re-INVITE carries since it was challenged.
    refresh_header: Option<AuthHeader>,
}

impl LegAuth {
    pub(crate) fn new(credentials: Arc<TrunkCredentials>) -> LegAuth {
        let client = || DigestClient::new(Some(credentials.clone()));
        LegAuth {
            invite: client(),
            bye: client(),
            refresh: client(),
            invite_header: None,
            refresh_header: None,
            credentials,
        }
    }
}

fn with(b: RequestBuilder, header: Option<&AuthHeader>) -> RequestBuilder {
    match header {
        Some(h) => b.header(h.name, &h.value),
        None => b,
    }
}

/// Adds the INVITE's credentials, if it has been challenged, to a request of its transaction
/// or to the ACK of its 2xx (§22.1).
pub(super) fn with_invite_credentials(b: RequestBuilder, auth: Option<&LegAuth>) -> RequestBuilder {
    with(b, auth.and_then(|a| a.invite_header.as_ref()))
}

/// The branch of a request we built (its top Via).
fn branch_of(request: &[u8]) -> Option<String> {
    let req = rsip::Request::try_from(request).ok()?;
    TransactionKey::from_request(&req)
        .ok()
        .map(|k| k.branch().to_string())
}

impl Leg {
    fn leg_auth(&mut self) -> Option<&mut LegAuth> {
        match &mut self.role {
            super::Role::Outgoing(o) => o.auth.as_deref_mut(),
            super::Role::Incoming(_) => None,
        }
    }

    /// A 401/407 to our INVITE (already ACKed): resend it with credentials, once. True when
    /// resent; false leaves the leg to end with the code.
    pub(super) fn retry_invite_with_credentials(
        &mut self,
        resp: &rsip::Response,
        code: u16,
        env: &Env,
        now: Instant,
    ) -> bool {
        if !is_challenge(code) || self.phase != Phase::Early {
            return false;
        }
        let Some(uri) = self.outgoing_route().map(|r| r.request_uri.clone()) else {
            return false;
        };
        let id = self.id;
        let Some(auth) = self.leg_auth() else {
            return false;
        };
        match auth.invite.answer(resp, "INVITE", &uri, &new_cnonce()) {
            Ok(header) => auth.invite_header = Some(header),
            Err(e) => {
                tracing::info!(call_id = %id, code, error = %e, "INVITE challenge not answered");
                return false;
            }
        }
        self.resend_invite(env, now);
        true
    }

    /// A 401/407 to our BYE: a new BYE (next CSeq, new branch) with credentials, once. True
    /// when it was one (answered or a stale retransmission of an earlier BYE's challenge).
    pub(super) fn retry_bye_with_credentials(
        &mut self,
        resp: &rsip::Response,
        key: &TransactionKey,
        env: &Env,
        now: Instant,
    ) -> bool {
        let code = resp.status_code.code();
        if !is_challenge(code) || self.leg_auth().is_none() {
            return false;
        }
        let Some(tx) = self.bye_tx.as_deref() else {
            return false;
        };
        if branch_of(tx.request()).as_deref() != Some(key.branch()) {
            // A retransmitted challenge of a BYE we already resent.
            return true;
        }
        let Some((to, _)) = self.in_dialog_destination() else {
            return false;
        };
        let Some(uri) = self.dialog.as_ref().map(|d| d.remote_target.clone()) else {
            return false;
        };
        let id = self.id;
        let Some(auth) = self.leg_auth() else {
            return false;
        };
        let realm = auth.invite.answered_realm().map(str::to_string);
        let header =
            match auth
                .bye
                .answer_in_dialog(realm.as_deref(), resp, "BYE", &uri, &new_cnonce())
            {
                Ok(h) => h,
                Err(e) => {
                    tracing::info!(call_id = %id, code, error = %e, "BYE challenge not answered");
                    return false;
                }
            };
        let sent_by = env.sent_by_over(to.transport);
        let Some(dialog) = &mut self.dialog else {
            return false;
        };
        dialog.local_cseq += 1;
        let bytes = with(
            dialog.request(
                rsip::Method::Bye,
                dialog.local_cseq,
                &sent_by,
                to.transport.via_token(),
            ),
            Some(&header),
        )
        .build();
        self.bye_tx = Some(Box::new(ClientNonInviteTransaction::new(
            bytes.clone(),
            to.transport.is_reliable(),
            env.timers,
            now,
        )));
        self.send_in_dialog(bytes);
        true
    }

    /// A 401/407 to our refreshing re-INVITE (already ACKed): the credentials for sending it
    /// again, once. True when the caller should resend.
    pub(super) fn answer_refresh_challenge(&mut self, resp: &rsip::Response, code: u16) -> bool {
        if !is_challenge(code) {
            return false;
        }
        let Some(uri) = self.dialog.as_ref().map(|d| d.remote_target.clone()) else {
            return false;
        };
        let id = self.id;
        let Some(auth) = self.leg_auth() else {
            return false;
        };
        let realm = auth.invite.answered_realm().map(str::to_string);
        match auth
            .refresh
            .answer_in_dialog(realm.as_deref(), resp, "INVITE", &uri, &new_cnonce())
        {
            Ok(h) => {
                auth.refresh_header = Some(h);
                true
            }
            Err(e) => {
                tracing::info!(call_id = %id, code, error = %e, "re-INVITE challenge not answered");
                false
            }
        }
    }

    /// A new target for the INVITE (RFC 3263 §4.3 failover): its server challenges with its
    /// own nonce, so the INVITE starts unchallenged again.
    pub(super) fn reset_invite_credentials(&mut self) {
        if let Some(auth) = self.leg_auth() {
            auth.invite.reset();
            auth.invite_header = None;
        }
    }

    /// Adds the refresh's credentials, when it was challenged.
    pub(super) fn with_refresh_credentials(&self, b: RequestBuilder) -> RequestBuilder {
        let header = self.outgoing_auth().and_then(|a| a.refresh_header.as_ref());
        with(b, header)
    }

    /// A refresh went through: the next one starts unchallenged.
    pub(super) fn refresh_authenticated(&mut self) {
        if let Some(auth) = self.leg_auth() {
            auth.refresh = DigestClient::new(Some(auth.credentials.clone()));
            auth.refresh_header = None;
        }
    }

    fn outgoing_auth(&self) -> Option<&LegAuth> {
        match &self.role {
            super::Role::Outgoing(o) => o.auth.as_deref(),
            super::Role::Incoming(_) => None,
        }
    }
}
