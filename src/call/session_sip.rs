//! The SIP side of a call session: incoming requests and responses inside the dialog (ACK, BYE,
//! CANCEL, re-INVITE, OPTIONS, INFO, others), and the responses and BYE the session sends.
//! Every non-INVITE request goes through a server transaction so retransmissions are absorbed.

use actix::prelude::*;
use bytes::Bytes;
use rsip::prelude::*;
use tokio::time::Instant;

use super::dialog::{record_routes, strip_tag, uri_of, Dialog};
use super::events::CallEndCause;
use super::session::{CallSession, Phase};
use crate::media::sdp::{self, SdpError};
use crate::media::Negotiated;
use crate::sip::message::{reason_phrase, ResponseBuilder, TransactionKey};
use crate::sip::transaction::{
    ClientNonInviteTransaction, ServerInviteTransaction, ServerNonInviteTransaction,
};

/// Methods we answer inside a dialog (RFC 3261 §20.5 Allow).
pub(crate) const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO";
/// Methods we know but do not support (405 rather than 501), in or out of a dialog. Exhaustive,
/// so a method rsip learns must be placed here.
pub(crate) fn is_unsupported(method: &rsip::Method) -> bool {
    use rsip::Method as M;
    match method {
        M::Register
        | M::Subscribe
        | M::Notify
        | M::Publish
        | M::Message
        | M::Refer
        | M::Update
        | M::PRack => true,
        M::Ack | M::Bye | M::Cancel | M::Info | M::Invite | M::Options => false,
    }
}

/// INFO bodies we take DTMF from (RFC 6086 legacy INFO usage).
const INFO_ACCEPT: &str = "application/dtmf-relay, application/dtmf";

enum InfoBody {
    Empty,
    Digit(char),
    Invalid,
    Unsupported,
}

/// Reads a DTMF digit from an INFO request's body.
fn info_dtmf(req: &rsip::Request) -> InfoBody {
    if req.body.is_empty() {
        return InfoBody::Empty;
    }
    let content_type = req
        .headers
        .iter()
        .find_map(|h| match h {
            rsip::Header::ContentType(c) => Some(c.value().to_string()),
            _ => None,
        })
        .unwrap_or_default();
    match crate::media::dtmf::info_digit(&content_type, &req.body) {
        Ok(d) => InfoBody::Digit(d),
        Err(crate::media::dtmf::InfoDtmfError::UnsupportedContentType(_)) => InfoBody::Unsupported,
        Err(_) => InfoBody::Invalid,
    }
}

impl CallSession {
    fn contact(&self) -> String {
        let port = self.shared.sender.local_addr().port();
        let transport = match self.peer.transport {
            crate::sip::transport::TransportKind::Udp => "",
            crate::sip::transport::TransportKind::Tcp => ";transport=tcp",
        };
        format!(
            "<sip:activeflow@{}:{port}{transport}>",
            host(self.shared.public_ip)
        )
    }

    pub(super) fn send_trying(&mut self) {
        let Some(invite) = &self.invite else { return };
        let bytes = ResponseBuilder::new(invite, 100, reason_phrase(100)).build();
        self.invite_tx.on_provisional(bytes.clone());
        crate::metrics::sip_response_sent(100);
        self.send(&bytes);
    }

    /// 180 Ringing with our To tag (an early dialog), once, while the call is offered.
    pub(super) fn send_ringing(&mut self) {
        if self.phase != Phase::Offered || self.ringing_sent {
            return;
        }
        let Some(invite) = &self.invite else { return };
        let bytes = ResponseBuilder::new(invite, 180, reason_phrase(180))
            .to_tag(&self.local_tag)
            .header("Contact", &self.contact())
            .build();
        self.ringing_sent = true;
        self.invite_tx.on_provisional(bytes.clone());
        crate::metrics::sip_response_sent(180);
        self.send(&bytes);
    }

    /// Reads the INVITE's SDP; `None` means no offer (we will offer in the 2xx).
    pub(super) fn check_offer(&self) -> Result<Option<Negotiated>, SdpError> {
        match &self.invite {
            Some(inv) if !inv.body.is_empty() => sdp::negotiate(&inv.body).map(Some),
            _ => Ok(None),
        }
    }

    /// Drops what no response or dialog needs from the INVITE kept until its final response
    /// (its body, read by now, and every header but those of `kept_for_answer`): a call may
    /// stay offered for minutes, and 100,000 of them hold this.
    pub(super) fn trim_invite(&mut self) {
        if let Some(invite) = &mut self.invite {
            let mut headers: Vec<rsip::Header> = std::mem::take(&mut invite.headers)
                .into_iter()
                .filter(kept_for_answer)
                .collect();
            headers.shrink_to_fit();
            invite.headers = headers.into();
            invite.body = Vec::new();
        }
    }

    /// Our SDP, the same bytes for the 2xx to the INVITE and to any re-INVITE: an offer when the
    /// INVITE had none, else the answer to its offer.
    pub(super) fn local_sdp(&self) -> Option<Bytes> {
        let m = self.local_media?;
        let ip = self.shared.public_ip;
        let sdp = match &self.negotiated {
            Some(n) if !m.offer => sdp::answer(n, ip, m.port, m.session_id),
            _ => sdp::offer(ip, m.port, m.session_id),
        };
        Some(Bytes::from(sdp))
    }

