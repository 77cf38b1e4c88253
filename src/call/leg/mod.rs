//! The call leg: one sans-IO state machine for a SIP dialog (RFC 3261 §12–§15) in either role,
//! the call we answer (`incoming.rs`, the UAS) or the leg we place (`outgoing.rs`, the UAC),
//! with the in-dialog part both share (`in_dialog.rs`) and early media with 100rel/PRACK
//! (`early.rs`, rules in `reliable.rs`, RFC 3262). Inputs are SIP messages, timer ticks
//! and commands; outputs ([`Output`]) are bytes to send, events for the activeflow, record
//! changes and media starts. It owns every transaction of the dialog; no sockets, no clocks
//! but the instants passed in. `CallSession` is its actor shell.
//!
//! ```text
//!  Early ──2xx sent──▶ Answered ──ACK──▶ Confirmed ──BYE (either side)──▶ Ended   (incoming)
//!  Early ──2xx received, ACK sent──────▶ Confirmed ──BYE (either side)──▶ Ended   (outgoing)
//!    └──final 3xx–6xx, CANCEL, ring timeout, Timer B, hangup──────────▶ Ended
//! ```
//! After `Ended` the leg lingers while a transaction still needs it (an ACK awaited, a BYE
//! unanswered, a retransmitted final to re-ACK); [`Leg::is_done`] says when it may go.

mod auth;
mod early;
mod failover;
mod in_dialog;
mod incoming;
mod media;
use media::MediaState;
mod outgoing;
mod refer;
mod refer_headers;
mod refresh;
mod reliable;
mod rules;
pub(crate) mod session_timer;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use tokio::time::Instant;

pub(crate) use incoming::{Incoming, ALLOW};
pub(crate) use outgoing::{Outgoing, Placement};
pub(crate) use rules::{is_unsupported, max_forwards, tag_of, unsupported_requirements};

use super::events::{CallEndCause, CallEvent};
use super::CallId;
use crate::media::Negotiated;
use crate::sip::dialog::Dialog;
use crate::sip::message::TransactionKey;
use crate::sip::transaction::{
    ClientNonInviteTransaction, ServerInviteTransaction, ServerNonInviteTransaction, Timers,
    TransactionOutput,
};
use crate::sip::transport::Peer;

/// Server non-INVITE transactions one dialog may hold at once (answered ones wait out Timer J,
/// 64·T1 = 32 s on UDP): 4 a second for 32 s covers INFO digits at any human pace. Beyond it
/// a request gets 503 + Retry-After (RFC 3261 §21.5.4) and nothing is kept; BYE and CANCEL
/// may use as many again, so a flood of INFO cannot keep a peer from ending the call.
pub(crate) const MAX_SERVER_TRANSACTIONS: usize = 128;

/// What the leg needs of its surroundings on each input (passed in, never stored).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Env {
    pub(crate) timers: Timers,
    /// Our address in Via, Contact and SDP.
    pub(crate) public_ip: IpAddr,
    /// The SIP port we listen on.
    pub(crate) port: u16,
    /// The SIP/TLS port we listen on, if any (`sip.tls_listen`).
    pub(crate) tls_port: Option<u16>,
    /// `engine.max_call_seconds`: the call ends this long after its INVITE.
    pub(crate) max_call: Option<std::time::Duration>,
    /// `sip.session_expires_seconds` (RFC 4028; `None`: no session timers).
    pub(crate) session_expires: Option<u32>,
    /// `sip.min_se_seconds`: shorter intervals get 422.
    pub(crate) min_se: u32,
    /// `sip.failover_timeout_ms`: no response from a target this long → the next one.
    pub(crate) failover_timeout: std::time::Duration,
}

impl Env {
    /// `host:port` for Via sent-by.
    pub(crate) fn sent_by(&self) -> String {
        format!("{}:{}", crate::sip::dialog::host(self.public_ip), self.port)
    }

    /// `host:port` for Via sent-by over `transport`: the TLS listener's port over TLS
    /// (RFC 3261 §18.2.2: where a response goes if the connection is gone).
    pub(crate) fn sent_by_over(&self, transport: crate::sip::transport::TransportKind) -> String {
        match transport {
            crate::sip::transport::TransportKind::Tls => format!(
                "{}:{}",
                crate::sip::dialog::host(self.public_ip),
                self.tls_port()
            ),
            _ => self.sent_by(),
        }
    }

