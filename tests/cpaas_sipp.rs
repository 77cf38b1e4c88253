//! The issue-19 actions end to end with real SIPp callers and callees (SIP over UDP, RTP from
//! SIPp's `play_pcap_audio`): `amd` on an outbound call's callee, `external_media_start`/`stop`
//! to a test RTP echo server, `stream_echo`, `mute`/`unmute` between prompts, and a conference
//! of two `POST /v1/calls` callees and a SIPp caller. What a SIPp leg hears is read from a test
//! socket its SDP names (SIPp cannot record) and checked by spectrum, not by packet counts.
//! The groups live in tests/cpaas_sipp/*.rs; helpers in tests/common/cpaas.rs.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

#[path = "cpaas_sipp/amd.rs"]
mod amd;
#[path = "cpaas_sipp/conference.rs"]
mod conference;
#[path = "cpaas_sipp/stream.rs"]
mod stream;