    /// Sends the INVITE's final response through its transaction.
    pub(super) fn send_final(&mut self, code: u16, ctx: &mut Context<Self>) {
        let Some(invite) = self.invite.take() else {
            return;
        };
        let mut builder =
            ResponseBuilder::new(&invite, code, reason_phrase(code)).to_tag(&self.local_tag);
        if (200..300).contains(&code) {
            builder = builder
                .header("Contact", &self.contact())
                .header("Allow", ALLOW)
                .header("Supported", "");
            if let Some(sdp) = self.local_sdp() {
                builder = builder.body("application/sdp", sdp);
            }
            self.dialog = Some(dialog_from_invite(&invite, &self.local_tag));
        } else if code == 503 {
            builder = builder.header("Retry-After", "5");
        }
        let bytes = builder.build();
        self.invite_tx.on_final(code, bytes.clone(), Instant::now());
        crate::metrics::sip_response_sent(code);
        if code >= 300 {
            // Rejected calls count too, so the histogram shows every outcome.
            crate::metrics::call_setup(self.created.elapsed());
        }
        self.send(&bytes);
        self.rearm(ctx);
    }

    /// Sends BYE through a client transaction (Timer E/F).
    pub(super) fn send_bye(&mut self) {
        let sent_by = format!(
            "{}:{}",
            host(self.shared.public_ip),
            self.shared.sender.local_addr().port()
        );
        let Some(dialog) = &mut self.dialog else {
            return;
        };
        let bytes = dialog.bye(&sent_by, self.peer.transport.via_token());
        self.bye_tx = Some(Box::new(ClientNonInviteTransaction::new(
            bytes.clone(),
            self.peer.transport.is_reliable(),
            self.shared.timers,
            Instant::now(),
        )));
        self.send(&bytes);
    }

    pub(super) fn on_request(&mut self, req: rsip::Request, ctx: &mut Context<Self>) {
        let key = match TransactionKey::from_request(&req) {
            Ok(k) => k,
            Err(_) => return,
        };
        match req.method {
            rsip::Method::Invite => self.on_invite(req, key),
            rsip::Method::Ack => self.on_ack(&req, &key, ctx),
            _ => self.on_non_invite(req, key, ctx),
        }
        self.rearm(ctx);
    }

    fn on_invite(&mut self, req: rsip::Request, key: TransactionKey) {
        if key == self.invite_key {
            crate::metrics::sip_retransmission(true);
            if let Some(b) = self.invite_tx.on_request_retransmit() {
                self.send(&b);
            }
            return;
        }
        if let Some((k, t)) = self.reinvite.as_deref_mut() {
            if *k == key {
                crate::metrics::sip_retransmission(true);
                if let Some(b) = t.on_request_retransmit() {
                    self.send(&b);
                }
                return;
            }
        }
        // A re-INVITE: answer with the SDP we already have (no media change is supported yet).
        let in_dialog = self.phase == Phase::Confirmed && self.reinvite.is_none();
        let code = if in_dialog { 200 } else { 491 };
        let mut b = ResponseBuilder::new(&req, code, reason_phrase(code)).to_tag(&self.local_tag);
        if code == 200 {
            b = b.header("Contact", &self.contact()).header("Allow", ALLOW);
            if let Some(sdp) = self.local_sdp() {
                b = b.body("application/sdp", sdp);
            }
        }
        if code == 200 && !req.body.is_empty() {
            self.update_media_remote(&req.body);
        }
        let bytes = b.build();
        let mut tx = ServerInviteTransaction::new(
            self.peer.transport.is_reliable(),
            self.shared.timers,
            Instant::now(),
        );
        tx.on_final(code, bytes.clone(), Instant::now());
        self.reinvite = Some(Box::new((key, tx)));
        crate::metrics::sip_response_sent(code);
        self.send(&bytes);
    }

    fn on_ack(&mut self, req: &rsip::Request, key: &TransactionKey, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if let Some((_, t)) = self
            .reinvite
            .as_deref_mut()
            .filter(|(_, t)| t.awaiting_ack())
        {
            t.on_ack(now);
            return;
        }
        if !self.invite_tx.awaiting_ack() {
            return;
        }
        // An ACK for a non-2xx reuses the INVITE's branch; one for a 2xx has its own.
        let for_2xx = self.invite_tx.final_code().is_some_and(|c| c < 300);
        if !for_2xx && key.branch() != self.invite_key.branch() {
            return;
        }
        self.invite_tx.on_ack(now);
        if self.phase == Phase::Answered {
            self.phase = Phase::Confirmed;
            // We offered in the 2xx; the ACK carries the caller's answer.
            if self.negotiated.is_none() && !req.body.is_empty() {
                self.update_media_remote(&req.body);
            }
            if self.bye_after_ack {
                self.send_bye();
                self.end(CallEndCause::Local, ctx);
            }
        }
    }