    /// Our Contact over `peer`'s transport; over TLS it names the TLS listener's port with
    /// `;transport=tls` (RFC 3261 §19.1.1).
    pub(crate) fn contact(&self, peer: Option<&Peer>) -> String {
        use crate::sip::transport::TransportKind;
        let host = crate::sip::dialog::host(self.public_ip);
        match peer.map(|p| p.transport) {
            Some(TransportKind::Tcp) => {
                format!("<sip:activeflow@{host}:{};transport=tcp>", self.port)
            }
            Some(TransportKind::Tls) => {
                format!("<sip:activeflow@{host}:{};transport=tls>", self.tls_port())
            }
            _ => format!("<sip:activeflow@{host}:{}>", self.port),
        }
    }

    /// Our Contact in answer to `request`: a `sips:` Request-URI that came over TLS gets a
    /// `sips:` Contact (RFC 5630 §3.1.3: the dialog stays secure end to end).
    pub(crate) fn contact_for(&self, peer: Option<&Peer>, request: &rsip::Request) -> String {
        self.contact_secure(peer, request.uri.scheme == Some(rsip::Scheme::Sips))
    }

    /// Our Contact, a `sips:` URI when `sips` (a `sips:` Request-URI, RFC 3261 §8.1.1.8,
    /// §12.1.1) and `peer` is over TLS; else as [`Env::contact`].
    pub(crate) fn contact_secure(&self, peer: Option<&Peer>, sips: bool) -> String {
        let tls = peer.is_some_and(|p| p.transport == crate::sip::transport::TransportKind::Tls);
        if tls && sips {
            let host = crate::sip::dialog::host(self.public_ip);
            return format!("<sips:activeflow@{host}:{}>", self.tls_port());
        }
        self.contact(peer)
    }

    /// The port our TLS listener serves on (the SIP port when there is none: a TLS peer then
    /// reached us through a connection of our own).
    fn tls_port(&self) -> u16 {
        self.tls_port.unwrap_or(self.port)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before a final response: offered to the flow (incoming), calling or ringing (outgoing).
    Early,
    /// Incoming only: our 2xx is out, its ACK is not in yet.
    Answered,
    Confirmed,
    Ended,
}

/// Our SDP: the RTP port and session id it is rebuilt from for each message that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalMedia {
    pub(crate) port: u16,
    pub(crate) session_id: u64,
    /// The INVITE had no offer, so our 2xx offered (and the ACK answers).
    pub(crate) offer: bool,
}

/// What the shell must do after driving the leg, in order.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    /// Send these bytes to `to`; `fallback` is where to send them if `to` is a TCP connection
    /// that is gone (RFC 3261 §18.2.2: a new connection to the Contact).
    Send {
        to: Peer,
        bytes: Bytes,
        fallback: Option<Peer>,
    },
    /// Our INVITE to a target (the first send of each attempt): sent like [`Output::Send`],
    /// and a failed TCP connect comes back as [`Leg::transport_failed`] with `attempt`.
    SendInvite {
        to: Peer,
        bytes: Bytes,
        attempt: u32,
    },
    /// For the activeflow.
    Event(CallEvent),
    /// The call is answered (record, metrics).
    Answered,
    /// The call is over (record, metrics); `answered` says whether it was up.
    Ended { cause: CallEndCause, answered: bool },
    /// Start the RTP session with what was negotiated (`None`: we offered and the ACK brought
    /// no answer). Its `remote_rtp` is withheld until an ACK confirmed the dialog: no RTP goes
    /// toward a spoofed INVITE's SDP address.
    StartMedia(Option<Negotiated>),
    /// The dialog is confirmed: RTP may go to this address now.
    MediaRemote(SocketAddr),
    /// The peer's SDP changed (re-INVITE): codec, address, direction follow.
    MediaUpdate(Negotiated),
}

/// The role-specific part.
pub(crate) enum Role {
    Incoming(Box<Incoming>),
    Outgoing(Box<Outgoing>),
}

pub(crate) struct Leg {
    pub(crate) id: CallId,
    /// The SIP Call-ID header.
    pub(crate) sip_call_id: String,
    pub(crate) role: Role,
    pub(crate) phase: Phase,
    /// The signalling peer: the INVITE's source (incoming), the next hop (outgoing).
    pub(crate) peer: Option<Peer>,
    pub(crate) local_tag: String,
    pub(crate) dialog: Option<Dialog>,
    /// What the peer's SDP gave (its offer for incoming, its answer for outgoing).
    pub(crate) negotiated: Option<Negotiated>,
    pub(crate) local_media: Option<LocalMedia>,
    /// Our SDP's content as last sent (a digest without its `o=` line) and how many times it
    /// changed: its `o=` version is the session id plus that.
    sdp_digest: u64,
    sdp_changes: u64,
    media: MediaState,
    /// Media runs before the answer (a 183 with SDP, either way): RTP goes to the peer's SDP
    /// address before the dialog is confirmed.
    early_media: bool,
    /// The peer's non-INVITE requests by key (a retransmission is found without a scan); at
    /// most [`MAX_SERVER_TRANSACTIONS`] (twice that with BYE/CANCEL).
    server_txs: HashMap<TransactionKey, ServerNonInviteTransaction>,
    /// The peer's re-INVITE (boxed, as the BYE: rare, and inline they would grow every leg).
    reinvite: Option<Box<(TransactionKey, ServerInviteTransaction, Peer)>>,
    bye_tx: Option<Box<ClientNonInviteTransaction>>,
    pub(crate) created: Instant,
    /// When `engine.max_call_seconds` ends the call.
    max_until: Option<Instant>,
    /// The agreed RFC 4028 session timer, and our refreshing re-INVITE while it is out.
    session_timer: Option<Box<session_timer::SessionTimer>>,
    refresh: Option<Box<refresh::Refresh>>,
    /// REFER either way and its NOTIFYs (RFC 3515), once the first one comes or goes.
    transfer: Option<Box<refer::Transfers>>,
    out: Vec<Output>,
}

impl Leg {
    fn new(
        id: CallId,
        sip_call_id: String,
        role: Role,
        peer: Option<Peer>,
        local_tag: String,
        env: &Env,
        now: Instant,
    ) -> Leg {
        Leg {
            id,
            sip_call_id,
            role,
            phase: Phase::Early,
            peer,
            local_tag,
            dialog: None,
            negotiated: None,
            local_media: None,
            sdp_digest: 0,
            sdp_changes: 0,
            media: MediaState::Idle,
            early_media: false,
            server_txs: HashMap::new(),
            reinvite: None,
            bye_tx: None,
            created: now,
            max_until: env.max_call.map(|d| crate::sip::transaction::after(now, d)),
            session_timer: None,
            refresh: None,
            transfer: None,
            out: Vec::new(),
        }
    }