    fn on_non_invite(&mut self, req: rsip::Request, key: TransactionKey, ctx: &mut Context<Self>) {
        if let Some((_, t)) = self.server_txs.iter_mut().find(|(k, _)| *k == key) {
            crate::metrics::sip_retransmission(true);
            if let Some(b) = t.on_request_retransmit() {
                self.send(&b);
            }
            return;
        }
        let dialog_up = self.dialog.is_some();
        let mut info_digit = None;
        let (code, extra): (u16, Option<(&str, &str)>) = match &req.method {
            rsip::Method::Cancel if key.branch() == self.invite_key.branch() => (200, None),
            rsip::Method::Cancel => (481, None),
            rsip::Method::Bye if dialog_up => (200, None),
            rsip::Method::Bye => (481, None),
            rsip::Method::Options => (200, Some(("Allow", ALLOW))),
            rsip::Method::Info if dialog_up => match info_dtmf(&req) {
                InfoBody::Empty => (200, None),
                InfoBody::Digit(d) => {
                    info_digit = Some(d);
                    (200, None)
                }
                InfoBody::Invalid => (400, None),
                InfoBody::Unsupported => (415, Some(("Accept", INFO_ACCEPT))),
            },
            m if is_unsupported(m) => (405, Some(("Allow", ALLOW))),
            rsip::Method::Info => (481, None),
            // INVITE and ACK are routed before here; rsip cannot represent other methods.
            _ => (501, None),
        };
        let mut b = ResponseBuilder::new(&req, code, reason_phrase(code));
        if dialog_up {
            b = b.to_tag(&self.local_tag);
        }
        if let Some((name, value)) = extra {
            b = b.header(name, value);
        }
        let bytes = b.build();
        let mut tx = ServerNonInviteTransaction::new(
            self.peer.transport.is_reliable(),
            self.shared.timers,
            Instant::now(),
        );
        tx.on_final(bytes.clone(), Instant::now());
        self.server_txs.push((key, tx));
        crate::metrics::sip_response_sent(code);
        self.send(&bytes);
        match (&req.method, code) {
            (rsip::Method::Cancel, 200) if self.phase == Phase::Offered => {
                self.send_final(487, ctx);
                self.end(CallEndCause::Cancelled, ctx);
            }
            (rsip::Method::Bye, 200) => self.end(CallEndCause::RemoteBye, ctx),
            _ => {}
        }
        if let Some(digit) = info_digit {
            self.on_info_digit(digit);
        }
    }

    /// Tells the media session where the peer's SDP now wants RTP.
    fn update_media_remote(&mut self, body: &[u8]) {
        let remote = sdp::negotiate(body).ok().and_then(|n| n.remote_rtp);
        if let (Some(media), Some(addr)) = (&self.media, remote) {
            media.send(crate::media::MediaCommand::Remote(addr));
        }
    }

    pub(super) fn on_response(&mut self, resp: &rsip::Response, ctx: &mut Context<Self>) {
        let is_bye = resp
            .cseq_header()
            .ok()
            .and_then(|c| c.typed().ok())
            .is_some_and(|c| c.method == rsip::Method::Bye);
        if let (true, Some(tx)) = (is_bye, &mut self.bye_tx) {
            tx.on_response(u16::from(resp.status_code.clone()), Instant::now());
        }
        self.rearm(ctx);
    }
}

/// Captures what a later BYE needs from the INVITE (RFC 3261 §12.1.1, UAS side).
/// The INVITE headers its responses copy (RFC 3261 §8.2.6.2: Via, From, To, Call-ID, CSeq) and
/// its dialog is made of (§12.1.1: Contact, Record-Route).
fn kept_for_answer(h: &rsip::Header) -> bool {
    use rsip::Header;
    matches!(
        h,
        Header::Via(_)
            | Header::From(_)
            | Header::To(_)
            | Header::CallId(_)
            | Header::CSeq(_)
            | Header::Contact(_)
            | Header::RecordRoute(_)
    )
}

fn dialog_from_invite(invite: &rsip::Request, local_tag: &str) -> Dialog {
    let header = |h: Result<&str, _>| h.map(str::to_string).unwrap_or_default();
    let local_uri = header(invite.to_header().map(|h| h.value()));
    let remote_uri = header(invite.from_header().map(|h| h.value()));
    let remote_tag = invite
        .from_header()
        .ok()
        .and_then(|f| f.tag().ok().flatten())
        .map(|t| t.value().to_string());
    let remote_target = invite
        .contact_header()
        .ok()
        .and_then(|c| uri_of(c.value()))
        .or_else(|| uri_of(&remote_uri))
        .unwrap_or_else(|| invite.uri.to_string());
    // The UAS keeps the Record-Route order (RFC 3261 §12.1.1).
    let route_set = record_routes(&invite.headers);
    let call_id = header(invite.call_id_header().map(|h| h.value()));
    Dialog {
        local_uri: strip_tag(&local_uri),
        local_tag: local_tag.to_string(),
        remote_uri: strip_tag(&remote_uri),
        remote_tag,
        remote_target,
        route_set,
        local_cseq: 0,
        call_id,
    }
}

pub(crate) use super::dialog::host;