    /// The outputs produced since the last call, in order.
    pub(crate) fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    pub(crate) fn is_incoming(&self) -> bool {
        matches!(self.role, Role::Incoming(_))
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// Sends to the signalling peer (responses to the INVITE, requests of its transaction).
    fn send(&mut self, bytes: Bytes) {
        if let Some(to) = self.peer {
            self.send_to(to, bytes);
        }
    }

    /// Sends to `to` (an answer goes where its request came from).
    fn send_to(&mut self, to: Peer, bytes: Bytes) {
        self.out.push(Output::Send {
            to,
            bytes,
            fallback: None,
        });
    }

    fn emit(&mut self, event: CallEvent) {
        self.out.push(Output::Event(event));
    }

    /// Ends the call once: the record, the activeflow's event, media freed by the shell.
    pub(crate) fn end(&mut self, cause: CallEndCause) {
        if self.phase == Phase::Ended {
            return;
        }
        let answered = matches!(self.phase, Phase::Answered | Phase::Confirmed);
        self.phase = Phase::Ended;
        self.media = MediaState::Idle;
        self.session_timer = None;
        self.refresh = None;
        tracing::debug!(call_id = %self.id, ?cause, "call ended");
        match &mut self.role {
            Role::Incoming(i) => i.on_end(),
            Role::Outgoing(o) => o.on_end(),
        }
        self.out.push(Output::Ended { cause, answered });
        self.emit(CallEvent::Ended {
            call_id: self.id,
            cause,
        });
    }

    /// The earliest instant [`Leg::on_tick`] has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let media = match self.media {
            MediaState::StartAt(at) => Some(at),
            _ => None,
        };
        let role = match &self.role {
            Role::Incoming(i) => i.next_deadline(),
            Role::Outgoing(o) => o.next_deadline(),
        };
        [
            media,
            role,
            self.max_until.filter(|_| self.phase != Phase::Ended),
            self.refresh_deadline(),
            self.transfer_deadline(),
            self.reinvite
                .as_deref()
                .and_then(|(_, t, _)| t.next_deadline()),
            self.bye_tx.as_ref().and_then(|t| t.next_deadline()),
        ]
        .into_iter()
        .chain(self.server_txs.values().map(|t| t.next_deadline()))
        .flatten()
        .min()
    }

    /// Fires what is due at `now`.
    pub(crate) fn on_tick(&mut self, env: &Env, now: Instant) {
        if matches!(self.media, MediaState::StartAt(at) if at <= now) {
            self.start_media_now();
        }
        if self.max_until.is_some_and(|at| at <= now) && self.phase != Phase::Ended {
            self.max_until = None;
            tracing::info!(call_id = %self.id, "engine.max_call_seconds reached");
            self.end_now(CallEndCause::MaxDuration, env, now);
        }
        match self.role {
            Role::Incoming(_) => self.incoming_tick(env, now),
            Role::Outgoing(_) => self.outgoing_tick(env, now),
        }
        self.refresh_tick(env, now);
        self.transfer_tick(env, now);
        if let Some((_, t, src)) = self.reinvite.as_deref_mut() {
            let src = *src;
            for out in t.on_tick(now) {
                if let TransactionOutput::Retransmit(bytes) = out {
                    crate::metrics::sip_retransmission(false);
                    self.send_to(src, bytes);
                }
            }
        }
        let mut outputs = Vec::new();
        if let Some(t) = &mut self.bye_tx {
            outputs.extend(t.on_tick(now));
        }
        for t in self.server_txs.values_mut() {
            outputs.extend(t.on_tick(now));
        }
        for out in outputs {
            if let TransactionOutput::Retransmit(b) = out {
                crate::metrics::sip_retransmission(false);
                self.send_in_dialog(b);
            }
        }
        self.prune();
    }

    /// Drops terminated transactions.
    fn prune(&mut self) {
        self.server_txs.retain(|_, t| !t.is_terminated());
        if self
            .reinvite
            .as_deref()
            .is_some_and(|(_, t, _)| t.is_terminated())
        {
            self.reinvite = None;
        }
        if self.bye_tx.as_ref().is_some_and(|t| t.is_terminated()) {
            self.bye_tx = None;
        }
    }

    /// True when the call is over and nothing but completed server non-INVITE transactions
    /// (Timer J) remains: their answers go to the shared linger table, the leg may go.
    pub(crate) fn is_done(&self) -> bool {
        if self.phase != Phase::Ended {
            return false;
        }
        let role_done = match &self.role {
            Role::Incoming(i) => i.is_done(),
            Role::Outgoing(o) => o.is_done(),
        };
        let reinvite_done = self
            .reinvite
            .as_deref()
            .is_none_or(|(_, t, _)| t.is_terminated() || !t.awaiting_ack());
        let bye_done = self.bye_tx.as_ref().is_none_or(|t| t.is_completed());
        let servers_done = self
            .server_txs
            .values()
            .all(|t| t.is_terminated() || t.lingering_response().is_some());
        role_done && reinvite_done && bye_done && servers_done
    }

    /// The completed server transactions' answers, for the linger table, once the leg is done.
    pub(crate) fn lingering(&mut self) -> Vec<(TransactionKey, Bytes, Instant)> {
        self.server_txs
            .drain()
            .filter_map(|(key, tx)| {
                tx.lingering_response()
                    .map(|(response, until)| (key, response.clone(), until))
            })
            .collect()
    }

    /// The Max-Forwards a leg bridged for this call starts from (RFC 3261 §16.6 step 3): the
    /// caller's, or for a leg we placed the one our INVITE carried, so calls placed from calls
    /// we placed keep counting down.
    pub(crate) fn max_forwards(&self) -> u8 {
        match &self.role {
            Role::Incoming(i) => i.max_forwards,
            Role::Outgoing(o) => o.max_forwards,
        }
    }

    pub(crate) fn incoming(&self) -> Option<&Incoming> {
        match &self.role {
            Role::Incoming(i) => Some(i),
            Role::Outgoing(_) => None,
        }
    }
}
